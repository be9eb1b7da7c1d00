#!/bin/sh
# The guest kernel's NFSv3 client reaches vsnfs on the host through the
# vhost-user-vsock device: vsnfs serves DIR on `vhost-user:SOCK:cid=3`; a q35
# guest (TCG, shared memory, vhost-user-vsock-pci) mounts it through a small
# loopback relay (relay.c), reads a file the host wrote, writes one the host
# then checks, and makes a tree of 200 files. A second guest, CID 5 on a
# second vhost-user listener of the same vsnfs, is refused by the exports file.
#   tests/vhost-user/qemu-nfs.sh [VSNFS_BINARY [VSNFS_MOUNT_BINARY]]
# With VSNFS_MOUNT_BINARY (e.g. .build/debug/vsnfs-mount; its shared
# libraries are copied in), the guest mounts with `mount -t vsnfs -o vers=3
# 2:/...` through the product's relay instead of relay.c.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
vsnfs=${1:-$top/.build/debug/vsnfs}
mount_bin=${2:-}
work=$top/.e2e/vhost-user-nfs
cache=$top/vm-images/cache
mkdir -p "$work"
[ -f "$cache/kernel-package" ] || sh "$top/vm-images/scripts/fetch-debs.sh" "$cache"
kpkg=$(cat "$cache/kernel-package")

gcc -O2 -static -Wall -o "$work/vhost-user-relay" "$top/tests/vhost-user/relay.c"
sh "$top/vm-images/scripts/build-initramfs.sh" "$work/initramfs.cpio.gz" "$cache" "$top/tests/vhost-user/init-nfs" \
    "virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport nfs nfsv3" "$work/vhost-user-relay $mount_bin" ""

sock=$work/vm.sock
rm -rf "$work/share" "$work/state" "$sock"
mkdir -p "$work/share" "$work/state"
head -c 3000000 /dev/urandom > "$work/share/fromhost.bin"
head -c 67108864 /dev/zero > "$work/share/big.bin"
printf '%s vsock:3(rw,no_root_squash) vsock:4(ro)\n' "$work/share" > "$work/exports"
"$vsnfs" serve --exports "$work/exports" --listen "vhost-user:$sock:cid=3" --listen "vhost-user:$work/vm5.sock:cid=5" \
    --state-dir "$work/state" > "$work/vsnfs.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "vsnfs did not create $sock"; cat "$work/vsnfs.log"; exit 1; }
    sleep 0.1
done
guest() { # SOCKET CONSOLE EXTRA-KERNEL-ARGS
    start=$(date +%s)
    timeout 300 qemu-system-x86_64 -accel tcg -M q35 -m 512 -smp 2 -nographic -no-reboot -nic none \
        -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
        -chardev socket,id=vu,path="$1" -device vhost-user-vsock-pci,chardev=vu \
        -kernel "$cache/$kpkg"/boot/vmlinuz-* -initrd "$work/initramfs.cpio.gz" \
        -append "console=ttyS0 quiet panic=-1 vsnfs.export=$work/share $3" > "$2" 2>&1 || true
    echo "qemu-nfs: guest ran $(( $(date +%s) - start )) s"
}
guest "$sock" "$work/console.log" ""
guest "$work/vm5.sock" "$work/console5.log" "vsnfs.expect=refused"
kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
trap - EXIT
grep -a "NFS-\|GUEST-\|relay:" "$work/console.log" "$work/console5.log" | tr -d '\r' || true
ok=1
grep -aq "NFS-REFUSED" "$work/console5.log" || { echo "CID 5 was not refused"; ok=0; }
grep -aq "NFS-OK" "$work/console.log" || ok=0
host_md5=$(md5sum < "$work/share/fromhost.bin" | cut -d' ' -f1)
grep -aq "GUEST-SAW-HOST $host_md5" "$work/console.log" || { echo "guest read a different fromhost.bin"; ok=0; }
if [ -f "$work/share/fromguest.bin" ]; then
    guest_md5=$(md5sum < "$work/share/fromguest.bin" | cut -d' ' -f1)
    grep -aq "GUEST-WROTE $guest_md5" "$work/console.log" || { echo "host has a different fromguest.bin"; ok=0; }
else
    echo "no fromguest.bin on the host"; ok=0
fi
[ "$(ls "$work/share/tree" 2>/dev/null | wc -l)" = 200 ] || { echo "tree incomplete on the host"; ok=0; }
if [ $ok = 1 ]; then echo "qemu-nfs: PASS"; else
    echo "qemu-nfs: FAIL (console: $work/console.log, server log: $work/vsnfs.log)"
    tail -20 "$work/console.log"; tail -20 "$work/vsnfs.log"; exit 1
fi
