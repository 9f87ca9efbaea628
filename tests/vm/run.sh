#!/bin/bash
# VM lane: paths that need kernel features this host's kernel lacks, run in a stock Debian
# kernel under qemu (TCG): simfs disk quota on ext4 project quota (this host's kernel has
# no quota format, CONFIG_QFMT_V2), the pure cgroup2 layout (this host is hybrid), and
# migration with iterative pre-copy (this host's kernel has no soft-dirty bits).
# Builds an initramfs with busybox, our binaries, criu, OpenSSH and rsync, boots it and
# reads the verdict of each script from the serial console.
# Usage: tests/vm/run.sh TARGET_DIR BIN_DIR   (cargo xtask vm passes both)
# VM_SCRIPTS="migrate.sh" runs only those scripts (quicker while working on one).
set -euo pipefail
target=$(realpath "$1")
bins=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
scripts=${VM_SCRIPTS:-quota.sh cgroup2.sh migrate.sh}
criu=$(command -v criu || echo /usr/local/sbin/criu)
# Debian's sshd, unpacked (not installed) by cargo xtask setup, and the library it brings.
sshd=/var/cache/vzbpf/openssh/usr/sbin/sshd
sshlibs=/var/cache/vzbpf/openssh/usr/lib/x86_64-linux-gnu
kver=6.1.0-56-amd64
vm=$target/vm
mkdir -p "$vm"
cd "$vm"
# The kernel package, once (cached in target/vm).
if [ ! -f k/boot/vmlinuz-$kver ]; then
    rm -rf k dl && mkdir -p dl
    (cd dl && apt-get download -qq linux-image-$kver >/dev/null)
    dpkg-deb -x dl/*.deb k
fi
root=$(mktemp -d "$vm/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,vz,run,var,lib/modules,lib64,lib/x86_64-linux-gnu}
ln -s ../run "$root/var/run"
# Programs and the shared libraries they load (GNU tar: templates use --xattrs; criu runs
# iproute2's ip to save a VE's routes; rsync and OpenSSH carry a migration).
for p in "$bins/vzctl" "$bins/vzlist" "$bins/vzstat" "$bins/vzmigrate" "$bins/vzeventd" "$(command -v mkfs.ext4)" \
    "$(command -v resize2fs)" "$(command -v e2fsck)" \
    "$(command -v tar)" "$(command -v zstd)" "$criu" "$(command -v ip)" "$(command -v rsync)" \
    "$(command -v ssh)" "$(command -v ssh-keygen)" "$sshd"; do
    cp "$p" "$root/bin/"
    for l in $(LD_LIBRARY_PATH=$sshlibs ldd "$p" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
        case $l in $sshlibs/*) cp -L "$l" "$root/lib/x86_64-linux-gnu/" ;;
        *) mkdir -p "$root$(dirname "$l")" && cp -L "$l" "$root$l" ;;
        esac
    done
done
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
mods=k/lib/modules/$kver/kernel
for m in lib/crc16.ko crypto/crc32c_generic.ko lib/libcrc32c.ko fs/mbcache.ko fs/jbd2/jbd2.ko fs/ext4/ext4.ko \
    fs/quota/quota_tree.ko fs/quota/quota_v2.ko drivers/block/loop.ko block/bfq.ko drivers/net/veth.ko \
    net/sched/sch_ingress.ko net/sched/cls_bpf.ko net/netfilter/nfnetlink.ko net/netfilter/nf_tables.ko \
    net/ipv4/netfilter/nf_defrag_ipv4.ko net/ipv6/netfilter/nf_defrag_ipv6.ko net/netfilter/nf_conntrack.ko \
    net/netfilter/nf_conntrack_netlink.ko \
    drivers/net/tun.ko net/ipv4/inet_diag.ko net/ipv4/tcp_diag.ko net/ipv4/udp_diag.ko net/ipv4/raw_diag.ko \
    net/unix/unix_diag.ko net/netlink/netlink_diag.ko net/packet/af_packet_diag.ko fs/autofs/autofs4.ko; do
    cp "$mods/$m" "$root/lib/modules/"
done
printf 'root:x:0:0::/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cp "$here"/*.sh "$root/"
echo "$scripts" > "$root/scripts"
# Stage 1 leaves the initramfs root (pivot_root, which VE start uses, refuses rootfs):
# / bind-mounted, moved over itself, chrooted into; stage 2 runs the tests.
cat > "$root/init" <<'INIT'
#!/bin/sh
mkdir -p /r
mount --bind / /r
cd /r
mount --move . /
exec chroot . /bin/sh /stage2
INIT
cat > "$root/stage2" <<'INIT'
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs run /run; mkdir -p /dev/pts; mount -t devpts -o ptmxmode=666 devpts /dev/pts
for m in crc16 crc32c_generic libcrc32c mbcache jbd2 ext4 quota_tree quota_v2 loop bfq veth sch_ingress cls_bpf \
    nfnetlink nf_tables nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink tun inet_diag tcp_diag udp_diag raw_diag unix_diag netlink_diag af_packet_diag autofs4; do
    insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
for t in $(cat /scripts); do
    sh /$t 2>&1 || break
done
echo "VMTEST-END"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$vm/initramfs.gz"
log=$vm/console.log
timeout 600 qemu-system-x86_64 -accel tcg,thread=multi -smp 2 -cpu max -m 3072 -nographic -no-reboot \
    -kernel k/boot/vmlinuz-$kver -initrd "$vm/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1" > "$log" 2>&1 || true
tr -d '\r' < "$log" | sed -n '/VMTEST/p;/^ok /p;/^FAIL/p'
[ "$(grep -c "VMTEST-PASS" "$log")" = "$(echo $scripts | wc -w)" ]
