#!/usr/bin/env bash
# make test-tsan: the test suite under the thread sanitizer. A race report is
# printed where it happens, often far above the end of the log; on failure the
# reports are printed again at the end, where an excerpt of the log shows them.
#   tests/run-tsan.sh SWIFT TIMEOUT [FILTER]
set -uo pipefail
swift=$1 timeout_secs=$2 filter=${3:-}
mkdir -p .build-tsan
log=.build-tsan/test.log
args=(test --sanitize=thread --scratch-path .build-tsan)
[ -n "$filter" ] && args+=(--filter "$filter")
VSNFS_SANITIZER=thread timeout -k 30 "$timeout_secs" stdbuf -oL -eL $swift "${args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "test-tsan failed (exit $status); the race reports above, again:"
    sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY: ThreadSanitizer/p' "$log" | head -200
fi
exit "$status"
