#!/bin/sh
# Assembles the test guest's initramfs from unpacked Debian packages and our
# binaries, and writes it as a gzip'd newc cpio archive.
#   build-initramfs.sh OUT.cpio.gz CACHE INIT MODULES BINS EXTRA_BINS [DLOPEN_LIBS]
# MODULES: module names; they and their dependencies are loaded at boot, in
#          dependency order (the list goes to /etc/modules.load).
# BINS:    our binaries (installed in /usr/bin, with the shared libraries ldd lists).
# EXTRA_BINS: other host binaries (fio, ...), installed the same way.
# DLOPEN_LIBS: sonames our binaries dlopen (found with ldconfig -p), installed
#          at the host's path with the libraries they need.
set -eu
out=$1 cache=$2 init=$3 modules=$4 bins=$5 extra_bins=$6 dlopen_libs=${7:-}
here=$(cd "$(dirname "$0")" && pwd)
kpkg=$(cat "$cache/kernel-package")
kver=${kpkg#linux-image-}
# Debian 12 ships the modules in /lib/modules, Debian 13 (merged /usr) in /usr/lib/modules.
moddir=$cache/$kpkg/lib/modules/$kver
[ -d "$moddir" ] || moddir=$cache/$kpkg/usr/lib/modules/$kver
[ -d "$moddir" ] || { echo "build-initramfs: no modules for $kver under $cache/$kpkg" >&2; exit 1; }
root=$(mktemp -d "${TMPDIR:-/tmp}/vsnfs-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/bin "$root"/sbin "$root"/usr/bin "$root"/usr/sbin "$root"/etc \
         "$root"/proc "$root"/sys "$root"/dev "$root"/tmp "$root"/run "$root"/mnt \
         "$root"/lib/modules/"$kver" "$root"/root "$root"/var/lib "$root"/var/tmp
for bb in "$cache"/busybox-static/bin/busybox "$cache"/busybox-static/usr/bin/busybox; do
    [ -e "$bb" ] && { cp "$bb" "$root"/bin/busybox; break; }
done
[ -e "$root"/bin/busybox ] || { echo "build-initramfs: no busybox in $cache/busybox-static" >&2; exit 1; }
cp "$init" "$root"/init
chmod 755 "$root"/init
# mktemp made the root 0700, and the archive's "." sets the guest's /: users
# other than root (the uid-mapping check runs as uid 1000) must reach /bin.
chmod 755 "$root"
chmod 1777 "$root"/tmp "$root"/var/tmp

# Kernel modules: only the ones needed, with a load list in dependency order.
# Compressed ones (.ko.xz) go in decompressed: busybox insmod reads plain .ko.
sh "$here"/modorder.sh "$moddir" $modules > "$root"/etc/modules.order
while read -r ko; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$ko")"
    case $ko in
    *.ko.xz) xz -dc "$moddir/$ko" > "$root/lib/modules/$kver/${ko%.xz}" ;;
    *) cp "$moddir/$ko" "$root/lib/modules/$kver/$ko" ;;
    esac
    echo "${ko%.xz}"
done < "$root"/etc/modules.order > "$root"/etc/modules.load
rm "$root"/etc/modules.order

# Binaries and the shared libraries they need, at the paths ldd reports.
install_bin() {
    src=$1
    [ -x "$src" ] || { echo "build-initramfs: $src is not an executable" >&2; exit 1; }
    cp -L "$src" "$root"/usr/bin/
    # Symbols are not needed in the test guest; stripping halves the initramfs.
    strip --strip-unneeded "$root/usr/bin/$(basename "$src")" 2>/dev/null || true
    install_libs_of "$src"
}
install_libs_of() {
    ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }' |
    while read -r lib; do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
for b in $bins $extra_bins; do install_bin "$b"; done
for soname in $dlopen_libs; do
    lib=$(ldconfig -p | awk -v n="$soname" '$1 == n && /x86-64/ { print $NF; exit }')
    [ -n "$lib" ] || { echo "build-initramfs: $soname is not installed (apt-get install the package that ships it, e.g. libnl-3-200)" >&2; exit 1; }
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    install_libs_of "$lib"
done
# mount(8) finds filesystem helpers as /sbin/mount.TYPE.
[ -e "$root"/usr/bin/vsnfs-mount ] && ln -s /usr/bin/vsnfs-mount "$root"/sbin/mount.vsnfs

echo "root:x:0:0:root:/root:/bin/sh" > "$root"/etc/passwd
echo "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" >> "$root"/etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root"/etc/group
echo "$kver" > "$root"/etc/kernel-release

mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
