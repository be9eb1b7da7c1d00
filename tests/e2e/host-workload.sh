#!/bin/sh
# The host-path e2e workload (make e2e-host), run inside the test guest as
# /workload/run (see host-run.sh). vsnfs runs on the HOST as this VM's
# vhost-user-vsock back-end; the guest kernel's NFS client mounts it with
# `mount -t vsnfs 2:PATH` (vsnfs-mount's relay, virtio-vsock to CID 2) and
# runs the checks shared with the in-guest run (checks.sh); steps on the host
# side of the export go to host-run.sh through $MNT/.host-calls.
# /workload/env sets MODE (main or refused), MOUNT_PATH (the export's path on
# the host), HOST_FILES ("name sha256 ..." of files the host wrote before
# boot), GUEST_CID (this guest's CID, for the refusal message), VERS (3, 4.1 or 4.2).
#
# Prints "PASS name" or "FAIL name: why" per check, then "SUMMARY N passed, M failed".
. /workload/env
VERS=${VERS:-3} PORT=2049 CID=2
MNT=/mnt/v
SRC=/tmp/src
HOST_CALLS=1
export PATH=/workload:/usr/sbin:/usr/bin:/sbin:/bin
. /workload/checks.sh
mkdir -p "$MNT" "$SRC" /var/lib
echo "e2e-host: NFS version $VERS, kernel $(uname -r), guest CID $GUEST_CID, mode $MODE, server at CID $CID:$MOUNT_PATH"

if [ "$MODE" = refused ]; then
    t_refused() {
        out=$(mount -t vsnfs -o "vers=$VERS" "$CID:$MOUNT_PATH" "$MNT" 2>&1)
        rc=$?
        [ $rc -eq 0 ] && umount "$MNT"
        [ $rc -ne 0 ] || fail "mount by CID $GUEST_CID succeeded although the exports refuse it"
        echo "$out"
        echo "REFUSED-MESSAGE $out" > /tmp/refused-message
        echo "$out" | grep -q "refused access" || fail "message does not say refused access: $out"
        echo "$out" | grep -q "CID $GUEST_CID" || fail "message does not name CID $GUEST_CID: $out"
    }
    check "CID $GUEST_CID is refused by the exports file with a clear message" t_refused
    cat /tmp/refused-message 2>/dev/null
    echo "SUMMARY $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
fi

mount_checks

t_host_files() {
    need_mount
    drop_caches
    # shellcheck disable=SC2086
    set -- $HOST_FILES
    [ $# -ge 2 ] || fail "no host files listed"
    while [ $# -ge 2 ]; do
        [ -f "$MNT/$1" ] || fail "no $1 on the mount"
        got=$(sum "$MNT/$1")
        [ "$got" = "$2" ] || fail "$1 reads back as $got, the host wrote $2"
        echo "GUEST-SAW-HOST $1 $got" >> /tmp/guest-saw
        shift 2
    done
}
check "files the host wrote before boot read back with the host's sha256" t_host_files
cat /tmp/guest-saw 2>/dev/null   # for the host's check once this guest is gone

fs_checks
# For the host's check once this guest is gone: what the guest wrote.
cat /tmp/guest-wrote 2>/dev/null
umount_check

echo "---- relay log ----"; tail -n 20 "/run/vsnfs/relay-$CID-$PORT.log" 2>/dev/null
echo "SUMMARY $passed passed, $failed failed"
[ "$failed" = 0 ]
