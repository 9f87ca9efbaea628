# VM lane, after quota.sh: the pure cgroup2 layout (this host is hybrid). A VE started with
# CPU and I/O settings gets them in cpu.weight, cpu.max, io.bfq.weight and io.max, and its
# page-cache writes, which cgroup2's writeback charges to it, are counted by the block I/O
# programs on its disk. vzeventd on cgroup2 (and a stock Debian kernel): a numproc refusal
# reaches the event log through the kernel's notice on pids.events (no timer), and a
# `reboot` inside the VE starts it again. A granted device on cgroup2.
set -u
fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok $*"; }
export VZ_CONF_DIR=/vz/conf PATH=/bin
# What systemd does on a cgroup2 host: controllers for the subtree.
echo "+cpu +cpuset +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable controllers"
disk=$(basename "$(awk '$2 == "/vz" {print $1}' /proc/mounts)")
out=$(vzctl iosched "$disk" bfq 2>&1) || fail "iosched: $out"
out=$(vzctl create 102 2>&1) || fail "create: $out"
out=$(vzctl set 102 --ioprio 7 --iolimit 1M --iopslimit 100 --cpuunits 2000 --cpulimit 50 --save 2>&1) || fail "set: $out"
out=$(vzctl start 102 2>&1) || fail "start: $out"
ok "VE started on cgroup2"
d=/sys/fs/cgroup/vz/102
dev=$(cat /sys/block/$disk/dev)
grep -q "default 280" $d/io.bfq.weight || fail "io.bfq.weight: $(cat $d/io.bfq.weight)"
grep -q "^$dev rbps=1048576 wbps=1048576 riops=100 wiops=100" $d/io.max || fail "io.max: $(cat $d/io.max)"
[ "$(cat $d/cpu.weight)" = 200 ] || fail "cpu.weight: $(cat $d/cpu.weight)"
[ "$(cat $d/cpu.max)" = "50000 100000" ] || fail "cpu.max: $(cat $d/cpu.max)"
ok "ioprio 7, iolimit 1M, iopslimit 100, cpuunits 2000, cpulimit 50 in io.bfq.weight, io.max, cpu.weight, cpu.max"
out=$(vzctl exec 102 'dd if=/dev/zero of=/x bs=1M count=4 2>/dev/null; sync' 2>&1) || fail "exec: $out"
w=$(vzstat -v 102 | awk -v d="$disk" '$1 == 102 && $2 == d {print $4}')
[ -n "$w" ] && [ "$w" -ge 4194304 ] || fail "vzstat: $(vzstat -v 102)"
ok "page-cache writes counted for the VE on $disk: $w bytes"
# Devices on pure cgroup2: a loop device granted read only.
truncate -s 1M /tmp/dev.img && printf VZDEV | dd of=/tmp/dev.img conv=notrunc 2>/dev/null
lo=$(losetup -f) && losetup "$lo" /tmp/dev.img || fail "losetup"
out=$(vzctl set 102 --devnodes "${lo#/dev/}:r" 2>&1) || fail "devnodes: $out"
[ "$(vzctl exec2 102 "head -c 5 $lo" </dev/null)" = VZDEV ] || fail "read through the granted node"
out=$(vzctl exec2 102 "echo x > $lo" </dev/null 2>&1) && fail "wrote through a read-only grant"
case "$out" in *"not permitted"*) ;; *) fail "write not refused with EPERM: $out" ;; esac
ok "a loop device granted r: read in the VE, a write open refused ($out)"
out=$(vzctl set 102 --devnodes "${lo#/dev/}:none" 2>&1) || fail "devnodes none: $out"
losetup -d "$lo"
vzeventd --no-metrics > /tmp/eventd.log 2>&1 &
ev=$!
log=/var/log/vz/events.log
for i in $(seq 100); do [ -f $log ] && break; sleep 0.1; done
sleep 1
out=$(vzctl set 102 --numproc 12:12 2>&1) || fail "set numproc: $out"
vzctl exec 102 'for i in $(seq 30); do sleep 2 & done; wait' >/dev/null 2>&1
for i in $(seq 100); do grep -q '"resource":"numproc"' $log && break; sleep 0.1; done
grep -q '"resource":"numproc"' $log || fail "no numproc event: $(cat $log /tmp/eventd.log)"
grep -q "v1 controllers" /tmp/eventd.log && fail "vzeventd polls on cgroup2: $(cat /tmp/eventd.log)"
ok "numproc refusal in the event log through pids.events, no polling: $(grep numproc $log | head -1)"
starts=$(grep -c '"event":"start"' $log)
vzctl exec 102 'reboot -f' >/dev/null 2>&1
for i in $(seq 300); do
    st=$(vzctl status 102 2>&1)
    case $st in *running*) [ "$(grep -c '"event":"start"' $log)" -gt "$starts" ] && break ;; esac
    sleep 0.2
done
[ "$(grep -c '"event":"start"' $log)" -gt "$starts" ] || fail "not started again after reboot: $st; $(cat $log /tmp/eventd.log)"
case $st in *running*) ;; *) fail "not running after reboot: $st" ;; esac
grep -q '"event":"reboot"' $log || fail "no reboot event: $(cat $log)"
ok "reboot inside the VE: started again ($(grep '"reboot"' $log | head -1))"
kill $ev
# What systemd does in the cgroup2 subtree delegated to the VE: its init into a cgroup of
# its own, controllers turned on below; vzctl exec then joins a leaf of its own, and the
# VE's limits stay out of its reach.
# (Controllers go on once no process is left in the VE's own cgroup: done from the
# background, after this exec and the process vzctl waits for it with have ended.)
out=$(vzctl exec2 102 'mkdir /sys/fs/cgroup/init.scope && echo 1 > /sys/fs/cgroup/init.scope/cgroup.procs && sh -c "echo \$\$ > /sys/fs/cgroup/init.scope/cgroup.procs; sleep 1; echo +pids +memory > /sys/fs/cgroup/cgroup.subtree_control" >/tmp/subtree.out 2>&1 &' </dev/null 2>&1) || fail "systemd-like use of the delegated cgroup: $out"
for i in $(seq 50); do [ -n "$(cat $d/cgroup.subtree_control)" ] && break; sleep 0.1; done
[ "$(cat $d/cgroup.subtree_control)" = "memory pids" ] || fail "controllers not on below the VE: '$(cat $d/cgroup.subtree_control)' $(vzctl exec2 102 'cat /tmp/subtree.out; for p in $(cat /sys/fs/cgroup/cgroup.procs); do echo $p $(cat /proc/$p/cmdline | tr "\0" " "); done' </dev/null 2>&1)"
case "$(vzctl exec2 102 'grep ^0:: /proc/self/cgroup' </dev/null)" in "0::/.vz-exec-"*) ;; *) fail "exec not in a leaf of its own: $(vzctl exec2 102 'cat /proc/self/cgroup' </dev/null 2>&1)" ;; esac
# A leaf the VE prepared (frozen) is not where the admin's command goes.
vzctl exec2 102 'for i in $(seq 1 300); do for n in 0 1 2; do mkdir -p /sys/fs/cgroup/.vz-exec-$i-$n; echo 1 > /sys/fs/cgroup/.vz-exec-$i-$n/cgroup.freeze; done; done' </dev/null >/dev/null 2>&1
out=$(timeout 20 vzctl exec2 102 'echo not-frozen' </dev/null 2>&1)
[ "$out" = not-frozen ] || fail "exec caught by a leaf the VE prepared: $out"
[ "$(vzctl exec2 102 'cat /proc/1/cgroup' </dev/null)" = "0::/init.scope" ] || fail "init moved out of init.scope"
vzctl set 102 --numproc 40:40 >/dev/null 2>&1 || fail "set numproc 40"
out=$(vzctl exec2 102 'echo max > /sys/fs/cgroup/pids.max' </dev/null 2>&1) && fail "the VE raised its own pids.max"
[ "$(cat $d/pids.max)" = 40 ] || fail "pids.max changed: $(cat $d/pids.max)"
ok "delegated cgroup2 subtree: init in init.scope, controllers below, exec in a fresh leaf of its own (not one the VE froze), pids.max out of reach ($out)"
vzctl stop --fast 102 >/dev/null 2>&1 || fail "stop"
echo "VMTEST-PASS cgroup2"
