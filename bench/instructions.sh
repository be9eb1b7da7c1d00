#!/bin/bash
# Instructions per NFSv3 call, counted by callgrind: the server's CPU cost per
# call, repeatable to about 1% whatever else the machine is doing (a timed
# run on two shared cores swings by tens of percent). For before/after
# comparisons of builds, not against a peer (make bench does that).
#
#   bench/instructions.sh [-s SECS] BINARY... -- NFSLOAD-ARGS...
#   bench/instructions.sh .build-old/release/vsnfs .build-guest/release/vsnfs -- -t randwrite -f write-rand.dat -b 4096 -q 16
#
# Each BINARY serves a fresh tmpfs export (/dev/shm) over loopback TCP under
# valgrind --tool=callgrind; bench/nfsload drives it for 3 s of warm-up,
# then the counters are zeroed, SECS (10) seconds of the load are counted,
# and the count is divided by the calls the server received meanwhile. The export holds
# read.dat (64 MiB), write-rand.dat (64 MiB, sparse) and meta/f0..f999, so
# the randread, randwrite and getattr loads of bench/nfsload run as they are.
# valgrind 3.19 cannot read Swift's DWARF 5: each binary is copied with its
# debug information stripped (symbols stay). Prints one line per binary and
# leaves the profiles in $INSTR_DIR (/var/tmp/vsnfs-instructions) for
# callgrind_annotate --inclusive=no.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=10
if [ "${1:-}" = -s ]; then secs=$2; shift 2; fi
bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do bins+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#bins[@]} -gt 0 ] && [ $# -gt 0 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
out=${INSTR_DIR:-/var/tmp/vsnfs-instructions}
mkdir -p "$out"
for c in valgrind callgrind_control gcc; do
    command -v $c >/dev/null || { echo "instructions: $c is missing (apt-get install valgrind gcc libnfs-dev)" >&2; exit 1; }
done
[ -f /usr/include/nfsc/libnfs-raw.h ] || { echo "instructions: libnfs-dev is missing" >&2; exit 1; }
gcc -O2 -Wall -o "$out/nfsload" "$top/bench/nfsload.c" -lnfs

n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    copy=$out/vsnfs-$n
    cp "$bin" "$copy" && strip --strip-debug "$copy"
    d=/dev/shm/vsnfs-instructions-$n
    rm -rf "$d"; mkdir -p "$d/data/meta" "$d/state"; chmod 777 "$d/data" "$d/data/meta"
    truncate -s 64M "$d/data/write-rand.dat" "$d/data/write-seq.dat"; chmod 666 "$d/data/write-rand.dat" "$d/data/write-seq.dat"
    head -c 64M /dev/urandom > "$d/data/read.dat"; chmod 644 "$d/data/read.dat"
    (cd "$d/data/meta" && seq 0 999 | sed 's/^/f/' | xargs touch)
    port=$(( 30000 + RANDOM % 20000 ))
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$n.%p" \
        "$copy" serve "$d/data" --listen "tcp:127.0.0.1:$port" --state-dir "$d/state" --log-level warning \
        2>"$out/valgrind.$n.log" &
    pid=$!
    for _ in $(seq 1 240); do ss -ltn | grep -q ":$port " && break; sleep 0.5; done
    "$out/nfsload" -p $port -m $port -e / -s 3 "$@" >/dev/null
    callgrind_control -z $pid >/dev/null
    result=$("$out/nfsload" -p $port -m $port -e / -s "$secs" "$@")
    callgrind_control -d $pid >/dev/null
    sleep 1
    kill $pid; wait $pid 2>/dev/null || true
    profile=$(ls -t "$out"/callgrind.$n.$pid.* | head -1)
    ir=$(awk '/^totals:/ { print $2 }' "$profile")
    # The server's own count of the calls in the window (RPCConnectionHandler.channelRead
    # runs once per call): nfsload's count leaves out its mount and the calls
    # in flight at either end, which are a different share of a slower run.
    calls=$(awk -v PAT='RPCConnectionHandlerC11channelRead7context4data' '
        /^c?fn=\([0-9]+\) / {
            id = substr($0, index($0, "(") + 1); id = substr(id, 1, index(id, ")") - 1)
            if (substr($0, index($0, ") ") + 2) ~ PAT) target[id] = 1
        }
        /^cfn=\(/ { id = substr($0, 6); id = substr(id, 1, index(id, ")") - 1); pending = (id in target); next }
        pending && /^calls=/ { split(substr($0, 7), a, " "); total += a[1] }
        { pending = 0 }
        END { print total + 0 }' "$profile")
    [ "$calls" -gt 0 ] || { echo "instructions: no calls counted in $profile" >&2; exit 1; }
    rm -rf "$d"
    echo "$bin: $(( ir / calls )) instructions per call ($calls calls served; nfsload: $result; profile $profile)"
done
