# Runs as PID 1's child in the VM lane (tests/vm/run.sh): simfs disk quota on a file
# system with ext4 project quota; a ploop VE's df and its online growth. Prints "ok ..."
# per check, "FAIL ..." and stops at the first failure, "VMTEST-PASS" when all held.
set -u
fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok $*"; }
n() { vzlist -H -o "$1" 101 | tr -d ' '; }
# As the VE's root, inside it: host root passes hard limits, and other host users cannot
# reach a VE's files (their directories are 0700).
asve() { vzctl exec2 101 "$1" </dev/null; }

truncate -s 256M /tmp/disk.img
mkfs.ext4 -q -F -O quota,project -E quotatype=prjquota /tmp/disk.img || fail "mkfs.ext4 with project quota"
mount -o loop,prjquota /tmp/disk.img /vz || fail "mount with prjquota"
mkdir -p /vz/conf/conf
cat > /vz/conf/vz.conf <<E
VE_ROOT="/vz/root/\$VEID"
VE_PRIVATE="/vz/private/\$VEID"
TEMPLATE="/vz/template"
LOCKDIR="/vz/lock"
E
export VZ_CONF_DIR=/vz/conf PATH=/bin

out=$(vzctl create 101 --diskspace 2M:3M --diskinodes 40:60 2>&1) || fail "create: $out"
case "$out" in *"not enforced"*) fail "project quota not used: $out" ;; esac
ok "simfs VE created on a file system with project quota"
[ "$(n diskspace.h)" = 3072 ] && [ "$(n diskinodes.h)" = 60 ] || fail "limits: $(n diskspace.h) $(n diskinodes.h)"
used0=$(n diskspace)
inodes0=$(n diskinodes)
[ "$used0" -gt 0 ] && [ "$inodes0" -gt 0 ] || fail "usage not reported: $used0 KiB, $inodes0 inodes"
ok "vzlist reports usage: $used0 KiB, $inodes0 inodes"
out=$(vzctl start 101 2>&1) || fail "start: $out"
# ext4 reports a project directory's quota in statfs: min(soft, hard), as vzquota did.
s=$(asve 'df -k / | tail -n 1' | awk '{print $2}')
[ "$s" = 2048 ] || fail "df in a simfs VE shows $s KiB, soft limit 2048"
ok "df in a simfs VE shows its soft limit: $s KiB"

out=$(asve 'dd if=/dev/zero of=/fill bs=1K count=8192' 2>&1)
case "$out" in *"Disk quota exceeded"*) ;; *) fail "no EDQUOT writing past 3M: $out" ;; esac
used=$(n diskspace)
[ "$used" -ge 2900 ] && [ "$used" -le 3072 ] || fail "held $used KiB at the hard limit 3072"
ok "write past the hard limit: EDQUOT at $used KiB"

made=$(asve 'i=0; while touch /i$i 2>/dev/null; do i=$((i+1)); done; echo $i')
[ "$(n diskinodes)" = 60 ] || fail "inodes: $(n diskinodes) in use after $made files, hard limit 60"
ok "files past the inode limit refused at 60 ($made made)"

out=$(vzctl set 101 --diskspace 2M:6M --diskinodes 40:100 --save 2>&1) || fail "set: $out"
asve 'dd if=/dev/zero of=/fill2 bs=1K count=1024 2>/dev/null' || fail "write after raising the limit"
asve 'touch /more' || fail "file after raising the inode limit"
ok "raised limits let the VE go on"

# A new file inherits the VE's project: it counts.
before=$(n diskinodes)
asve 'mkdir /d && touch /d/x' 
[ "$(n diskinodes)" = $((before + 2)) ] || fail "new files not in the project: $before -> $(n diskinodes)"
ok "new files inherit the project"
vzctl stop --fast 101 >/dev/null 2>&1 || fail "stop"

# ploop: the VE's df shows its limit, and a raised limit grows the image's file system
# online (root here has CAP_SYS_RESOURCE, which ext4's resize asks for).
size() { vzctl exec2 103 'df -k / | tail -n 1' </dev/null | awk '{print $2}'; }
out=$(vzctl create 103 --layout ploop --diskspace 40M:48M 2>&1) || fail "ploop create: $out"
out=$(vzctl start 103 2>&1) || fail "ploop start: $out"
s=$(size)
[ "$s" -ge 49152 ] && [ "$s" -le 51000 ] || fail "df shows $s KiB for a 48M limit"
ok "df in a ploop VE shows its limit: $s KiB for 49152"
out=$(vzctl set 103 --diskspace 60M:64M 2>&1) || fail "ploop live grow: $out"
case "$out" in *"next start"*) fail "grown at the next start only: $out" ;; esac
s=$(size)
[ "$s" -ge 65536 ] && [ "$s" -le 67700 ] || fail "df shows $s KiB after raising to 64M live"
vzctl exec2 103 'dd if=/dev/zero of=/fill bs=1M count=56' </dev/null >/dev/null 2>&1 || fail "56M write after growing"
ok "raised live: the file system grown online to $s KiB, a 56M write fits"
vzctl stop --fast 103 >/dev/null 2>&1 || fail "ploop stop"
# The next scripts use this /vz too: nothing of this one's left but VE 101.
vzctl destroy 103 >/dev/null 2>&1 || fail "ploop destroy"
echo "VMTEST-PASS"
