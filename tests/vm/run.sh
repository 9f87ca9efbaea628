#!/bin/bash
# VM lane: paths that need kernel features this host's kernel lacks, run in a stock Debian
# kernel under qemu (TCG): simfs disk quota on ext4 project quota (this host's kernel has
# no quota format, CONFIG_QFMT_V2), and the pure cgroup2 layout (this host is hybrid).
# Builds an initramfs with busybox, vzctl/vzlist and
# mkfs.ext4, boots it and reads the verdict from the serial console.
# Usage: tests/vm/run.sh TARGET_DIR BIN_DIR   (cargo xtask vm passes both)
set -euo pipefail
target=$(realpath "$1")
bins=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
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
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,vz,lib/modules,lib64,lib/x86_64-linux-gnu}
# Programs and the shared libraries they load (GNU tar: templates use --xattrs).
for p in "$bins/vzctl" "$bins/vzlist" "$bins/vzstat" "$(command -v mkfs.ext4)" "$(command -v tar)"; do
    cp "$p" "$root/bin/"
    for l in $(ldd "$p" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
        mkdir -p "$root$(dirname "$l")"
        cp -L "$l" "$root$l"
    done
done
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
mods=k/lib/modules/$kver/kernel
for m in lib/crc16.ko crypto/crc32c_generic.ko lib/libcrc32c.ko fs/mbcache.ko fs/jbd2/jbd2.ko fs/ext4/ext4.ko \
    fs/quota/quota_tree.ko fs/quota/quota_v2.ko drivers/block/loop.ko block/bfq.ko drivers/net/veth.ko \
    net/sched/sch_ingress.ko net/sched/cls_bpf.ko; do
    cp "$mods/$m" "$root/lib/modules/"
done
printf 'root:x:0:0::/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
cp "$here/quota.sh" "$here/cgroup2.sh" "$root/"
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
for m in crc16 crc32c_generic libcrc32c mbcache jbd2 ext4 quota_tree quota_v2 loop bfq veth sch_ingress cls_bpf; do
    insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
sh /quota.sh 2>&1 && sh /cgroup2.sh 2>&1
echo "VMTEST-END"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$vm/initramfs.gz"
log=$vm/console.log
timeout 300 qemu-system-x86_64 -accel tcg,thread=multi -smp 2 -cpu max -m 1024 -nographic -no-reboot \
    -kernel k/boot/vmlinuz-$kver -initrd "$vm/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1" > "$log" 2>&1 || true
tr -d '\r' < "$log" | sed -n '/VMTEST/p;/^ok /p;/^FAIL/p'
[ "$(grep -c "VMTEST-PASS" "$log")" = 2 ]
