#!/bin/sh
# End-to-end test: boots the test guest (vm-images/) under qemu, runs
# workload.sh inside it against `vsnfs serve` over vsock loopback with the
# guest kernel's NFS client, and prints one line: "N passed, M failed".
#   tests/e2e/run.sh [VERS]     VERS: 3 (default), 4.1 or 4.2
# The guest console is saved to .e2e/console-v$VERS.log (-v$VERS-6.12 with
# GUEST_KERNEL=6.12: the guest's kernel, vm-images/scripts/guest-kernel.sh).
# Expects the images built (make images); the top-level `make e2e` does that.
# E2E_WORKLOAD=path runs another guest script instead of workload.sh.
# E2E_SERVER_PRELOAD=file.c builds file.c as a shared library and runs the
# server with it preloaded (tests/e2e/corrupt-read.c: a server returning
# corrupt READ data, which must make the run fail).
set -eu
vers=${1:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/vm-images/scripts/guest-kernel.sh"
images=$top/vm-images/$guest_out
work=$top/.e2e
log=$work/console-v$vers$guest_tag.log
timeout_s=${E2E_TIMEOUT:-1200}
mkdir -p "$work"

# The workload goes into the guest as a second initramfs archive.
stage=$(mktemp -d "${TMPDIR:-/tmp}/vsnfs-e2e.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/workload"
cp "${E2E_WORKLOAD:-$top/tests/e2e/workload.sh}" "$stage/workload/run"
cp "$top/tests/e2e/checks.sh" "$stage/workload/checks.sh"
echo "VERS=$vers" > "$stage/workload/env"
# Workload sizes, passed through if set (see workload.sh).
for var in TREE_DIRS TREE_PER_DIR FILE_SIZES; do
    eval "value=\${$var:-}"
    [ -z "$value" ] || echo "$var='$value'" >> "$stage/workload/env"
done
if [ ! -x "$work/vsock-echo" ] || [ "$top/tests/e2e/vsock-echo.c" -nt "$work/vsock-echo" ]; then
    cc -O2 -static -o "$work/vsock-echo" "$top/tests/e2e/vsock-echo.c"
fi
cp "$work/vsock-echo" "$stage/workload/"
if [ ! -x "$work/locker" ] || [ "$top/tests/e2e/locker.c" -nt "$work/locker" ]; then
    cc -O2 -static -o "$work/locker" "$top/tests/e2e/locker.c"
fi
cp "$work/locker" "$stage/workload/"
if [ -n "${E2E_SERVER_PRELOAD:-}" ]; then
    cc -shared -fPIC -O2 -o "$stage/workload/preload.so" "$E2E_SERVER_PRELOAD"
    echo "SERVER_PRELOAD=/workload/preload.so" >> "$stage/workload/env"
fi
(cd "$stage" && find workload | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$work/workload-v$vers$guest_tag.cpio.gz"

start=$(date +%s)
set +e
sh "$top/vm-images/scripts/boot.sh" "$log" "$timeout_s" "$images/vmlinuz" "$images/initramfs.cpio.gz" \
    "$work/workload-v$vers$guest_tag.cpio.gz"
qemu_rc=$?
set -e
secs=$(( $(date +%s) - start ))

tr -d '\r' < "$log" > "$log.txt"
passed=$(grep -c '^PASS ' "$log.txt" || true)
failed=$(grep -c '^FAIL ' "$log.txt" || true)
grep '^FAIL ' "$log.txt" >&2 || true
if ! grep -q '^VSNFS-WORKLOAD-EXIT ' "$log.txt"; then
    echo "e2e: the guest did not finish the workload (qemu exit $qemu_rc after ${secs}s; timeout ${timeout_s}s); see $log" >&2
    failed=$((failed + 1))
elif ! grep -q '^SUMMARY ' "$log.txt"; then
    echo "e2e: the workload stopped early; see $log" >&2
    failed=$((failed + 1))
fi
echo "e2e (NFSv$vers, kernel $guest_kernel, ${secs}s, console: ${log#$top/}): " >&2
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
