#!/bin/bash
# The guest rows of `make bench`: boots the test guest (vm-images/) with fio
# and the kernel nfsd's user-space tools added, runs bench/guest-workload.sh
# in it, and appends rows (vsnfs over vsock via the relay vs the guest
# kernel's nfsd over TCP loopback) to TABLE: one set per NFS version, NFSv3
# then NFSv4.1 (GUEST_VERS).
#   bench/guest.sh BENCH_DIR TABLE
# Environment: GUEST_ROUNDS (2), GUEST_RUNTIME (5 s per fio run), GUEST_SIZE (64m),
#   GUEST_VERS ("3 4.1": the NFS versions, each against the same version of knfsd),
#   GUEST_KERNEL (6.1 or 6.12: the guest's kernel, vm-images/scripts/guest-kernel.sh),
#   GUEST_BINS ("vsnfs vsnfs-mount" paths to use instead of this tree's release build),
#   GUEST_PEER_BIN (a second vsnfs build to measure against instead of knfsd, in the
#     same boot and the same A B B A order: a before/after of two builds with the
#     boot-to-boot spread taken out; the rows' ratios are then vsnfs/peer),
#   GUEST_TESTS ("randread randwrite seqread seqwrite": the rows to run).
# Uses the release binaries bench/run.sh built in .build-bench-rel and its own
# initramfs under BENCH_DIR (vm-images/out is left alone).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$1 TABLE=$2
SCRATCH=$top/.build-bench-rel
G=$B/guest
mkdir -p "$G"
die() { echo "bench/guest: FAILED: $*" >&2; exit 1; }

# Guest image pieces: the Debian kernel and busybox (vm-images' cache), our
# binaries (static Swift runtime), fio, and nfs-kernel-server's tools
# (unpacked from the Debian package, not installed on the host).
sh "$top/vm-images/scripts/deps.sh"
. "$top/vm-images/scripts/guest-kernel.sh"
cache=$top/vm-images/$guest_cache
sh "$top/vm-images/scripts/fetch-debs.sh" "$cache" "$guest_suite"
kpkg=$(cat "$cache/kernel-package")
kernel=$(ls "$cache/$kpkg"/boot/vmlinuz-* | head -1)
if [ -n "${GUEST_BINS:-}" ]; then
    # "path/vsnfs path/vsnfs-mount", e.g. an older build for before/after figures; the guest
    # finds them by these names.
    set -- $GUEST_BINS
    mkdir -p "$G/bins"; cp "$1" "$G/bins/vsnfs"; cp "$2" "$G/bins/vsnfs-mount"
    bins="$G/bins/vsnfs $G/bins/vsnfs-mount"
else
    (cd "$top" && swift build -c release --scratch-path "$SCRATCH" --product vsnfs-mount \
        >>"$B/build.log" 2>&1) || die "swift build of vsnfs-mount"
    bins="$SCRATCH/release/vsnfs $SCRATCH/release/vsnfs-mount"
fi
peer=knfsd
if [ -n "${GUEST_PEER_BIN:-}" ]; then
    [ -x "$GUEST_PEER_BIN" ] || die "GUEST_PEER_BIN=$GUEST_PEER_BIN is not an executable"
    mkdir -p "$G/bins"; cp "$GUEST_PEER_BIN" "$G/bins/vsnfs-peer"
    bins="$bins $G/bins/vsnfs-peer" peer=peer
fi
tests=${GUEST_TESTS:-randread randwrite seqread seqwrite}
for t in $tests; do
    case $t in randread|randwrite|seqread|seqwrite) ;; *) die "GUEST_TESTS: no row $t (randread randwrite seqread seqwrite)";; esac
done
if [ ! -x "$G/knfsd/usr/sbin/rpc.mountd" ]; then
    (cd "$G" && rm -f nfs-kernel-server_*.deb && apt-get download -q -o APT::Sandbox::User=root nfs-kernel-server >/dev/null \
        && dpkg -x nfs-kernel-server_*.deb knfsd) || die "apt-get download nfs-kernel-server"
fi
for lib in libwrap.so.0 libtirpc.so.3 libnsl.so.2; do
    ldconfig -p | grep -q "$lib" || die "$lib missing on the host (rpc.mountd needs it)"
done
extra="/usr/bin/fio /usr/sbin/rpcbind $G/knfsd/usr/sbin/rpc.mountd $G/knfsd/usr/sbin/rpc.nfsd $G/knfsd/usr/sbin/exportfs"
for b in $extra; do
    ldd "$b" | grep -q "not found" && die "$b: $(ldd "$b" | grep 'not found' | head -3)"
done
sh "$top/vm-images/scripts/build-initramfs.sh" "$G/initramfs.cpio.gz" "$cache" "$top/vm-images/init" \
    "vsock vmw_vsock_virtio_transport_common vsock_loopback vmw_vsock_virtio_transport nfs nfsv3 nfsv4 nfsd" \
    "$bins" "$extra" || die "build-initramfs"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/workload"
cp "$top/bench/guest-workload.sh" "$stage/workload/run"
chmod 755 "$stage/workload/run"
mkdir -p "$stage/workload/etc"
for f in netconfig services protocols; do
    [ -f /etc/$f ] || die "/etc/$f is missing on the host (the guest's rpcbind and nfs tools need it)"
    cp /etc/$f "$stage/workload/etc/"
done
vers_list=${GUEST_VERS:-3 4.1}
printf 'ROUNDS=%s\nRUNTIME=%s\nSIZE=%s\nVERSIONS="%s"\nTESTS="%s"\nPEER=%s\n' "${GUEST_ROUNDS:-2}" "${GUEST_RUNTIME:-5}" \
    "${GUEST_SIZE:-64m}" "$vers_list" "$tests" "$( [ $peer = knfsd ] || echo vsnfs-peer)" > "$stage/workload/env"
(cd "$stage" && find workload | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$G/workload.cpio.gz"

log=$G/console.log
# Each NFS version adds its rows' runs: the default timeout grows with them.
QEMU_MEM=${QEMU_MEM:-2048} sh "$top/vm-images/scripts/boot.sh" "$log" "${GUEST_TIMEOUT:-$((600 * $(echo $vers_list | wc -w)))}" "$kernel" \
    "$G/initramfs.cpio.gz" "$G/workload.cpio.gz" || echo "bench/guest: qemu exited non-zero" >&2
tr -d '\r' < "$log" > "$log.txt"
grep -q '^SUMMARY 1 passed' "$log.txt" || { grep 'GUESTBENCH\|FAIL' "$log.txt" | tail -5 >&2; die "guest workload did not finish (see $log)"; }

# FIO target test round terse...: terse v3 fields (after our 4): 7 read KiB/s, 8 read IOPS, 48 write KiB/s, 49 write IOPS
awk '
  $1 == "FIO" {
    target = $2; test = $3; round = $4
    line = $0; sub(/^FIO [^ ]+ [^ ]+ [^ ]+ /, "", line); n = split(line, f, ";")
    if (test ~ /read/) { bw = f[7]; iops = f[8] } else { bw = f[48]; iops = f[49] }
    v = (test ~ /^rand/) ? iops : bw / 1024
    print test, round, target, v
  }' "$log.txt" > "$G/results.txt"
[ -s "$G/results.txt" ] || die "no fio results in $log"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
label() {   # TEST VERS: the NFSv3 rows keep their names of before NFSv4.1 rows were added
    suffix=; [ "$2" = 3 ] || suffix=", NFSv$2"
    [ $peer = knfsd ] || suffix="$suffix, vs another vsnfs build ($GUEST_PEER_BIN)"
    case $1 in
    randread) echo "guest fio 4k randread, iodepth 16, direct$suffix";;
    randwrite) echo "guest fio 4k randwrite, iodepth 16, direct$suffix";;
    seqread) echo "guest fio 128k seq read, iodepth 8, direct$suffix";;
    seqwrite) echo "guest fio 128k seq write, iodepth 8, direct$suffix";;
    esac
}
for vers in $vers_list; do
    # the workload's target names: vsnfs/knfsd for NFSv3, vsnfs-4.1/knfsd-4.1 for NFSv4.1
    tv=vsnfs tk=$peer; [ "$vers" = 3 ] || { tv=vsnfs-$vers tk=$peer-$vers; }
    for t in $tests; do
        unit=IOPS; [ "${t#seq}" != "$t" ] && unit=MiB/s
        v=$(awk -v t=$t -v n=$tv '$1 == t && $3 == n { print $4 }' "$G/results.txt" | median)
        k=$(awk -v t=$t -v n=$tk '$1 == t && $3 == n { print $4 }' "$G/results.txt" | median)
        [ -n "$v" ] && [ -n "$k" ] || die "no $t results for NFSv$vers in $log"
        q=$(awk -v t=$t -v a=$tv -v b=$tk '$1 == t { s[$2, $3] += $4; r[$2] = 1 } END { for (x in r) printf "%.4f\n", s[x, a] / s[x, b] }' "$G/results.txt" | median)
        rw=$t; case $t in seqread) rw=read;; seqwrite) rw=write;; esac
        cmd="fio --rw=$rw --bs=$( [ $unit = IOPS ] && echo 4k || echo 128k) --iodepth=$( [ $unit = IOPS ] && echo 16 || echo 8) --direct=1 --ioengine=libaio$( [ "$vers" = 3 ] || echo ", NFSv$vers") (bench/guest-workload.sh)"
        printf '%s\t%s\t%s\t%s\t%s\n' "$(label $t "$vers")" "$(printf '%.1f' "$v") $unit" "$(printf '%.1f' "$k") $unit" "$(printf '%.2f' "$q")" "$cmd" >> "$TABLE"
        echo "bench/guest: NFSv$vers $t vsnfs $v $peer $k ratio $q" >&2
    done
done
