#!/bin/sh
# Builds a usable Debian 12 guest: systemd, Debian's kernel, vsnfs-mount
# (and vsnfs) installed by `make install`, and vsnfs-mount-auto.service
# enabled, so the guest mounts at boot what the hypervisor asks for. Debian
# packages only (debootstrap from deb.debian.org); no loop devices: the root
# filesystem is made from a directory with mkfs.ext4 -d. Run as root.
#   debian-image.sh OUT_DIR CACHE_DIR TOP SIZE
# Writes OUT_DIR/debian.img (raw ext4, the whole disk is the root filesystem),
# OUT_DIR/debian-vmlinuz and OUT_DIR/debian-initrd.img (boot them with
# qemu's -kernel/-initrd; the image has no boot loader).
set -eu
out=$1 cache=$2 top=$3 size=${4:-3G}
suite=bookworm mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "debian-image: run as root (debootstrap and the image's file owners need it)" >&2; exit 1; }
command -v debootstrap > /dev/null 2>&1 || {
    echo "debian-image: installing debootstrap" >&2
    apt-get update -qq > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap > /dev/null
}
mkdir -p "$out" "$cache/debootstrap"
root=$out/debian-root
rm -rf "$root"
trap 'for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done' EXIT

echo "debian-image: debootstrap $suite into $root (a few minutes)" >&2
debootstrap --variant=minbase --cache-dir="$cache/debootstrap" \
    --include=linux-image-amd64,systemd,systemd-sysv,udev,kmod,e2fsprogs,procps,iproute2,less \
    "$suite" "$root" "$mirror"

# vsnfs-mount, mount.vsnfs, vsnfs and the units, as a person installs them.
make -s -C "$top" install DESTDIR="$root" PREFIX=/usr
systemctl --root="$root" enable vsnfs-mount-auto.service

echo vsnfs-guest > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvsnfs-guest\n' > "$root/etc/hosts"
printf '# <fs> <mount point> <type> <options> <dump> <pass>\n/dev/vda / ext4 errors=remount-ro 0 1\n' > "$root/etc/fstab"
cat >> "$root/etc/fstab" <<'EOT'
# A share of the host (CID 2) by hand; vsnfs-mount-auto.service mounts what
# the hypervisor asks for without a line here:
#2:/ /mnt/host vsnfs defaults,nofail 0 0
EOT
# Log in on the console as root without a password (a test VM; set one).
chroot "$root" passwd -d root > /dev/null
# The vsock transport and the NFS client, loaded at boot.
printf 'vmw_vsock_virtio_transport\nnfs\nnfsv3\nnfsv4\n' > "$root/etc/modules-load.d/vsnfs.conf"
rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages

# The initramfs-tools hook (make install-initramfs, for guests without
# systemd) is checked here, not left in: this image mounts with systemd.
make -s -C "$top" install-initramfs DESTDIR="$root" PREFIX=/usr > /dev/null
mount -t proc proc "$root/proc"
chroot "$root" mkinitramfs -o /tmp/hook-check.img "$(ls "$root"/lib/modules | head -n 1)"
chroot "$root" lsinitramfs /tmp/hook-check.img > "$out/hook-check.list"
umount "$root/proc"
for f in usr/bin/vsnfs-mount scripts/init-bottom/vsnfs; do
    grep -qx "$f" "$out/hook-check.list" ||
        { echo "debian-image: the initramfs hook did not put $f in the initramfs" >&2; exit 1; }
done
echo "debian-image: the initramfs hook puts vsnfs-mount and its script in an initramfs" >&2
rm -f "$out/hook-check.list" "$root/tmp/hook-check.img" "$root/etc/initramfs-tools/hooks/vsnfs" "$root/etc/initramfs-tools/scripts/init-bottom/vsnfs"

kver=$(ls "$root"/lib/modules | head -n 1)
cp "$root/boot/vmlinuz-$kver" "$out/debian-vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out/debian-initrd.img"
echo "debian-image: mkfs.ext4 -d $root ($size)" >&2
rm -f "$out/debian.img"
mkfs.ext4 -q -F -L vsnfs-root -d "$root" "$out/debian.img" "$size"
rm -rf "$root"
trap - EXIT
echo "debian-image: $out/debian.img (kernel $kver; boot it as vm-images/Makefile's debian-boot does)"
