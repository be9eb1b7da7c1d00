#!/bin/sh
# make e2e-all: the whole end-to-end matrix, one run after another: for each
# guest kernel (E2E_ALL_KERNELS, "6.1 6.12"), the test guest is built (make
# images GUEST_KERNEL=K), then the in-guest test (tests/e2e/run.sh) and the
# host path (tests/e2e/host-run.sh) for each NFS version (E2E_ALL_VERS,
# "3 4.1 4.2"), then vsnfs share (tests/e2e/share-run.sh). Every run goes on
# whatever the previous one did; at the end a table of each run's result and
# duration, and the exit status says whether all passed.
# Logs: each run's output in .e2e/all/NAME.log.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
kernels=${E2E_ALL_KERNELS:-6.1 6.12}
versions=${E2E_ALL_VERS:-3 4.1 4.2}
logs=$top/.e2e/all
rm -rf "$logs"; mkdir -p "$logs"
table=$logs/summary
: > "$table"
rc=0
run() { # NAME KERNEL COMMAND...: runs COMMAND with GUEST_KERNEL=KERNEL, logs and times it
    name=$1 kernel=$2; shift 2
    start=$(date +%s)
    if GUEST_KERNEL=$kernel "$@" > "$logs/$name.log" 2>&1; then result=pass; else result=FAIL; rc=1; fi
    secs=$(( $(date +%s) - start ))
    line=$(printf '%-22s %-4s %5ss  %s' "$name" "$result" "$secs" "$(tail -n 1 "$logs/$name.log")")
    echo "$line" | tee -a "$table"
}
for k in $kernels; do
    if ! ${MAKE:-make} -C "$top" images GUEST_KERNEL="$k" > "$logs/images-$k.log" 2>&1; then
        echo "images-$k FAIL: see ${logs#$top/}/images-$k.log" | tee -a "$table"
        rc=1
        continue
    fi
    for v in $versions; do
        run "e2e-v$v-$k" "$k" sh "$top/tests/e2e/run.sh" "$v"
        run "e2e-host-v$v-$k" "$k" sh "$top/tests/e2e/host-run.sh" "$v"
    done
    run "e2e-share-$k" "$k" sh "$top/tests/e2e/share-run.sh"
done
echo "e2e-all (logs: ${logs#$top/}):"
cat "$table"
exit $rc
