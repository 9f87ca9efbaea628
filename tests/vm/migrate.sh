# VM lane, after cgroup2.sh: online migration with iterative pre-copy (criu pre-dump rounds
# while the VE runs), which needs the soft-dirty bits this host's kernel lacks. Two nodes in
# this VM: A in its network namespace, B in namespace "b" with a real sshd; each its own VZ
# root (in this VM's memory: /vz is the small disk of quota.sh), config, pins and cgroup
# parent. Prints "ok ..." per check, "FAIL ..." and stops at the first failure,
# "VMTEST-PASS migrate" when all held.
set -u -o pipefail
fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok $*"; }
export PATH=/bin
# iproute2 (busybox sh would run its own ip applet, which has no netns).
ip() { /bin/ip "$@"; }
# criu probes TCP repair on loopback.
ip link set lo up
echo "+cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable controllers"
criu check --feature mem_dirty_track >/dev/null 2>&1 || fail "criu: no mem_dirty_track on $(uname -r)"
for n in a b; do
    mkdir -p /srv/$n/conf
    cat > /srv/$n/vz.conf <<E
VE_ROOT="/srv/$n/root/\$VEID"
VE_PRIVATE="/srv/$n/private/\$VEID"
TEMPLATE="/srv/template"
LOCKDIR="/srv/$n/lock"
DUMPDIR="/srv/$n/dump"
BPF_ROOT="/sys/fs/bpf/$n"
CGROUP_PARENT="vz$n"
E
done
a() { VZ_CONF_DIR=/srv/a "$@"; }
b() { VZ_CONF_DIR=/srv/b "$@"; }

# The LAN: A is 10.79.0.1, B (namespace b) 10.79.0.2, where sshd listens.
ip netns add b || fail "ip netns add"
ip link add lan type veth peer name eth0 netns b || fail "veth"
ip addr add 10.79.0.1/24 dev lan && ip link set lan up
ip -n b link set lo up && ip -n b addr add 10.79.0.2/24 dev eth0 && ip -n b link set eth0 up || fail "node b's address"
mkdir -p /srv/ssh /run/sshd /root && chmod 700 /srv/ssh
ssh-keygen -q -t ed25519 -N "" -f /srv/ssh/id && ssh-keygen -q -t ed25519 -N "" -f /srv/ssh/host || fail "ssh-keygen"
cp /srv/ssh/id.pub /srv/ssh/authorized_keys
cat > /srv/ssh/sshd_config <<E
ListenAddress 10.79.0.2
HostKey /srv/ssh/host
AuthorizedKeysFile /srv/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
LogLevel ERROR
SetEnv PATH=/bin VZ_CONF_DIR=/srv/b
E
nsenter --net=/run/netns/b /bin/sshd -f /srv/ssh/sshd_config || fail "sshd"
SSH="-i /srv/ssh/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
i=0
until ssh $SSH -o BatchMode=yes root@10.79.0.2 vzctl status 999 >/dev/null 2>&1; do
    i=$((i+1)); [ $i -lt 100 ] || fail "sshd on node b does not answer"; sleep 0.2
done
ok "two nodes, node b reached over ssh"

# A VE holding 96 MB it does not write again and a counter that writes every 50 ms.
mkve() {
    out=$(a vzctl create $1 --ipadd $2 2>&1) || fail "create $1: $out"
    out=$(a vzctl start $1 2>&1) || fail "start $1: $out"
    a vzctl exec2 $1 "L=\$(printf '%01023d' 0); setsid sh -c \"(yes \$L | head -n 98304; sleep 100000) | sort >/dev/null\" \
        </dev/null >/dev/null 2>&1 & setsid sh -c 'i=0; while :; do i=\$((i+1)); echo \$i > /dev/shm/count; sleep 0.05; done' \
        </dev/null >/dev/null 2>&1 &" || fail "workload in $1"
    i=0
    until [ "$(cat /sys/fs/cgroup/vza/$1/memory.current)" -gt 100000000 ]; do
        i=$((i+1)); [ $i -lt 300 ] || fail "VE $1 did not reach 96 MB"; sleep 0.1
    done
}
# migrate VEID [OPTION...]: vzmigrate's lines, each after the time it was read (this VM's
# uptime; the VE's own clocks are no measure: criu's time namespace hides the pause).
migrate() { v=$1; shift; a vzmigrate --ssh="$SSH" "$@" root@10.79.0.2 $v 2>&1 | while read -r l; do echo "$(cut -d' ' -f1 /proc/uptime) $l"; done; }
# The pause of a migration, in ms: from the freeze here to the return of the restore there.
pause() { echo "$1" | awk '/Setting up checkpoint/ {f = $1} /is running on/ {s = $1} END {printf "%d", (s - f) * 1000}'; }

# Both made before either moves: a create on A after 201 left could take 201's host-id
# range again, which B (where 201 has it) refuses.
mkve 201 10.79.0.100
mkve 202 10.79.0.101
pids() { "$@" vzctl exec2 201 'echo $(pidof init) $(pidof sort)'; }
before=$(pids a)
out=$(VZ_FAIL_AT=migrate:precopy migrate 201 --online) && fail "VZ_FAIL_AT=migrate:precopy: $out"
case "$out" in *"Pre-copy round 1"*"migrate:precopy"*) ;; *) fail "did not fail after round 1: $out" ;; esac
[ "$(a vzlist -H -o status 201 | tr -d ' ')" = running ] || fail "not running on a after a failed pre-copy: $out"
[ -e /srv/b/conf/201.conf ] || [ -e /srv/b/dump/Dump.201.pre ] || [ -e /srv/a/dump/Migrate.201.pre ] &&
    fail "a failed pre-copy left $(ls /srv/b/conf /srv/b/dump /srv/a/dump)"
ok "a migration failed in its pre-copy: the VE runs on a, nothing left on b"

out=$(migrate 201 --online) || { tail -20 /srv/*/dump/*.log; fail "vzmigrate --online: $out"; }
echo "$out" | grep -q "Pre-copy round 2" || fail "fewer than two pre-copy rounds: $out"
first=$(echo "$out" | sed -n 's/.*Pre-copy round 1: \([0-9]*\) KiB.*/\1/p')
[ "$first" -gt 98000 ] || fail "the first round sent $first KiB, not the 96 MB: $out"
last=$(echo "$out" | sed -n 's/.*Pre-copy round [0-9]*: \([0-9]*\) KiB.*/\1/p' | tail -1)
[ "$last" -lt 4096 ] || fail "the last round sent $last KiB: $out"
[ "$(b vzlist -H -o status 201 | tr -d ' ')" = running ] || fail "not running on b: $out"
[ -e /srv/a/conf/201.conf ] && fail "still on a after -r yes"
[ "$(pids b)" = "$before" ] || fail "other pids on b: $(pids b), on a: $before"
t1=$(b vzctl exec2 201 'cat /dev/shm/count'); sleep 1; t2=$(b vzctl exec2 201 'cat /dev/shm/count')
[ "$t2" -gt "$t1" ] || fail "the counter stopped on b: $t1, $t2"
ls /srv/b/dump /srv/a/dump | grep -q "pre" && fail "pre-copy rounds left: $(ls /srv/a/dump /srv/b/dump)"
iter=$(pause "$out")
ok "online migration with pre-copy rounds of $first ... $last KiB: same processes, counter goes on, frozen ${iter} ms"

out=$(migrate 202 --online --noiter) || fail "vzmigrate --online --noiter: $out"
echo "$out" | grep -q "Pre-copy" && fail "--noiter made pre-copy rounds: $out"
[ "$(b vzlist -H -o status 202 | tr -d ' ')" = running ] || fail "202 not running on b: $out"
whole=$(pause "$out")
ok "online migration without pre-copy (--noiter): frozen ${whole} ms (with pre-copy ${iter} ms)"
for v in 201 202; do b vzctl stop --fast $v >/dev/null 2>&1; b vzctl destroy $v >/dev/null 2>&1; done
echo "VMTEST-PASS migrate"
