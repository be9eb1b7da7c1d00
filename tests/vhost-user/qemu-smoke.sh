#!/bin/sh
# Smoke test of the vhost-user-vsock device against real QEMU and a real
# guest kernel: vsnfs serves DIR on `vhost-user:SOCK:cid=3` on the host; a
# q35 guest (TCG) with shared memory and vhost-user-vsock-pci runs probe.c,
# which speaks ONC RPC to CID 2 port 2049 over virtio-vsock.
#   tests/vhost-user/qemu-smoke.sh [VSNFS_BINARY]
# Needs: qemu-system-x86_64, gcc, and the kernel and busybox packages that
# vm-images/scripts/fetch-debs.sh downloads into vm-images/cache.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
vsnfs=${1:-$top/.build/debug/vsnfs}
work=$top/.e2e/vhost-user
cache=$top/vm-images/cache
mkdir -p "$work"
[ -f "$cache/kernel-package" ] || sh "$top/vm-images/scripts/fetch-debs.sh" "$cache"
kpkg=$(cat "$cache/kernel-package")

gcc -O2 -static -Wall -o "$work/vhost-user-probe" "$top/tests/vhost-user/probe.c"
sh "$top/vm-images/scripts/build-initramfs.sh" "$work/initramfs.cpio.gz" "$cache" "$top/tests/vhost-user/init" \
    "virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport" "$work/vhost-user-probe" ""

sock=$work/vm.sock
rm -rf "$work/share" "$work/state" "$sock"
mkdir -p "$work/share" "$work/state"
"$vsnfs" serve "$work/share" --listen "vhost-user:$sock:cid=3" --state-dir "$work/state" --log-level debug \
    > "$work/vsnfs.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "vsnfs did not create $sock"; cat "$work/vsnfs.log"; exit 1; }
    sleep 0.1
done

timeout 180 qemu-system-x86_64 -accel tcg -M q35 -m 512 -smp 1 -nographic -no-reboot -nic none \
    -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
    -chardev socket,id=vu,path="$sock" -device vhost-user-vsock-pci,chardev=vu \
    -kernel "$cache/$kpkg"/boot/vmlinuz-* -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1" > "$work/console.log" 2>&1 || true
grep -a "probe:\|PROBE" "$work/console.log" || true
kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
trap - EXIT
if grep -aq "PROBE-OK" "$work/console.log"; then
    echo "qemu-smoke: PASS"
else
    echo "qemu-smoke: FAIL (console: $work/console.log, server log: $work/vsnfs.log)"
    tail -20 "$work/console.log"
    tail -20 "$work/vsnfs.log"
    exit 1
fi
