#!/bin/sh
# Boots the test guest under qemu (software emulation) and saves its serial
# console to LOG. Extra initramfs archives (e.g. a workload) are appended to
# the base one; the kernel unpacks them all in order.
#   boot.sh LOG TIMEOUT_SECONDS KERNEL INITRD [EXTRA_CPIO...]
# Environment: QEMU_MEM (MiB, 1024), QEMU_SMP (2), GUEST_APPEND (extra kernel args),
#              QEMU_EXTRA (extra qemu args, e.g. a vhost-vsock device).
set -eu
log=$1 timeout_s=$2 kernel=$3 initrd=$4; shift 4
initrd_all=$initrd
if [ $# -gt 0 ]; then
    initrd_all=$(mktemp "${TMPDIR:-/tmp}/vsnfs-initrd.XXXXXX")
    trap 'rm -f "$initrd_all"' EXIT
    cat "$initrd" "$@" > "$initrd_all"
fi
mkdir -p "$(dirname "$log")"
# /dev/kvm exists on these machines but hangs guests: TCG only.
# tsc=reliable: a 6.12 guest died once here with "Oops: int3" at
# sched_clock_cpu, a static branch being live-patched (int3) while the other
# vCPU ran it under multi-threaded TCG. That branch flips when the TSC is
# marked unstable, which the clocksource watchdog does on a busy emulated
# host; tsc=reliable turns the watchdog off for the TSC.
# shellcheck disable=SC2086
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 -accel tcg -M q35 \
    -m "${QEMU_MEM:-1024}" -smp "${QEMU_SMP:-2}" -nographic -no-reboot -nic none \
    -kernel "$kernel" -initrd "$initrd_all" \
    -append "console=ttyS0 quiet panic=-1 tsc=reliable ${GUEST_APPEND:-}" ${QEMU_EXTRA:-} \
    < /dev/null > "$log" 2>&1
