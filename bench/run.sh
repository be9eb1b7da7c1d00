#!/bin/bash
# make bench: vsnfs side by side with nfs-ganesha (host loopback, wire level)
# and with the guest kernel's nfsd (inside the test guest, fio through the
# kernel client), plus encode/decode micro benchmarks and server memory.
# Prints ONE table at the end; every row has the command that reproduces it.
#
# Environment:
#   BENCH_SECS=3      seconds per wire-level measurement (plus 0.5 s warm-up)
#   BENCH_ROUNDS=2    A B B A rounds per wire-level row (ratio = median of per-round ratios)
#   BENCH_PARTS="wire memory guest share micro"   which parts to run
#   (share: SHARE_ROUNDS, SHARE_RUNTIME, SHARE_SIZE, SHARE_FILES; see bench/share.sh)
#   BENCH_ONLY=REGEX  run only the wire rows whose name matches (e.g. READDIRPLUS)
#   BENCH_DIR=/var/tmp/vsnfs-bench          data, configs, logs (same filesystem for both servers)
#   VSNFS_BIN=path    measure this vsnfs binary instead of building one (wire and memory parts)
#   GUEST_PEER_BIN=path  guest rows against this other vsnfs build instead of knfsd (bench/guest.sh)
# Needs root (apt-get, ganesha's open_by_handle_at); network: loopback only.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECS:-3}
ROUNDS=${BENCH_ROUNDS:-2}
PARTS=${BENCH_PARTS:-wire memory guest share micro}
B=${BENCH_DIR:-/var/tmp/vsnfs-bench}
SCRATCH=$top/.build-bench-rel
TABLE=$B/table.tsv
T0=$(date +%s)
log() { echo "bench [$(( $(date +%s) - T0 ))s]: $*" >&2; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }

# ---------- what it needs ----------
need=""
command -v gcc >/dev/null || need="$need gcc"
[ -f /usr/include/nfsc/libnfs-raw.h ] || need="$need libnfs-dev"
command -v ganesha.nfsd >/dev/null || need="$need nfs-ganesha"
[ -f /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || need="$need nfs-ganesha-vfs"
command -v rpcbind >/dev/null || need="$need rpcbind"
command -v fio >/dev/null || need="$need fio"
command -v perf >/dev/null || true
if [ -n "$need" ]; then
    log "installing$need"
    apt-get update -qq >/dev/null || die "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null \
        || die "apt-get install$need"
fi
for c in gcc ganesha.nfsd rpcbind fio; do command -v $c >/dev/null || die "$c is missing after install"; done

mkdir -p "$B"/data "$B"/ganesha "$B"/state "$B"/bin
: > "$TABLE"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$TABLE"; }   # metric vsnfs peer ratio command

# ---------- builds ----------
# One release build of everything the parts need, in one graph so SwiftPM
# keeps both cores busy: vsnfs, vsnfs-mount (guest) and the micro benchmarks
# (Package.swift adds them when VSNFS_BENCHMARKS is set; every build here
# sets it, so the scratch path always sees the same package).
export VSNFS_BENCHMARKS=1
build_args=(--product vsnfs)
if has_part guest || has_part micro; then build_args=(); fi   # all products
if [ -n "${VSNFS_BIN:-}" ]; then
    VSNFS=$VSNFS_BIN   # a given build (e.g. a copy of an older one, for before/after figures)
    [ -x "$VSNFS" ] || die "VSNFS_BIN=$VSNFS is not an executable"
    has_part micro && build_args=(--product Codecs)
else
    VSNFS=$SCRATCH/release/vsnfs
fi
if [ -z "${VSNFS_BIN:-}" ] || has_part micro; then
    log "building ${build_args[*]:-all products} (release, $SCRATCH)"
    (cd "$top" && swift build -c release --scratch-path "$SCRATCH" "${build_args[@]}" >"$B/build.log" 2>&1) \
        || { tail -20 "$B/build.log"; die "swift build (release)"; }
fi
gcc -O2 -Wall -o "$B/bin/nfsload" "$top/bench/nfsload.c" -lnfs || die "gcc nfsload"
LOAD=$B/bin/nfsload

# ---------- servers ----------
free_port() {  # a free TCP port on loopback, above 30000
    local p
    while :; do
        p=$(( 30000 + RANDOM % 20000 ))
        ss -ltnH "( sport = :$p )" 2>/dev/null | grep -q . || { echo $p; return; }
    done
}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {  # port pid name
    for _ in $(seq 1 100); do
        ss -ltnH "( sport = :$1 )" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited at start (see $B)"
        sleep 0.1
    done
    die "$3 did not listen on $1"
}

start_servers() {
    if ! pgrep -x rpcbind >/dev/null; then
        rpcbind -f -w & pids+=($!)
        sleep 0.5
    fi
    VPORT=$(free_port)
    "$VSNFS" serve "$B/data" --listen "tcp:127.0.0.1:$VPORT" --state-dir "$B/state" --log-level warning \
        2>"$B/vsnfs.log" &
    VPID=$!; pids+=($VPID)
    wait_port "$VPORT" "$VPID" vsnfs
    GPORT=$(free_port); GMPORT=$(free_port)
    while [ "$GMPORT" = "$GPORT" ]; do GMPORT=$(free_port); done
    cat > "$B/ganesha/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    Protocols = 3;
    NFS_Port = $GPORT;
    MNT_Port = $GMPORT;
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 77;
    Path = $B/data;
    Pseudo = $B/data;
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = Root_Squash;
    Anonymous_Uid = 65534;
    Anonymous_Gid = 65534;
    SecType = sys;
    MaxRead = 1048576;
    MaxWrite = 1048576;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
EOF
    ganesha.nfsd -F -f "$B/ganesha/ganesha.conf" -L "$B/ganesha/ganesha.log" -p "$B/ganesha/ganesha.pid" -N NIV_WARN &
    GPID=$!; pids+=($GPID)
    wait_port "$GMPORT" "$GPID" ganesha
    wait_port "$GPORT" "$GPID" ganesha
}

rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# ---------- data (warm in the host page cache for reads) ----------
make_data() {
    local d=$B/data
    chmod 777 "$d"
    [ -s "$d/read.dat" ] && [ "$(stat -c %s "$d/read.dat")" = 268435456 ] || \
        head -c 268435456 /dev/urandom > "$d/read.dat"
    chmod 644 "$d/read.dat"
    for f in write-rand.dat write-seq.dat; do rm -f "$d/$f"; truncate -s 256M "$d/$f"; chmod 666 "$d/$f"; done
    mkdir -p "$d/meta" "$d/small" "$d/d10k"; chmod 777 "$d/meta" "$d/small" "$d/d10k"
    rm -f "$d/small"/*
    [ -e "$d/meta/f999" ] || (cd "$d/meta" && seq 0 999 | sed 's/^/f/' | xargs touch)
    [ "$(ls "$d/d10k" | wc -l)" = 10000 ] || (cd "$d/d10k" && seq 0 9999 | sed 's/^/entry-/' | xargs touch)
    cat "$d/read.dat" > /dev/null
}

# ---------- wire level ----------
declare -A VS GS
run_load() {  # server args... -> prints the result line
    local port mport exp
    if [ "$1" = vsnfs ]; then port=$VPORT mport=$VPORT exp=/; else port=$GPORT mport=$GMPORT exp=$B/data; fi
    shift
    "$LOAD" -p "$port" -m "$mport" -e "$exp" -s "$SECS" "$@" || die "nfsload $* failed"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wire_row ROW... -- nfsload-args...
# Each ROW is "NAME|FIELD|BETTER(high|low)|SCALE|UNIT"; all rows of one call
# are read from the same runs (e.g. IOPS and p99 latency of one load).
wire_row() {
    local specs=()
    while [ "$1" != -- ]; do specs+=("$1"); shift; done
    shift
    local want=0 spec
    for spec in "${specs[@]}"; do
        [[ -z "${BENCH_ONLY:-}" || "${spec%%|*}" =~ $BENCH_ONLY ]] && want=1
    done
    [ $want = 1 ] || return 0
    local runs=() r out
    for r in $(seq 1 "$ROUNDS"); do
        for s in vsnfs ganesha ganesha vsnfs; do    # A B B A
            out=$(run_load $s "$@")
            runs+=("$out")
        done
    done
    local name fieldname better scale unit
    for spec in "${specs[@]}"; do
        IFS='|' read -r name fieldname better scale unit <<< "$spec"
        [[ -z "${BENCH_ONLY:-}" || "$name" =~ $BENCH_ONLY ]] || continue
        local vs=() gs=() ratios=() x a1 b1 b2 a2 i
        for r in $(seq 0 $(( ROUNDS - 1 ))); do
            i=$(( r * 4 ))
            a1=$(field "$fieldname" <<< "${runs[i]}"); b1=$(field "$fieldname" <<< "${runs[i + 1]}")
            b2=$(field "$fieldname" <<< "${runs[i + 2]}"); a2=$(field "$fieldname" <<< "${runs[i + 3]}")
            for x in "$a1" "$b1" "$b2" "$a2"; do [ -n "$x" ] || die "nfsload printed no $fieldname for: $name"; done
            vs+=("$a1" "$a2"); gs+=("$b1" "$b2")
            if [ "$better" = high ]; then
                ratios+=("$(awk -v a="$a1" -v b="$a2" -v c="$b1" -v d="$b2" 'BEGIN { printf "%.4f", (a + b) / (c + d) }')")
            else
                ratios+=("$(awk -v a="$a1" -v b="$a2" -v c="$b1" -v d="$b2" 'BEGIN { printf "%.4f", (c + d) / (a + b) }')")
            fi
        done
        local v g q
        v=$(printf '%s\n' "${vs[@]}" | median); g=$(printf '%s\n' "${gs[@]}" | median)
        q=$(printf '%s\n' "${ratios[@]}" | median)
        v=$(awk -v x="$v" -v s="$scale" 'BEGIN { printf "%.1f", x * s }'); g=$(awk -v x="$g" -v s="$scale" 'BEGIN { printf "%.1f", x * s }')
        log "$name: vsnfs $v ganesha $g ratio $q (rounds: ${ratios[*]})"
        row "$name" "$v $unit" "$g $unit" "$(printf '%.2f' "$q")" "nfsload -p PORT -m MPORT -e EXPORT -s $SECS $*"
    done
}

if has_part wire || has_part memory; then
    make_data
    start_servers
    log "vsnfs on tcp:127.0.0.1:$VPORT (pid $VPID), ganesha on $GPORT/$GMPORT (pid $GPID)"
fi

if has_part wire; then
    log "wire level: $ROUNDS rounds of A B B A per row, ${SECS}s each"
    wire_row "4k rand read, 16 in flight (warm cache)|ops_per_s|high|1|IOPS" \
             "4k rand read p99 latency (ratio peer/vsnfs)|p99_us|low|1|us" -- -t randread -f read.dat -b 4096 -q 16
    wire_row "4k rand write UNSTABLE, 16 in flight|ops_per_s|high|1|IOPS" -- -t randwrite -f write-rand.dat -b 4096 -q 16
    wire_row "1M seq read, 4 in flight (warm cache)|mib_per_s|high|1|MiB/s" -- -t seqread -f read.dat -b 1048576 -q 4
    wire_row "1M seq write UNSTABLE + COMMIT, 4 in flight|mib_per_s|high|1|MiB/s" -- -t seqwrite -f write-seq.dat -b 1048576 -q 4
    wire_row "small files: CREATE+WRITE 4k+COMMIT+REMOVE, 16 in flight|ops_per_s|high|1|files/s" -- -t smallfile -d small -q 16
    wire_row "GETATTR/LOOKUP mix over 1000 files, 16 in flight|ops_per_s|high|1|ops/s" -- -t getattr -d meta -q 16
    wire_row "READDIRPLUS of 10,000 entries, full listing (ratio peer/vsnfs)|p50_us|low|0.001|ms" -- -t readdirplus -d d10k
fi

# ---------- memory ----------
if has_part memory; then
    log "memory: 1000 idle connections, then 64 clients streaming"
    mem_idle() {  # server pid port -> RSS MiB with 1000 idle connections
        local out=$B/idle-$1.out
        "$LOAD" -p "$3" -t idle -c 1000 -s 4 > "$out" &
        local lp=$!
        for _ in $(seq 1 200); do grep -q idle "$out" 2>/dev/null && break; sleep 0.1; done
        grep -q idle "$out" || die "idle connections to $1 did not open"
        sleep 1
        rss_mib "$2"
        wait $lp || die "idle load against $1"
    }
    mem_stream() {  # server pid -> peak RSS MiB while 64 clients read 1 MiB sequentially
        local peak=0 r
        run_load "$1" -t seqread -f read.dat -b 1048576 -q 1 -c 64 -w 1 > "$B/stream-$1.out" &
        local lp=$!
        while kill -0 $lp 2>/dev/null; do
            r=$(rss_mib "$2"); peak=$(awk -v a="$peak" -v b="$r" 'BEGIN { print (b > a ? b : a) }'); sleep 0.2
        done
        wait $lp || die "64-client load against $1"
        echo "$peak"
    }
    vb=$(rss_mib "$VPID"); gb=$(rss_mib "$GPID")
    vi=$(mem_idle vsnfs "$VPID" "$VPORT"); gi=$(mem_idle ganesha "$GPID" "$GPORT")
    vst=$(mem_stream vsnfs "$VPID"); gst=$(mem_stream ganesha "$GPID")
    ratio_low() { awk -v v="$1" -v g="$2" 'BEGIN { printf "%.2f", g / v }'; }
    row "RSS after the runs above, idle (ratio peer/vsnfs)" "$vb MiB" "$gb MiB" "$(ratio_low "$vb" "$gb")" "grep VmRSS /proc/PID/status"
    row "RSS with 1000 idle connections (ratio peer/vsnfs)" "$vi MiB" "$gi MiB" "$(ratio_low "$vi" "$gi")" "nfsload -p PORT -t idle -c 1000 -s 4"
    row "peak RSS, 64 clients streaming 1M reads (ratio peer/vsnfs)" "$vst MiB" "$gst MiB" "$(ratio_low "$vst" "$gst")" \
        "nfsload -p PORT -m MPORT -e EXPORT -t seqread -f read.dat -b 1048576 -q 1 -c 64 -s $SECS"
    log "memory: vsnfs $vb/$vi/$vst MiB, ganesha $gb/$gi/$gst MiB"
fi
cleanup; pids=()

# ---------- inside the test guest ----------
if has_part guest; then
    log "guest: fio through the kernel client, vsnfs over vsock vs the guest's nfsd over TCP"
    bash "$top/bench/guest.sh" "$B" "$TABLE" || die "guest benchmark"
fi

# ---------- one host directory into one guest: vsnfs, virtio-fs, 9p ----------
if has_part share; then
    log "share: one host directory into one guest four ways (vsnfs, nfs-net, virtio-fs, 9p), A B C D D C B A"
    bash "$top/bench/share.sh" "$B" "$TABLE" || die "share benchmark"
fi

# ---------- micro ----------
if has_part micro; then
    log "micro: package-benchmark (Benchmarks/Codecs)"
    bash "$top/bench/micro.sh" "$B" "$TABLE" || die "micro benchmarks"
fi

# ---------- the table ----------
echo
echo "vsnfs benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(cd "$top" && git rev-parse --short HEAD)$(cd "$top" && git diff --quiet HEAD -- Sources || echo '+dirty')"
echo "Wire rows: host loopback TCP, one NFSv3 connection, bench/nfsload (libnfs async) driving both servers;"
echo "  reads hit files warm in the host page cache; figures are medians of all runs, ratio = median of per-round"
echo "  ratios over $ROUNDS rounds of A B B A (${SECS}s each). ratio > 1 means vsnfs is better (for latency, time and memory: peer/vsnfs)."
echo
{
    printf 'metric\tvsnfs\tpeer\tratio\treproduce\n'
    cat "$TABLE"
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i] && i < 5) w[i] = length($i) } n = NR }
    END {
        for (r = 1; r <= n; r++) {
            line = "| "
            for (i = 1; i <= 5; i++) line = line sprintf(i < 5 ? "%-" w[i] "s | " : "%s |", cell[r, i])
            print line
            if (r == 1) { sep = "|"; for (i = 1; i <= 4; i++) { s = ""; for (k = 0; k < w[i] + 2; k++) s = s "-"; sep = sep s "|" } print sep "---|" }
        }
    }'
echo
guest_peer="the guest kernel's nfsd"; [ -z "${GUEST_PEER_BIN:-}" ] || guest_peer="another vsnfs build ($GUEST_PEER_BIN)"
echo "peer: nfs-ganesha $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null) (VFS FSAL) for wire/memory rows; $guest_peer for guest rows; none for micro rows."
if has_part share; then
    echo "share rows: one host directory, one guest boot (TCG), four mounts; peers nfs-net (the same vsnfs over TCP, the guest's"
    echo "  kernel NFSv3 client over virtio-net-pci and QEMU user networking, no relay), virtio-fs (virtiofsd $(dpkg-query -W -f '${Version}' qemu-system-common 2>/dev/null), cache=auto)"
    echo "  and 9p (-virtfs, security_model=none, msize=512000, cache=none); ratios vsnfs/nfs-net / vsnfs/virtio-fs / vsnfs/9p"
    echo "  (times: peer/vsnfs), medians of per-round ratios over ${SHARE_ROUNDS:-2} rounds of A B C D D C B A; per-op costs in \$BENCH_DIR/share/limits.txt."
fi
log "done in $(( $(date +%s) - T0 ))s"
