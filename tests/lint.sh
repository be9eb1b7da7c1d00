#!/usr/bin/env bash
# Rules the compiler does not check, run by `make test`:
#
# - No `Synchronization.Mutex`. On Linux its contended path hands the lock over
#   inside the kernel (a priority-inheritance futex), where the thread
#   sanitizer cannot see it: data it guards is then reported as a race, but
#   only in the rare run where two threads met on the lock (CI failed on one
#   such report that no local run repeated). On two cores it also spins. Use
#   NIOLockedValueBox (a pthread mutex, which the sanitizer intercepts) or,
#   for a read-mostly value, HostFS's ReadMostly. `Atomic` is fine.
set -u
cd "$(dirname "$0")/.."
found=$(grep -rnE '(^|[^[:alnum:]_.])Mutex[[:space:]]*[<(]|Synchronization\.Mutex[<(]' \
        --include='*.swift' Sources Tests Fuzz Benchmarks 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//')
if [ -n "$found" ]; then
    echo "lint: Synchronization.Mutex is not used in this project (tests/lint.sh says why); use NIOLockedValueBox:" >&2
    echo "$found" >&2
    exit 1
fi
