#!/bin/bash
# The micro rows of `make bench`: encode/decode of hot RPC/NFSv3 messages
# with ordo-one/benchmark (Benchmarks/Codecs, a target Package.swift adds when
# VSNFS_BENCHMARKS is set), appended to TABLE as time per operation and
# mallocs per operation (no peer: ratio "-"). bench/run.sh has built it in
# release in .build-bench-rel; the plugin builds only its own tool here.
#   bench/micro.sh BENCH_DIR TABLE
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$1 TABLE=$2
out=$B/micro
mkdir -p "$out"
cd "$top"
export VSNFS_BENCHMARKS=1
swift package --scratch-path "$top/.build-bench-rel" --allow-writing-to-package-directory benchmark \
    --format markdown --no-progress > "$out/report.md" 2> "$out/stderr.log" \
    || { tail -30 "$out/stderr.log" "$out/report.md" >&2; exit 1; }
# The markdown report has, per benchmark, "### NAME" and a table whose rows are
# "| Metric | p0 | p25 | p50 | ..." (values per operation: the benchmarks scale by 1000).
awk -F'|' -v table="$TABLE" '
    /^### / { name = substr($0, 5); order[++k] = name; next }
    /^\| Malloc \(total\)/ { v = $5; gsub(/ /, "", v); mall[name] = v; next }
    /^\| Time \(wall clock\)/ {
        unit = $2; sub(/.*\(wall clock\) \(/, "", unit); sub(/\).*/, "", unit)
        gsub(/μ/, "u", unit)
        v = $5; gsub(/ /, "", v); wall[name] = v " " unit; next
    }
    END {
        if (k == 0) { print "bench/micro: no benchmark results in the report" > "/dev/stderr"; exit 1 }
        for (i = 1; i <= k; i++) {
            nm = order[i]
            printf "micro: %s\t%s/op, %s mallocs/op\t-\t-\tVSNFS_BENCHMARKS=1 swift package --scratch-path .build-bench-rel benchmark --filter \"%s\"\n", nm, wall[nm], mall[nm], nm >> table
        }
    }' "$out/report.md"
