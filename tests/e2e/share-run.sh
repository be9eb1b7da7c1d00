#!/bin/sh
# make e2e-share: the one-command share, for real. `vsnfs share DIR... --
# qemu-system-x86_64 <the test guest>` with vsnfs's vhost-user-vsock device
# (no /dev/vhost-vsock needed) boots the guest (vm-images/), which mounts by
# itself with `vsnfs-mount --auto` (tests/e2e/share-workload.sh): run 1 from
# fw_cfg only, run 2 from the kernel command line only. Each run checks the
# host's file, writes one back and powers off with a status; this checks
# that vsnfs share returned that status and that the host sees the file.
# Prints "N passed, M failed".
#   tests/e2e/share-run.sh
# Expects `make images` (the guest, and the release vsnfs in .build-guest).
# Consoles: .e2e/share/ (.e2e/share-6.12/). Environment: GUEST_KERNEL (6.1 or
# 6.12, vm-images/scripts/guest-kernel.sh), VSNFS (binary), E2E_TIMEOUT (s per run; 300).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/vm-images/scripts/guest-kernel.sh"
images=$top/vm-images/$guest_out
vsnfs=${VSNFS:-$top/.build-guest/release/vsnfs}
work=$top/.e2e/share$guest_tag
timeout_s=${E2E_TIMEOUT:-300}
for f in "$vsnfs" "$images/vmlinuz" "$images/initramfs.cpio.gz"; do
    [ -e "$f" ] || { echo "e2e-share: $f is missing; run make images" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "e2e-share: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 1; }

rm -rf "$work"
share=$work/share second="$work/second dir"   # a blank in the path: %20 in the requests
mkdir -p "$share" "$second" "$work/state" "$work/tmp"
chmod 0777 "$share"   # root_squash: the guest's root writes as nobody
head -c 100000 /dev/urandom | base64 > "$share/from-host.txt"
host_sum=$(sha256sum "$share/from-host.txt" | cut -d' ' -f1)
echo "second share" > "$second/second.txt"

passed=0 failed=0
result() { # result NAME WHY TEST...: PASS NAME if TEST succeeds, else FAIL NAME: WHY
    name=$1 why=$2; shift 2
    if "$@"; then echo "PASS $name"; passed=$((passed + 1)); else echo "FAIL $name: $why"; failed=$((failed + 1)); fi
}

run() { # run N SOURCE
    n=$1 source=$2 stage=$work/stage-$1
    mkdir -p "$stage/workload"
    cp "$top/tests/e2e/share-workload.sh" "$stage/workload/run"
    {
        echo "SOURCE=$source RUN=$n HOST_SUM=$host_sum"
        echo "SHARE_MNT=/mnt/share"
        echo "SECOND_MNT='$second'"
    } > "$stage/workload/env"
    (cd "$stage" && find workload | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$work/workload-$n.cpio.gz"
    cat "$images/initramfs.cpio.gz" "$work/workload-$n.cpio.gz" > "$work/initrd-$n.gz"
    # /dev/kvm hangs guests on these machines: TCG (no_timer_check: a loaded
    # host can make the kernel's IO-APIC timer check fail and panic). vsnfs
    # share adds the vsock device, shared memory, fw_cfg and vsnfs.mount= itself.
    start=$(date +%s)
    set +e
    # TMPDIR: where vsnfs share makes its private socket directory (checked below).
    TMPDIR=$work/tmp timeout -k 10 "$timeout_s" "$vsnfs" share --state-dir "$work/state" "$share:/mnt/share" "$second" -- \
        qemu-system-x86_64 -accel tcg -M q35 -m 512 -smp 2 -nographic -no-reboot -nic none \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -kernel "$images/vmlinuz" -initrd "$work/initrd-$n.gz" -append "console=ttyS0 quiet panic=-1 no_timer_check tsc=reliable" \
        < /dev/null > "$work/console-$n.log" 2>&1
    rc=$?
    set -e
    tr -d '\r' < "$work/console-$n.log" > "$work/console-$n.txt"
    grep -E '^(PASS|FAIL) ' "$work/console-$n.txt" | sed "s/^/run $n (guest): /"
    passed=$((passed + $(grep -c '^PASS ' "$work/console-$n.txt" || true)))
    failed=$((failed + $(grep -c '^FAIL ' "$work/console-$n.txt" || true)))
    echo "e2e-share: run $n ($source) took $(( $(date +%s) - start ))s, vsnfs share returned $rc" >&2
    # 33: the guest's isa-debug-exit value 0x10 for success, (0x10 << 1) | 1.
    result "run $n: vsnfs share returned the guest's success status (33)" \
        "returned $rc; see ${work#$top/}/console-$n.txt" [ "$rc" = 33 ]
    want="written by the guest in run $n"
    result "run $n: the host sees the file the guest wrote" "from-guest-$n.txt is missing or differs" \
        [ "$(cat "$share/from-guest-$n.txt" 2>/dev/null)" = "$want" ]
    left=$(ls -A "$work/tmp")
    result "run $n: vsnfs share removed its private socket directory" "left in \$TMPDIR: $left" [ -z "$left" ]
}
run 1 fw_cfg
run 2 cmdline

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
