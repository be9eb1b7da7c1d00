#!/bin/sh
# Smoke test of the vhost-user-vsock device against real QEMU and a real
# guest kernel: vsnfs serves DIR on `vhost-user:SOCK:cid=3` on the host; a
# q35 guest (TCG) with shared memory and vhost-user-vsock-pci runs probe.c,
# which speaks ONC RPC to CID 2 port 2049 over virtio-vsock. The guest runs
# it, reboots and runs it again (the driver resets the device: GET_VRING_BASE,
# then new rings); then QEMU is started again on the same socket (a new
# front-end connection to the same vsnfs). The listener forwards other ports
# (forward=BASE): the guest reaches a host Unix socket on port 7000, and a
# host process reaches the guest's port 5000 with CONNECT (forward-peer.py).
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
rm -f "$work/forwarded" "$work/fwd" "$work"/fwd_*
"$vsnfs" serve "$work/share" --listen "vhost-user:$sock:cid=3:forward=$work/fwd" --state-dir "$work/state" \
    --control "$work/control" --log-level debug > "$work/vsnfs.log" 2>&1 &
server=$!
python3 "$top/tests/vhost-user/forward-peer.py" "$work/fwd" "$work/forwarded" &
peer=$!
trap 'kill $server $peer 2>/dev/null || true' EXIT
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "vsnfs did not create $sock"; cat "$work/vsnfs.log"; exit 1; }
    sleep 0.1
done

qemu() { # CONSOLE EXTRA-ARGS... (run it with &: it becomes QEMU, so $! is QEMU's pid)
    console=$1
    shift
    exec qemu-system-x86_64 -accel tcg -M q35 -m 512 -smp 1 -nographic -nic none \
        -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
        -chardev socket,id=vu,path="$sock" -device vhost-user-vsock-pci,chardev=vu \
        -kernel "$cache/$kpkg"/boot/vmlinuz-* -initrd "$work/initramfs.cpio.gz" "$@" > "$console" 2>&1
}
# First QEMU: boot, probe, reboot, probe again, then stopped here.
: > "$work/console.log"
qemu "$work/console.log" -append "console=ttyS0 quiet panic=-1 vsnfs.reboot=1 vsnfs.forward=1" &
vm=$!
i=0
# (grep -c exits 1 when it counts none, which set -e would take for a failure)
exits() { n=$(grep -ac PROBE-EXIT "$work/console.log" 2>/dev/null || true); echo "${n:-0}"; }
while [ "$(exits)" -lt 2 ] && kill -0 $vm 2>/dev/null && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done
kill $vm 2>/dev/null || true
wait $vm 2>/dev/null || true
# Second QEMU on the same socket: vsnfs was not restarted.
qemu "$work/console2.log" -no-reboot -append "console=ttyS0 quiet panic=-1 vsnfs.forward=1" &
vm=$!
i=0
while kill -0 $vm 2>/dev/null && [ $i -lt 180 ]; do sleep 1; i=$((i + 1)); done
kill $vm 2>/dev/null || true
wait $vm 2>/dev/null || true
grep -a "probe:\|PROBE" "$work/console.log" "$work/console2.log" | tr -d '\r' || true
kill $server $peer 2>/dev/null || true
wait $server $peer 2>/dev/null || true
trap - EXIT
echo "host CONNECT echoes: $(wc -l < "$work/forwarded" 2>/dev/null || echo 0)"
if [ "$(grep -ac PROBE-OK "$work/console.log")" = 2 ] && grep -aq "PROBE-OK" "$work/console2.log" \
    && [ "$(wc -l < "$work/forwarded" 2>/dev/null || echo 0)" -ge 3 ]; then
    echo "qemu-smoke: PASS"
else
    echo "qemu-smoke: FAIL (console: $work/console.log, server log: $work/vsnfs.log)"
    tail -20 "$work/console.log"
    tail -20 "$work/vsnfs.log"
    exit 1
fi
