#!/bin/sh
# Runs inside the test guest as /workload/run (bench/share.sh boots it).
# One host directory, shared into this guest four ways, each mounted here:
#   vsnfs     /mnt/vsnfs     the guest kernel's NFSv3 client, mount.vsnfs's relay, virtio-vsock
#                            (vhost-user-vsock-pci) to vsnfs on the host
#   nfs-net   /mnt/nfs-net   the same kernel client and the same vsnfs, over virtio-net-pci and
#                            QEMU user-mode networking (host 10.0.2.2, TCP port NETPORT): no relay
#   virtiofs  /mnt/virtiofs  vhost-user-fs-pci to the host's virtiofsd (cache=auto)
#   9p        /mnt/9p        -virtfs (QEMU's own 9p server), trans=virtio, 9p2000.L, msize=512000
# Every row visits the targets A B C D D C B A per round. Prints, per run:
#   MARK begin|end TARGET ROW ROUND          (the host samples its processes' CPU on these)
#   RES TARGET ROW ROUND VALUE UNIT OPS CTXT BUSY RELAY
# VALUE: IOPS, MiB/s or seconds; OPS: operations in the run (fio I/Os, files);
# CTXT, BUSY: the guest's context switches and busy jiffies (user+nice+system+irq+softirq) in the run;
# RELAY: CPU ticks of mount.vsnfs's relay process(es) in the run.
export PATH=/workload:/usr/sbin:/usr/bin:/sbin:/bin
. /workload/env     # ROUNDS RUNTIME SIZE NFILES HOSTDIR NETPORT
say() { echo "SHAREBENCH $*"; }
fail() { say "FAIL $*"; echo "SUMMARY 0 passed, 1 failed"; exit 1; }
TARGETS="vsnfs nfs-net virtiofs 9p"
ORDER="vsnfs nfs-net virtiofs 9p 9p virtiofs nfs-net vsnfs"

mkdir -p /mnt/vsnfs /mnt/nfs-net /mnt/virtiofs /mnt/9p
# slirp's fixed addresses (its DHCP would hand out the same 10.0.2.15).
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 \
    || fail "eth0: $(ip link 2>&1 | tr '\n' ' ')"
i=0
until mount.vsnfs "2:$HOSTDIR" /mnt/vsnfs -o vers=3 2>/tmp/mount-v.err; do
    i=$((i + 1)); [ $i -gt 50 ] && fail "mount.vsnfs: $(cat /tmp/mount-v.err)"
    sleep 0.2
done
# The options mount.vsnfs gives the kernel for vers=3, at slirp's host address instead of the relay's.
i=0
until mount-nfs "10.0.2.2:$HOSTDIR" /mnt/nfs-net \
    "vers=3,proto=tcp,addr=10.0.2.2,port=$NETPORT,mountport=$NETPORT,mountproto=tcp,mountaddr=10.0.2.2,mountvers=3,nolock" \
    2>/tmp/mount-n.err; do
    i=$((i + 1)); [ $i -gt 20 ] && fail "mount nfs-net: $(cat /tmp/mount-n.err; dmesg | tail -3)"
    sleep 0.5
done
mount -t virtiofs hostshare /mnt/virtiofs 2>/tmp/mount-f.err || fail "mount virtiofs: $(cat /tmp/mount-f.err; dmesg | tail -3)"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 host9p /mnt/9p 2>/tmp/mount-9.err \
    || fail "mount 9p: $(cat /tmp/mount-9.err; dmesg | tail -3)"
say "mounts: $(grep -E ' /mnt/(vsnfs|nfs-net|virtiofs|9p) ' /proc/mounts | tr '\n' ';')"
for t in $TARGETS; do
    [ -s /mnt/$t/read.dat ] || fail "$t: read.dat is not visible through the share"
done

# The relay mount.vsnfs left running (its process name contains vsnfs).
RELAY=""
for p in /proc/[0-9]*; do case $(cat "$p/comm" 2>/dev/null) in *vsnfs*) RELAY="$RELAY ${p#/proc/}";; esac; done
say "relay pids:$RELAY"
snap() {
    r=0
    for p in $RELAY; do r=$((r + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$p/stat 2>/dev/null || echo 0))); done
    awk -v r=$r '/^ctxt/ { c = $2 } /^cpu / { b = $2 + $3 + $4 + $7 + $8 } END { print c, b, r }' /proc/stat
}
now() { cut -d' ' -f1 /proc/uptime; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ---- fio ----
# fio_run TARGET ROW ROUND rw bs iodepth direct
fio_run() {
    dir=/mnt/$1
    file=read.dat
    case $4 in *write*) file=w-$1.dat;; esac
    engine=libaio; extra=""
    [ "$7" = 0 ] && { engine=psync; extra="--end_fsync=1"; }
    [ "$7" = 0 ] && case $4 in *write*) ;; *) drop;; esac
    set -- "$@" $(snap)
    echo "MARK begin $1 $2 $3"
    out=$(fio --name="$2" --filename="$dir/$file" --rw="$4" --bs="$5" --iodepth="$6" --ioengine=$engine \
        --direct="$7" --size="$SIZE" --time_based --runtime="$RUNTIME" --numjobs=1 --minimal $extra \
        2>/tmp/fio.err) || fail "fio $1 $2: $(tail -3 /tmp/fio.err)"
    echo "MARK end $1 $2 $3"
    set -- "$@" $(snap)
    # terse v3: 6 read KiB, 7 read KiB/s, 8 read IOPS; 47 write KiB, 48 write KiB/s, 49 write IOPS
    echo "$out" | awk -F';' -v t="$1" -v row="$2" -v r="$3" -v rw="$4" -v bs="$5" \
        -v c0="$8" -v b0="$9" -v r0="${10}" -v c1="${11}" -v b1="${12}" -v r1="${13}" '
        NR == 1 {
            if (rw ~ /read/) { kb = $6; bw = $7; iops = $8 } else { kb = $47; bw = $48; iops = $49 }
            bsk = bs; sub(/k$/, "", bsk)
            ops = kb / bsk
            if (row ~ /^4k/) { v = iops; u = "IOPS" } else { v = bw / 1024; u = "MiB/s" }
            printf "RES %s %s %s %.2f %s %d %d %d %d\n", t, row, r, v, u, ops, c1 - c0, b1 - b0, r1 - r0
        }'
}

# ---- metadata: a tree of NFILES small files ----
# meta_step TARGET ROW ROUND COMMAND...: times COMMAND (a shell string), guest caches dropped first
meta_step() {
    t=$1 row=$2 r=$3; shift 3
    [ "$row" = untar ] || drop
    set -- "$*" $(snap)
    echo "MARK begin $t $row $r"
    t0=$(now)
    sh -c "$1" >/dev/null 2>/tmp/meta.err || fail "$t $row: $1: $(tail -3 /tmp/meta.err)"
    t1=$(now)
    echo "MARK end $t $row $r"
    set -- "$@" $(snap)
    awk -v t="$t" -v row="$row" -v r="$r" -v a="$t0" -v b="$t1" -v n="$NFILES" \
        -v c0="$2" -v b0="$3" -v r0="$4" -v c1="$5" -v b1="$6" -v r1="$7" \
        'BEGIN { printf "RES %s %s %s %.2f s %d %d %d %d\n", t, row, r, b - a, n, c1 - c0, b1 - b0, r1 - r0 }'
}
meta_run() {  # TARGET ROUND
    d=/mnt/$1/tree-$1
    rm -rf "$d"; mkdir -p "$d"
    meta_step "$1" untar "$2" "tar xf /workload/tree.tar -C $d && sync"
    meta_step "$1" stat "$2" "find $d | xargs stat"
    meta_step "$1" du "$2" "du -s $d"
    meta_step "$1" cat "$2" "find $d -type f | xargs cat"
    meta_step "$1" rm "$2" "rm -rf $d && sync"
}

round=1
while [ $round -le "$ROUNDS" ]; do
    for spec in "4k-randread randread 4k 16 1" "4k-randwrite randwrite 4k 16 1" \
                "128k-read read 128k 8 1" "128k-write write 128k 8 1" \
                "128k-read-buffered read 128k 1 0" "128k-write-buffered write 128k 1 0"; do
        set -- $spec
        for t in $ORDER; do fio_run "$t" "$1" $round "$2" "$3" "$4" "$5"; done
    done
    for t in $ORDER; do meta_run "$t" $round; done
    round=$((round + 1))
done
umount /mnt/vsnfs /mnt/nfs-net /mnt/virtiofs /mnt/9p
echo "SUMMARY 1 passed, 0 failed"
