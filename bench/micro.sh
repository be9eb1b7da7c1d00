#!/bin/bash
# The micro rows of `make bench`: encode/decode of hot RPC/NFSv3 messages
# with ordo-one/benchmark (Benchmarks/, its own package), appended to TABLE
# as time per operation and mallocs per operation (no peer: ratio "-").
#   bench/micro.sh BENCH_DIR TABLE
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$1 TABLE=$2
out=$B/micro
mkdir -p "$out"
cd "$top/Benchmarks"
# jemalloc is the benchmark package's default allocator statistics source.
[ -f /usr/include/jemalloc/jemalloc.h ] || { echo "bench/micro: libjemalloc-dev is missing" >&2; exit 1; }
swift package --scratch-path "$top/.build-bench" --allow-writing-to-package-directory benchmark \
    --format markdown --no-progress > "$out/report.md" 2> "$out/stderr.log" \
    || { tail -30 "$out/stderr.log" "$out/report.md" >&2; exit 1; }
# Each benchmark's section has one table per metric; take p50 of wall clock (ns or us) and malloc count.
awk -v table="$TABLE" '
    /^### / { name = substr($0, 5); sub(/ metrics$/, "", name); next }
    /^## / { name = substr($0, 4); next }
    /Time \(wall clock\)/ { metric = "wall"; unit = $0; sub(/.*\(wall clock\) \(/, "", unit); sub(/\).*/, "", unit); next }
    /Malloc \(total\)/ { metric = "malloc"; next }
    /^\| *[A-Za-z]/ && metric != "" && $0 !~ /Metric|Test/ { }
    /^\|/ && metric != "" {
        n = split($0, c, "|")
        for (i = 1; i <= n; i++) gsub(/^ +| +$/, "", c[i])
        if (c[2] ~ /p50|^Metric/) next
        # rows look like: | <bench name or metric> | p0 | p25 | p50 | ...
        if (c[3] ~ /^[0-9]/) {
            if (metric == "wall") wall[name] = c[5] " " unit
            if (metric == "malloc") mall[name] = c[5]
            if (!(name in seen)) { seen[name] = 1; order[++k] = name }
            metric = ""
        }
    }
    END {
        for (i = 1; i <= k; i++) {
            nm = order[i]
            printf "micro: %s\t%s/op, %s mallocs/op\t-\t-\tcd Benchmarks && swift package benchmark --filter \"%s\"\n", nm, wall[nm], mall[nm], nm >> table
        }
    }' "$out/report.md"
