#!/usr/bin/env bash
# Runs the libFuzzer targets built by `make fuzz-build` (.build-fuzz/debug/).
#
#   fuzz/run.sh SECONDS TARGET...   run each target for SECONDS over its corpus,
#                                   fuzz/corpus/TARGET/ (read-only: new inputs go to
#                                   .build-fuzz/corpus/TARGET/); a crash is written to
#                                   .build-fuzz/findings/TARGET/ and fails the run
#   fuzz/run.sh merge TARGET...     regenerate the seeds with the product's encoders
#                                   and merge seeds plus what runs found into a
#                                   minimal fuzz/corpus/TARGET/ (-set_cover_merge=1)
#
# Prints, per target, the inputs tried and the corpus size, then one line
# "fuzz: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build-fuzz/debug
# The product's own inputs are small; records up to 16 KiB still reach every
# length check (the decoders' limits are set low in the targets that need it).
max_len=16384
# Swift's crash backtracer reads other threads' stacks, which the address
# sanitizer reports in place of the crash itself: let libFuzzer report it.
export SWIFT_BACKTRACE=enable=no
# Leak detection per target. FuzzProcedures and FuzzNFS4 run a whole server in the
# process, and LeakSanitizer cannot see references Swift keeps in enum
# payloads: it calls NIO's thread-pool queue and accepted sockets' addresses
# leaked. Those targets run without it; the server's leaks are the business of
# make test-asan and the leak test.
declare -A leaks=([FuzzProcedures]=0 [FuzzNFS4]=0)
run() {  # TARGET ARGS...: the target, with its leak detection
    local t=$1; shift
    ASAN_OPTIONS="detect_leaks=${leaks[$t]:-1}:${ASAN_OPTIONS:-}" $bin/$t -detect_leaks=${leaks[$t]:-1} "$@"
}

mode=$1; shift
for t in "$@"; do
    [[ -x $bin/$t ]] || { echo "fuzz: $bin/$t is missing: run make fuzz-build" >&2; exit 1; }
done

if [[ $mode == merge ]]; then
    seeds=$(mktemp -d)
    trap 'rm -rf "$seeds"' EXIT
    VSNFS_FUZZ_WRITE_SEEDS=$seeds ASAN_OPTIONS=detect_leaks=0 $bin/FuzzProcedures
    VSNFS_FUZZ_WRITE_SEEDS=$seeds ASAN_OPTIONS=detect_leaks=0 $bin/FuzzFileHandle
    VSNFS_FUZZ_WRITE_SEEDS=$seeds ASAN_OPTIONS=detect_leaks=0 $bin/FuzzCompound
    VSNFS_FUZZ_WRITE_SEEDS=$seeds ASAN_OPTIONS=detect_leaks=0 $bin/FuzzNFS4
    for t in "$@"; do
        mkdir -p "$seeds/$t" ".build-fuzz/corpus/$t" "fuzz/corpus/$t"
        merged=$(mktemp -d)
        run $t -set_cover_merge=1 -max_len=$max_len "$merged" "$seeds/$t" "fuzz/corpus/$t" ".build-fuzz/corpus/$t" \
            2>"$merged.log" || { cat "$merged.log" >&2; exit 1; }
        rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t" && rm -f "$merged.log"
        echo "fuzz: $t corpus: $(ls "fuzz/corpus/$t" | wc -l) inputs"
    done
    exit 0
fi

secs=$mode
passed=0 failed=0
for t in "$@"; do
    [[ -d fuzz/corpus/$t ]] || { echo "fuzz: fuzz/corpus/$t is missing" >&2; exit 1; }
    work=.build-fuzz/corpus/$t findings=.build-fuzz/findings/$t log=.build-fuzz/findings/$t.log
    rm -rf "$findings" && mkdir -p "$work" "$findings"
    rc=0
    run $t -max_total_time="$secs" -max_len=$max_len -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        echo "fuzz: $t: ${runs:-?} inputs in ${secs}s, no crash (corpus $(ls "$work" | wc -l) + $(ls "fuzz/corpus/$t" | wc -l))"
    else
        failed=$((failed + 1))
        echo "fuzz: $t FAILED (exit $rc) after ${runs:-?} inputs; log: $log; crash input(s):"
        ls -1 "$findings" | sed "s|^|    $findings/|"
        grep -m 20 -E '^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*precondition failed|#[0-9]+ 0x)' "$log" | head -20 | sed 's/^/    /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
