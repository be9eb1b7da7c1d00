#!/bin/bash
# The share rows of `make bench`: one host directory shared into one guest
# (one QEMU boot, TCG) four ways at once, and the same workload through each:
#   vsnfs     vsnfs serve on the host behind vhost-user-vsock-pci; the guest mounts it with mount.vsnfs
#   nfs-net   the same vsnfs process, also listening on host TCP 127.0.0.1:PORT, reached by the
#             guest's kernel NFSv3 client over virtio-net-pci and QEMU user-mode networking
#             (slirp: the guest is 10.0.2.15, the host 10.0.2.2; vsnfs sees the peer 127.0.0.1):
#             NFS over a virtio-net network, what people use today, with no relay and no vsock
#   virtiofs  Debian's /usr/lib/qemu/virtiofsd (cache=auto) behind vhost-user-fs-pci
#   9p        -virtfs local (QEMU's 9p server, security_model=none), 9p2000.L, msize=512000
# bench/share-workload.sh runs in the guest: fio rows and a tree of small
# files (tar x, find | xargs stat, du -s, find | xargs cat, rm -rf), every row
# A B C D D C B A per round. Appends rows to TABLE with three ratios each:
# vsnfs/nfs-net, vsnfs/virtio-fs and vsnfs/9p (for times: peer/vsnfs; above 1 means vsnfs did better).
#   bench/share.sh BENCH_DIR TABLE
# Environment: SHARE_ROUNDS (2), SHARE_RUNTIME (2 s per fio run), SHARE_SIZE (64m fio file),
#   SHARE_FILES (250 files in the tree: 9p takes about 10 ms per request here, so 10,000 files
#   would take half an hour per 9p visit), SHARE_TIMEOUT (900 s for the guest),
#   GUEST_BINS ("vsnfs vsnfs-mount" paths instead of this tree's release build).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$1 TABLE=$2
SCRATCH=$top/.build-bench-rel
S=$B/share
ROUNDS=${SHARE_ROUNDS:-2} RUNTIME=${SHARE_RUNTIME:-2} SIZE=${SHARE_SIZE:-64m} NFILES=${SHARE_FILES:-250}
VIRTIOFSD=/usr/lib/qemu/virtiofsd
die() { echo "bench/share: FAILED: $*" >&2; exit 1; }
log() { echo "bench/share: $*" >&2; }
mkdir -p "$S"

# ---------- what it needs ----------
sh "$top/vm-images/scripts/deps.sh"
need=""
[ -x "$VIRTIOFSD" ] || need="$need qemu-system-common"
command -v fio >/dev/null || need="$need fio"
if [ -n "$need" ]; then
    apt-get update -qq >/dev/null || die "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null || die "apt-get install$need"
fi
[ -x "$VIRTIOFSD" ] || die "$VIRTIOFSD is missing (package qemu-system-common)"
cache=$top/vm-images/cache
sh "$top/vm-images/scripts/fetch-debs.sh" "$cache"
kpkg=$(cat "$cache/kernel-package")
kernel=$(ls "$cache/$kpkg"/boot/vmlinuz-* | head -1)
if [ -n "${GUEST_BINS:-}" ]; then
    set -- $GUEST_BINS
    mkdir -p "$S/bins"; cp "$1" "$S/bins/vsnfs"; cp "$2" "$S/bins/vsnfs-mount"
    VSNFS=$S/bins/vsnfs MOUNT_BIN=$S/bins/vsnfs-mount
else
    (cd "$top" && swift build -c release --scratch-path "$SCRATCH" --product vsnfs >>"$B/build.log" 2>&1 \
        && swift build -c release --scratch-path "$SCRATCH" --product vsnfs-mount >>"$B/build.log" 2>&1) \
        || die "swift build of vsnfs and vsnfs-mount (see $B/build.log)"
    VSNFS=$SCRATCH/release/vsnfs MOUNT_BIN=$SCRATCH/release/vsnfs-mount
fi
# mount(2) with text options for the nfs-net mount (busybox's mount -t nfs uses the legacy binary data).
gcc -O2 -static -o "$S/mount-nfs" "$top/bench/mount-nfs.c" || die "gcc bench/mount-nfs.c"
sh "$top/vm-images/scripts/build-initramfs.sh" "$S/initramfs.cpio.gz" "$cache" "$top/vm-images/init" \
    "virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport nfs nfsv3 virtiofs 9p 9pnet_virtio virtio_net" \
    "$MOUNT_BIN" "/usr/bin/fio $S/mount-nfs" || die "build-initramfs"

# ---------- the shared directory and the tree to unpack ----------
D=$S/dir
rm -rf "$D"; mkdir -p "$D"; chmod 777 "$D"
head -c "$(numfmt --from=iec "${SIZE^^}")" /dev/urandom > "$D/read.dat"
for t in vsnfs nfs-net virtiofs 9p; do cp "$D/read.dat" "$D/w-$t.dat"; done
chmod 666 "$D"/*.dat
cat "$D"/*.dat > /dev/null
stage=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$stage"
}
trap cleanup EXIT
# NFILES files of text, log-uniform sizes from 64 B to 16 KiB (about 3 KiB on
# average, like a source tree), 10 x 10 directories.
mkdir -p "$stage/tree"
awk -v n="$NFILES" -v root="$stage/tree" 'BEGIN {
    srand(11)
    line = "the quick brown fox jumps over the lazy dog 0123456789 {}();\n"
    for (i = 0; i < n; i++) {
        d = sprintf("%s/d%d/s%d", root, i % 10, int(i / 10) % 10)
        if (!(d in made)) { system("mkdir -p " d); made[d] = 1 }
        f = sprintf("%s/f%05d.c", d, i)
        size = int(exp(log(64) + rand() * (log(16384) - log(64))))
        s = ""; while (length(s) < size) s = s line
        printf "%s", substr(s, 1, size) > f; close(f)
    }
}'
mkdir -p "$stage/workload"
(cd "$stage/tree" && tar cf "$stage/workload/tree.tar" --owner=0 --group=0 --numeric-owner .)
rm -rf "$stage/tree"
cp "$top/bench/share-workload.sh" "$stage/workload/run"; chmod 755 "$stage/workload/run"
# A free host TCP port for vsnfs's second listener (nfs-net): one that no socket
# in /proc/net/tcp{,6} has as its local port (vsnfs fails loudly if it lost a race).
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$(( 20000 + RANDOM % 40000 ))
        grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
NETPORT=$(free_port) || die "no free TCP port"
printf 'ROUNDS=%s\nRUNTIME=%s\nSIZE=%s\nNFILES=%s\nHOSTDIR=%s\nNETPORT=%s\n' "$ROUNDS" "$RUNTIME" "$SIZE" "$NFILES" "$D" "$NETPORT" > "$stage/workload/env"
(cd "$stage" && find workload | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$S/workload.cpio.gz"
cat "$S/initramfs.cpio.gz" "$S/workload.cpio.gz" > "$S/initrd-all"

# ---------- the servers ----------
# One vsnfs for vsnfs and nfs-net. slirp connects to 127.0.0.1:NETPORT from the host's
# loopback, so the nfs-net guest is the peer 127.0.0.1 to vsnfs (its own exports rule).
rm -rf "$S/state" "$S"/*.sock; mkdir -p "$S/state"
printf '%s vsock:3(rw,no_root_squash) 127.0.0.1(rw,no_root_squash)\n' "$D" > "$S/exports"
"$VSNFS" serve --exports "$S/exports" --listen "vhost-user:$S/vsock.sock:cid=3" --listen "tcp:127.0.0.1:$NETPORT" \
    --state-dir "$S/state" \
    --control "$S/control" --log-level warning > "$S/vsnfs.log" 2>&1 &
VPID=$!; pids+=($VPID)
# sandbox=chroot: namespaces are not available in every container this runs in.
"$VIRTIOFSD" --socket-path="$S/virtiofs.sock" -o source="$D" -o cache=auto -o sandbox=chroot \
    -o log_level=warn > "$S/virtiofsd.log" 2>&1 &
FPID=$!; pids+=($FPID)
for _ in $(seq 1 100); do [ -S "$S/vsock.sock" ] && [ -S "$S/virtiofs.sock" ] && break; sleep 0.1; done
[ -S "$S/vsock.sock" ] || die "vsnfs did not create its vhost-user socket ($S/vsnfs.log: $(tail -2 "$S/vsnfs.log"))"
[ -S "$S/virtiofs.sock" ] || die "virtiofsd did not create its socket ($S/virtiofsd.log: $(tail -2 "$S/virtiofsd.log"))"

log "booting the guest: ${ROUNDS} rounds of A B C D D C B A, fio ${RUNTIME}s on a ${SIZE} file, tree of ${NFILES} files"
console=$S/console.log
: > "$console"
qemu-system-x86_64 -accel tcg -M q35 -m 1024 -smp 2 -nographic -no-reboot -nic none \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    -object memory-backend-memfd,id=mem,size=1024M,share=on -machine memory-backend=mem \
    -chardev socket,id=vu,path="$S/vsock.sock" -device vhost-user-vsock-pci,chardev=vu \
    -chardev socket,id=vfs,path="$S/virtiofs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostshare \
    -virtfs local,path="$D",mount_tag=host9p,security_model=none,id=p9 \
    -kernel "$kernel" -initrd "$S/initrd-all" -append "console=ttyS0 quiet panic=-1 tsc=reliable" \
    < /dev/null > "$console" 2>&1 &
QPID=$!; pids+=($QPID)

# Host CPU (utime+stime ticks) of vsnfs, virtiofsd, and QEMU's threads other
# than the vCPUs (9p is served there), sampled at each MARK line of the guest.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$1" 2>/dev/null || echo 0; }
qemu_other() {  # the process's ticks (exited threads included) minus its vCPU threads'
    local s t
    s=$(ticks /proc/$QPID/stat)
    for t in /proc/$QPID/task/*; do
        grep -q '/TCG' "$t/comm" 2>/dev/null && s=$(( s - $(ticks "$t/stat") ))
    done
    echo $s
}
: > "$S/hostcpu.txt"
start=$(date +%s)
seen=0
while kill -0 $QPID 2>/dev/null; do
    n=$(wc -l < "$console")
    if [ "$n" -gt "$seen" ]; then
        tail -n +$((seen + 1)) "$console" | head -n $((n - seen)) | tr -d '\r' | { grep '^MARK ' || true; } | while read -r _ what rest; do
            echo "$what $rest $(ticks /proc/$VPID/stat) $(ticks /proc/$FPID/stat) $(qemu_other)"
        done >> "$S/hostcpu.txt"
        seen=$n
    fi
    if [ $(( $(date +%s) - start )) -gt "${SHARE_TIMEOUT:-900}" ]; then
        kill $QPID 2>/dev/null || true
        die "guest did not finish in ${SHARE_TIMEOUT:-900} s (see $console)"
    fi
    sleep 0.1
done
wait $QPID || log "qemu exited non-zero"
log "guest ran $(( $(date +%s) - start )) s"
tr -d '\r' < "$console" > "$console.txt"
grep -q '^SUMMARY 1 passed' "$console.txt" || { grep 'SHAREBENCH\|FAIL' "$console.txt" | tail -5 >&2; die "guest workload did not finish (see $console)"; }
grep '^RES ' "$console.txt" > "$S/results.txt" || die "no results in $console"

# ---------- rows ----------
# Per run: RES target row round value unit ops ctxt busy; hostcpu: begin|end target row round vsnfs virtiofsd qemu-other
# Per row: each target's median; per round, ratio = sum of vsnfs's two runs over the peer's two (time rows: inverted);
# the row's ratio is the median of those.
CLK=$(getconf CLK_TCK)
awk -v clk="$CLK" -v rounds="$ROUNDS" -v table="$TABLE" -v limits="$S/limits.txt" -v runtime="$RUNTIME" \
    -v size="$SIZE" -v nfiles="$NFILES" '
function median(arr, n,    i, j, x) {
    for (i = 2; i <= n; i++) { x = arr[i]; for (j = i - 1; j >= 1 && arr[j] > x; j--) arr[j + 1] = arr[j]; arr[j + 1] = x }
    return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
FNR == NR {   # hostcpu.txt
    k = $2 SUBSEP $3 SUBSEP $4
    if ($1 == "begin") { hb[k, 1] = $5; hb[k, 2] = $6; hb[k, 3] = $7 }
    else { he[k, 1] = $5; he[k, 2] = $6; he[k, 3] = $7 }
    next
}
{
    t = $2; row = $3; r = $4
    if (!(row in seen)) { seen[row] = 1; rows[++nrows] = row }
    unit[row] = $6
    k = t SUBSEP row SUBSEP r
    val[k] += $5; cnt[k]++
    all[t, row, ++nall[t, row]] = $5
    ops[t, row] += $7; ctxt[t, row] += $8; busy[t, row] += $9; relay[t, row] += $10
}
END {
    split("vsnfs nfs-net virtiofs 9p", T, " ")
    # host CPU of the server process behind each target: vsnfs (also for nfs-net), virtiofsd,
    # QEMU non-vCPU threads (9p, and slirp for nfs-net)
    for (k in he) { split(k, p, SUBSEP); key = p[1] SUBSEP p[2] SUBSEP p[3]; who = p[4]
        if (((p[1] == "vsnfs" || p[1] == "nfs-net") && who == 1) || (p[1] == "virtiofs" && who == 2) || (p[1] == "9p" && who == 3))
            host[p[1], p[2]] += he[k] - hb[key, who]
        if (who == 3) qother[p[1], p[2]] += he[k] - hb[key, who]
    }
    printf "row\ttarget\tmedian\tctxt/op\tguest CPU us/op\tof which relay us/op\tserver host CPU us/op\tQEMU non-vCPU host CPU us/op\n" > limits
    for (i = 1; i <= nrows; i++) {
        row = rows[i]; u = unit[row]; better = (u == "s") ? "low" : "high"
        for (j = 1; j <= 4; j++) {
            t = T[j]; n = nall[t, row]
            for (m = 1; m <= n; m++) tmp[m] = all[t, row, m]
            med[t] = median(tmp, n)
            o = ops[t, row]
            printf "%s\t%s\t%.2f %s\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\n", row, t, med[t], u, ctxt[t, row] / o,
                busy[t, row] * 1e6 / clk / o, relay[t, row] * 1e6 / clk / o, host[t, row] * 1e6 / clk / o, qother[t, row] * 1e6 / clk / o > limits
        }
        for (j = 2; j <= 4; j++) {
            peer = T[j]; nr = 0
            for (r = 1; r <= rounds; r++) {
                a = val["vsnfs", row, r]; b = val[peer, row, r]
                if (a <= 0 || b <= 0) continue
                q[++nr] = (better == "high") ? a / b : b / a
                roundq[peer] = roundq[peer] sprintf(" %.2f", q[nr])
            }
            ratio[peer] = nr ? median(q, nr) : 0
        }
        label = row
        sub(/^4k-randread$/, "4k randread, iodepth 16, direct", label)
        sub(/^4k-randwrite$/, "4k randwrite, iodepth 16, direct", label)
        sub(/^128k-read$/, "128k seq read, iodepth 8, direct", label)
        sub(/^128k-write$/, "128k seq write, iodepth 8, direct", label)
        sub(/^128k-read-buffered$/, "128k seq read, buffered (guest cache dropped)", label)
        sub(/^128k-write-buffered$/, "128k seq write, buffered + end fsync", label)
        sub(/^untar$/, "tar x of " nfiles " small files + sync (time)", label)
        sub(/^stat$/, "find + xargs stat of the tree, cold guest cache (time)", label)
        sub(/^du$/, "du -s of the tree, cold guest cache (time)", label)
        sub(/^cat$/, "find -type f + xargs cat of the tree, cold (time)", label)
        sub(/^rm$/, "rm -rf of the tree + sync (time)", label)
        if (row ~ /^(4k|128k)/) {
            rw = row; sub(/^[0-9]+k-(rand)?/, "", rw); sub(/-buffered$/, "", rw)
            if (row ~ /^4k/) rw = "rand" rw
            cmd = sprintf("fio --rw=%s --bs=%s --size=%s --runtime=%s %s (bench/share-workload.sh)", rw, (row ~ /^4k/) ? "4k" : "128k", size, runtime,
                (row ~ /buffered/) ? "--ioengine=psync --direct=0" : sprintf("--ioengine=libaio --direct=1 --iodepth=%d", (row ~ /^4k/) ? 16 : 8))
        } else {
            cmd = (row == "untar") ? "tar xf tree.tar -C DIR && sync" : (row == "stat") ? "find DIR \\| xargs stat" : (row == "du") ? "du -s DIR" : \
                  (row == "cat") ? "find DIR -type f \\| xargs cat" : "rm -rf DIR && sync"
            cmd = cmd " (busybox; " nfiles " files of 64 B-16 KiB in 100 directories; bench/share-workload.sh)"
        }
        fmt = (u == "s") ? "%.1f" : "%.1f"
        printf "share: %s\t" fmt " %s\tnfs-net " fmt " / virtio-fs " fmt " / 9p " fmt " %s\t%.2f / %.2f / %.2f\t%s\n", label, med["vsnfs"], u,
            med["nfs-net"], med["virtiofs"], med["9p"], u, ratio["nfs-net"], ratio["virtiofs"], ratio["9p"], cmd >> table
        printf "bench/share: %s: vsnfs %.2f nfs-net %.2f virtiofs %.2f 9p %.2f %s; ratios %.2f / %.2f / %.2f (rounds vs nfs-net:%s; vs virtio-fs:%s; vs 9p:%s)\n",
            row, med["vsnfs"], med["nfs-net"], med["virtiofs"], med["9p"], u, ratio["nfs-net"], ratio["virtiofs"], ratio["9p"],
            roundq["nfs-net"], roundq["virtiofs"], roundq["9p"] > "/dev/stderr"
        delete roundq
    }
}' "$S/hostcpu.txt" "$S/results.txt" || die "summarising results"
log "per-op costs (guest context switches and CPU; host CPU of each server) in $S/limits.txt:"
column -t -s "$(printf '\t')" "$S/limits.txt" >&2 || cat "$S/limits.txt" >&2
