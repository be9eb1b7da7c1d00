#!/bin/sh
# Runs inside the test guest as /workload/run (bench/guest.sh boots it).
# fio through the guest kernel's NFS client against two servers in this
# same guest, each exporting a tmpfs, each mounted once per NFS version in
# VERSIONS ("3 4.1"):
#   vsnfs  : vsnfs serve over vsock (CID 1), mounted with mount.vsnfs (relay loopback TCP -> vsock)
#   knfsd  : the kernel's own nfsd over TCP loopback (rpc.nfsd, rpc.mountd, exportfs, rpcbind)
# or, with PEER=vsnfs-peer (bench/guest.sh's GUEST_PEER_BIN), in place of knfsd:
#   peer   : another vsnfs build (vsnfs-peer) over vsock port 2050, mounted the same way
# Both versions' mounts of a server use the same files (laid out once through
# the first). Rows alternate A B B A per round and version. Prints
# "FIO <target> <test> <round> <terse v3 line>"; the target is vsnfs or knfsd
# (peer) for NFSv3, vsnfs-4.1 or knfsd-4.1 (peer-4.1) for NFSv4.1.
export PATH=/workload:/usr/sbin:/usr/bin:/sbin:/bin
. /workload/env     # ROUNDS RUNTIME SIZE VERSIONS TESTS PEER
ROUNDS=${ROUNDS:-2} RUNTIME=${RUNTIME:-5} SIZE=${SIZE:-64m} VERSIONS=${VERSIONS:-3 4.1}
TESTS=${TESTS:-randread randwrite seqread seqwrite} PEER=${PEER:-}
other=knfsd; [ -n "$PEER" ] && other=peer   # the second server's target name
say() { echo "GUESTBENCH $*"; }
fail() { say "FAIL $*"; echo "SUMMARY 0 passed, 1 failed"; exit 1; }

# mount point of a target: /mnt/v (vsnfs, NFSv3), /mnt/k (knfsd), /mnt/p (peer), /mnt/v-4.1, /mnt/k-4.1, /mnt/p-4.1
mnt() { case $1 in vsnfs*) echo "/mnt/v${1#vsnfs}";; knfsd*) echo "/mnt/k${1#knfsd}";; peer*) echo "/mnt/p${1#peer}";; esac; }
target() { if [ "$2" = 3 ]; then echo "$1"; else echo "$1-$2"; fi; }   # SERVER VERS
mkdir -p /export /knfs /var/lib/nfs/v4recovery /run/rpcbind /var/lib/vsnfs /etc
for v in $VERSIONS; do mkdir -p "$(mnt "$(target vsnfs "$v")")" "$(mnt "$(target $other "$v")")"; done
mount -t tmpfs -o size=700m,mode=0777 tmpfs /export
mount -t tmpfs -o size=700m,mode=0777 tmpfs /knfs

# ---- vsnfs over vsock, through the relay ----
serve_vsnfs() {  # BINARY EXPORT PORT TARGET [SERVE-OPTIONS...]
    b=$1 e=$2 p=$3 n=$4; shift 4
    "$b" serve "$e" --listen vsock:"$p" --log-level warning "$@" >/tmp/"$n".log 2>&1 &
    for v in $VERSIONS; do
        i=0
        until mount.vsnfs 1:/ "$(mnt "$(target "$n" "$v")")" -o vers="$v",port="$p" 2>/tmp/mount-"$n".err; do
            i=$((i + 1)); [ $i -gt 100 ] && fail "mount.vsnfs $n vers=$v: $(cat /tmp/mount-"$n".err; tail -3 /tmp/"$n".log)"
            sleep 0.2
        done
    done
}
serve_vsnfs vsnfs /export 2049 vsnfs

if [ -n "$PEER" ]; then
    # its own state; no control socket (the first server has the default one),
    # if the build has one at all
    peer_opts="--state-dir /var/lib/vsnfs-peer"
    "$PEER" serve --help 2>&1 | grep -q -- --no-control && peer_opts="$peer_opts --no-control"
    serve_vsnfs "$PEER" /knfs 2050 peer $peer_opts
else
# ---- the kernel's nfsd over TCP loopback ----
grep -q '^_rpc:' /etc/passwd || echo "_rpc:x:108:65534::/run/rpcbind:/bin/false" >> /etc/passwd
# libtirpc needs /etc/netconfig; getservbyname and getprotobyname need these two.
cp /workload/etc/netconfig /workload/etc/services /workload/etc/protocols /etc/
mkdir -p /proc/fs/nfsd
mount -t nfsd nfsd /proc/fs/nfsd || fail "mount nfsd fs"
# The kernel registers nfsd with rpcbind through /var/run/rpcbind.sock (AF_LOCAL);
# over UDP rpcbind would refuse it and rpc.nfsd fails with EACCES.
[ -e /var/run ] || ln -s /run /var/run
rpcbind -w 2>/tmp/rpcbind.err || fail "rpcbind: $(cat /tmp/rpcbind.err)"
echo "/knfs 127.0.0.1(rw,root_squash,sync,no_subtree_check,fsid=1)" > /etc/exports
: > /var/lib/nfs/etab; : > /var/lib/nfs/rmtab
exportfs -ra 2>/tmp/exportfs.err || fail "exportfs: $(cat /tmp/exportfs.err)"
rpc.mountd -p 20048 -N 4 2>/tmp/mountd.err || fail "rpc.mountd: $(cat /tmp/mountd.err)"
# NFSv4 on (4.1 and 4.2; 4.0 off) with the shortest lease and grace period:
# no client state to reclaim in a fresh guest (NFSv4 OPENs wait out the grace
# period; the untimed layout below does that).
nfsd_args="-N 4.0 -L 10 -G 10"
case " $VERSIONS " in *" 4."*) ;; *) nfsd_args="-N 4" ;; esac
rpc.nfsd $nfsd_args 8 2>/tmp/nfsd.err || fail "rpc.nfsd: $(cat /tmp/nfsd.err)"
sleep 0.5
for v in $VERSIONS; do
    opts="vers=$v,proto=tcp,addr=127.0.0.1,port=2049"
    [ "$v" = 3 ] && opts="$opts,mountport=20048,mountproto=tcp,nolock"
    mount -t nfs -o "$opts" 127.0.0.1:/knfs "$(mnt "$(target knfsd "$v")")" || fail "mount knfsd vers=$v: $(dmesg | tail -3)"
done
fi
say "mounts: $(grep -E ' /mnt/(v|k|p)[-0-9.]* ' /proc/mounts | tr '\n' ';')"

# ---- fio ----
fio_run() {  # target test rw bs iodepth
    dir=$(mnt "$1")
    out=$(fio --name="$2" --directory="$dir" --filename=fio-"$2".dat --rw="$3" --bs="$4" --iodepth="$5" \
        --ioengine=libaio --direct=1 --size="$SIZE" --time_based --runtime="$RUNTIME" --ramp_time=1 \
        --numjobs=1 --group_reporting --minimal 2>/tmp/fio.err) || fail "fio $1 $2: $(tail -3 /tmp/fio.err)"
    echo "FIO $1 $2 $round $out"
}
# Lay out the files first (not timed).
first=$(echo $VERSIONS | cut -d' ' -f1)
for t in $(target vsnfs "$first") $(target $other "$first"); do
    dir=$(mnt "$t")
    for n in $TESTS; do
        fio --name=layout --directory="$dir" --filename=fio-$n.dat --rw=write --bs=1m --size="$SIZE" \
            --direct=1 --ioengine=libaio --iodepth=4 >/dev/null 2>/tmp/fio.err || fail "layout $t $n: $(tail -3 /tmp/fio.err)"
    done
done
round=1
while [ $round -le "$ROUNDS" ]; do
    for spec in "randread randread 4k 16" "randwrite randwrite 4k 16" "seqread read 128k 8" "seqwrite write 128k 8"; do
        set -- $spec
        case " $TESTS " in *" $1 "*) ;; *) continue;; esac
        for v in $VERSIONS; do
            for s in vsnfs $other $other vsnfs; do fio_run "$(target $s "$v")" "$1" "$2" "$3" "$4"; done
        done
    done
    round=$((round + 1))
done
for v in $VERSIONS; do umount "$(mnt "$(target vsnfs "$v")")" "$(mnt "$(target $other "$v")")"; done
echo "SUMMARY 1 passed, 0 failed"
