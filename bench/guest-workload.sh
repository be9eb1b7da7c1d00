#!/bin/sh
# Runs inside the test guest as /workload/run (bench/guest.sh boots it).
# fio through the guest kernel's NFSv3 client against two servers in this
# same guest, each exporting a tmpfs:
#   vsnfs  : vsnfs serve over vsock (CID 1), mounted with mount.vsnfs (relay loopback TCP -> vsock)
#   knfsd  : the kernel's own nfsd over TCP loopback (rpc.nfsd, rpc.mountd, exportfs, rpcbind)
# Rows alternate A B B A per round. Prints "FIO <target> <test> <round> <terse v3 line>".
export PATH=/workload:/usr/sbin:/usr/bin:/sbin:/bin
. /workload/env     # ROUNDS RUNTIME SIZE
ROUNDS=${ROUNDS:-2} RUNTIME=${RUNTIME:-5} SIZE=${SIZE:-64m}
say() { echo "GUESTBENCH $*"; }
fail() { say "FAIL $*"; echo "SUMMARY 0 passed, 1 failed"; exit 1; }

mkdir -p /export /knfs /mnt/v /mnt/k /var/lib/nfs /run/rpcbind /var/lib/vsnfs /etc
mount -t tmpfs -o size=700m,mode=0777 tmpfs /export
mount -t tmpfs -o size=700m,mode=0777 tmpfs /knfs

# ---- vsnfs over vsock, through the relay ----
vsnfs serve /export --listen vsock:2049 --log-level warning >/tmp/vsnfs.log 2>&1 &
i=0
until mount.vsnfs 1:/ /mnt/v -o vers=3 2>/tmp/mount-v.err; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "mount.vsnfs: $(cat /tmp/mount-v.err; tail -3 /tmp/vsnfs.log)"
    sleep 0.2
done

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
rpc.nfsd -N 4 8 2>/tmp/nfsd.err || fail "rpc.nfsd: $(cat /tmp/nfsd.err)"
sleep 0.5
mount -t nfs -o vers=3,proto=tcp,addr=127.0.0.1,port=2049,mountport=20048,mountproto=tcp,nolock 127.0.0.1:/knfs /mnt/k \
    || fail "mount knfsd: $(dmesg | tail -3)"
say "mounts: $(grep -E ' /mnt/(v|k) ' /proc/mounts | tr '\n' ';')"

# ---- fio ----
fio_run() {  # target test rw bs iodepth
    dir=/mnt/v; [ "$1" = knfsd ] && dir=/mnt/k
    out=$(fio --name="$2" --directory="$dir" --filename=fio-"$2".dat --rw="$3" --bs="$4" --iodepth="$5" \
        --ioengine=libaio --direct=1 --size="$SIZE" --time_based --runtime="$RUNTIME" --ramp_time=1 \
        --numjobs=1 --group_reporting --minimal 2>/tmp/fio.err) || fail "fio $1 $2: $(tail -3 /tmp/fio.err)"
    echo "FIO $1 $2 $round $out"
}
# Lay out the files first (not timed).
for t in vsnfs knfsd; do
    dir=/mnt/v; [ "$t" = knfsd ] && dir=/mnt/k
    for n in randread randwrite seqread seqwrite; do
        fio --name=layout --directory="$dir" --filename=fio-$n.dat --rw=write --bs=1m --size="$SIZE" \
            --direct=1 --ioengine=libaio --iodepth=4 >/dev/null 2>/tmp/fio.err || fail "layout $t $n: $(tail -3 /tmp/fio.err)"
    done
done
round=1
while [ $round -le "$ROUNDS" ]; do
    for spec in "randread randread 4k 16" "randwrite randwrite 4k 16" "seqread read 128k 8" "seqwrite write 128k 8"; do
        set -- $spec
        for t in vsnfs knfsd knfsd vsnfs; do fio_run "$t" "$1" "$2" "$3" "$4"; done
    done
    round=$((round + 1))
done
umount /mnt/v /mnt/k
echo "SUMMARY 1 passed, 0 failed"
