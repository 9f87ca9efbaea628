# VM lane, after quota.sh: the pure cgroup2 layout (this host is hybrid). A VE started with
# CPU and I/O settings gets them in cpu.weight, cpu.max, io.bfq.weight and io.max, and its
# page-cache writes, which cgroup2's writeback charges to it, are counted by the block I/O
# programs on its disk.
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
vzctl stop --fast 102 >/dev/null 2>&1 || fail "stop"
echo "VMTEST-PASS cgroup2"
