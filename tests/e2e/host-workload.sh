#!/bin/sh
# The host-path e2e workload (make e2e-host), run inside the test guest as
# /workload/run (see host-run.sh). vsnfs runs on the HOST as this VM's
# vhost-user-vsock back-end; the guest kernel's NFS client mounts it with
# `mount -t vsnfs 2:PATH` (vsnfs-mount's relay, virtio-vsock to CID 2) and
# runs the checks shared with the in-guest run (checks.sh); steps on the host
# side of the export go to host-run.sh through $MNT/.host-calls.
# /workload/env sets MODE (main or refused), MOUNT_PATH (the export's path on
# the host), HOST_FILES ("name sha256 ..." of files the host wrote before
# boot), GUEST_CID (this guest's CID, for the refusal message),
# NESTED_HOST_FILE ("name sha256" of a file the host wrote in DIR/nested), VERS
# (3, 4.1 or 4.2).
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
lock_checks

# host-run.sh's exports map this guest's uid and gid 1000 to host 4501 and 4502.
t_mapped_user() {
    need_mount
    grep -q '^user:' /etc/passwd || echo 'user:x:1000:1000:user:/tmp:/bin/sh' >> /etc/passwd
    grep -q '^user:' /etc/group || echo 'user:x:1000:' >> /etc/group
    mkdir -p "$MNT/mapped" && chmod 0777 "$MNT/mapped" || fail "cannot make $MNT/mapped"
    su -s /bin/sh user -c "echo mine > $MNT/mapped/by1000 && chmod 600 $MNT/mapped/by1000" ||
        fail "guest uid 1000 cannot create a file"
    on_host host_uid mapped/by1000 4501
    on_host host_gid mapped/by1000 4502
    drop_caches
    # shellcheck disable=SC2046
    set -- $(ls -ln "$MNT/mapped/by1000")
    [ "$3:$4" = 1000:1000 ] || fail "the guest sees owner $3:$4 on its own file, not 1000:1000"
    [ "$(su -s /bin/sh user -c "cat $MNT/mapped/by1000")" = mine ] || fail "guest uid 1000 cannot read its own 0600 file"
    # Host uid 1000 is not guest 1000 (that is host 4501): it shows as nobody.
    on_host host_create_owned mapped/host1000 1000:1000
    # shellcheck disable=SC2046
    set -- $(ls -ln "$MNT/mapped/host1000")
    [ "$3:$4" = 65534:65534 ] || fail "host 1000:1000 shows as $3:$4 in the guest, not 65534:65534"
    ls -ln "$MNT/mapped"
}
check "map_uid/map_gid: guest uid 1000 creates as host 4501 and sees the file as its own" t_mapped_user

# The running server scripted from the host through its control socket: it
# reports this guest, an export added at runtime mounts, and once removed the
# guest kernel gets ESTALE from its next call.
t_control() {
    need_mount
    on_host host_control_status || fail "vsnfs status on the host does not report this guest"
    added=$(on_host host_control_add) || fail "vsnfs export add failed on the host: $added"
    mkdir -p /mnt/added
    mount -t vsnfs -o "vers=$VERS,actimeo=0" "$CID:$added" /mnt/added || fail "mount of $added (added at runtime) failed"
    [ "$(cat /mnt/added/hello)" = "added at runtime" ] || { umount /mnt/added; fail "wrong content in the added export"; }
    on_host host_control_remove || { umount /mnt/added; fail "vsnfs export remove failed on the host"; }
    out=$(stat /mnt/added/hello 2>&1)
    rc=$?
    umount /mnt/added || umount -l /mnt/added
    [ $rc -ne 0 ] || fail "stat after the export was removed succeeded: $out"
    echo "$out" | grep -qi "stale" || fail "not ESTALE after the export was removed: $out"
    echo "$out"
}
check "vsnfs status reports this guest; export add mounts, export remove gives ESTALE" t_control
# For the host's check once this guest is gone: what the guest wrote.
cat /tmp/guest-wrote 2>/dev/null

# ---- nested: a vsnfs in this guest exports its own mount of the host's
# export (DIR/nested) to its own clients on the guest's loopback CID, as CI
# runners inside VMs export their workspace to VMs of their own. The second
# mount goes through both servers: guest -> vsnfs in the guest -> the first
# mount -> vsnfs on the host -> DIR/nested on the host.
NESTED_PORT=2050 NESTED_MNT=/mnt/n NESTED_LOG=/tmp/vsnfs-nested.log
need_nested() { grep -q " $NESTED_MNT nfs" /proc/mounts || fail "$NESTED_MNT is not mounted"; }
nested_pid() { cat /tmp/vsnfs-nested.pid; }
start_nested() {
    # 8<&-: not the file t_nested_restart holds open on the nested mount.
    vsnfs serve "$MNT/nested" --listen "vsock:1:$NESTED_PORT" --state-dir /var/lib/vsnfs-nested \
        >> "$NESTED_LOG" 2>&1 8<&- &
    echo $! > /tmp/vsnfs-nested.pid
    i=0
    until mount.vsnfs -f 1:/ "$NESTED_MNT" -o "port=$NESTED_PORT,vers=$VERS" 2>/dev/null; do
        kill -0 "$(nested_pid)" 2>/dev/null || fail "the nested server exited: $(tail -n 3 "$NESTED_LOG")"
        i=$((i + 1)); [ $i -lt 100 ] || fail "the nested server did not answer on vsock:1:$NESTED_PORT within 20 s"
        sleep 0.2
    done
}
t_nested_mount() {
    need_mount
    [ -d "$MNT/nested" ] || fail "no directory nested on the first mount (host-run.sh makes it)"
    mkdir -p "$NESTED_MNT"
    start_nested
    mount -t vsnfs -o "vers=$VERS,port=$NESTED_PORT,actimeo=2" 1:/ "$NESTED_MNT" ||
        fail "mount through the nested server failed: $(tail -n 3 "$NESTED_LOG")"
    grep " $NESTED_MNT nfs" /proc/mounts || fail "no NFS mount at $NESTED_MNT"
    # Which handles the nested export uses: kernel (name_to_handle_at on the
    # NFS mount) or inode (number, index); both must survive a restart below.
    grep -o 'export [0-9]* at .*handles' "$NESTED_LOG" > /tmp/nested-handles || fail "the nested server logged no export"
    tail -n 1 /tmp/nested-handles
}
t_nested_reads_host() {
    need_nested
    drop_caches
    set -- $NESTED_HOST_FILE
    [ $# = 2 ] || fail "no nested host file listed"
    got=$(sum "$NESTED_MNT/$1")
    [ "$got" = "$2" ] || fail "$1 reads back through the nested mount as $got, the host wrote $2"
    echo "NESTED-SAW-HOST $1 $got" > /tmp/nested-saw
    cat "$NESTED_MNT/hostlive" 2>/dev/null
    on_host host_write nested/hostlive "written on the host"
    sleep 3   # attribute timeouts of both mounts (actimeo=2)
    drop_caches
    [ "$(cat "$NESTED_MNT/hostlive")" = "written on the host" ] ||
        fail "a file the host wrote while mounted reads '$(cat "$NESTED_MNT/hostlive")' through the nested mount"
    on_host host_write nested/hostlive "changed on the host"
    sleep 3
    [ "$(cat "$NESTED_MNT/hostlive")" = "changed on the host" ] ||
        fail "the host's change reads '$(cat "$NESTED_MNT/hostlive")' through the nested mount"
}
t_nested_writes() {
    need_nested
    head -c 3000007 /dev/urandom > "$SRC/nested"
    want=$(sum "$SRC/nested")
    cp "$SRC/nested" "$NESTED_MNT/fromnested" || fail "write through the nested mount failed"
    sync
    drop_caches
    [ "$(sum "$NESTED_MNT/fromnested")" = "$want" ] || fail "read-back through the nested mount differs"
    [ "$(sum "$MNT/nested/fromnested")" = "$want" ] || fail "the first mount reads other bytes"
    on_host host_sha256 nested/fromnested "$want"
    echo "NESTED-WROTE nested/fromnested $want" > /tmp/nested-wrote
    rm -f "$SRC/nested"
}
t_nested_changes() {
    need_nested
    mkdir "$NESTED_MNT/d" || fail "mkdir failed"
    echo one > "$NESTED_MNT/d/a" || fail "create failed"
    mv "$NESTED_MNT/d/a" "$NESTED_MNT/d/b" || fail "rename failed"
    chmod 640 "$NESTED_MNT/d/b" || fail "chmod failed"
    ln -s b "$NESTED_MNT/d/l" || fail "symlink failed"
    echo gone > "$NESTED_MNT/d/c" && rm "$NESTED_MNT/d/c" || fail "create and remove failed"
    on_host host_content nested/d/b one
    on_host host_absent nested/d/a
    on_host host_absent nested/d/c
    on_host host_mode nested/d/b 640
    on_host host_readlink nested/d/l b
    on_host host_uid nested/d/b 65534   # root squashed by the nested server, then as 65534 by the host's
}
# Handles the guest holds name objects on an NFS mount: they must still work
# after the nested server restarts (kernel handles of the NFS client, or the
# inode index in its state directory).
t_nested_restart() {
    need_nested
    exec 8< "$NESTED_MNT/d/b" || fail "open failed"
    pid=$(nested_pid)
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    start_nested || { exec 8<&-; fail "the nested server did not come back"; }
    drop_caches
    [ "$(cat <&8)" = one ] || { exec 8<&-; fail "an open file reads wrong after the restart (stale handle?)"; }
    exec 8<&-
    [ "$(cat "$NESTED_MNT/d/b")" = one ] || fail "a file reads wrong after the restart"
    echo two > "$NESTED_MNT/d/e" || fail "create after the restart failed"
    on_host host_content nested/d/e two
}
t_nested_umount() {
    need_nested
    umount "$NESTED_MNT" || {
        for p in /proc/[0-9]*; do   # who holds it
            ls -l "$p/fd" 2>/dev/null | grep -q " $NESTED_MNT/" && echo "pid ${p#/proc/} ($(cat "$p/comm")) has a file open there"
        done
        umount_failed=1
    }
    # Stopped in any case: it holds the first mount busy.
    pid=$(nested_pid)
    kill "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null; do i=$((i + 1)); [ $i -lt 50 ] || fail "the nested server ignored SIGTERM"; sleep 0.2; done
    [ -z "${umount_failed:-}" ] || { umount -l "$NESTED_MNT"; fail "umount of the nested mount failed (busy)"; }
}
check "nested: a vsnfs in the guest exports its mount of the host's export; mounted through it" t_nested_mount
check "nested: files the host wrote (before boot, and while mounted) read through the nested mount" t_nested_reads_host
check "nested: a file written through the nested mount lands on the host (sha256)" t_nested_writes
check "nested: mkdir, rename, chmod, symlink, remove through the nested mount, seen on the host" t_nested_changes
check "nested: the nested server restarts; open files and names keep working" t_nested_restart
check "nested: umount, the nested server stops on SIGTERM" t_nested_umount
echo "---- nested server log ----"; tail -n 8 "$NESTED_LOG" 2>/dev/null
cat /tmp/nested-saw /tmp/nested-wrote 2>/dev/null

umount_check

echo "---- relay log ----"; tail -n 20 "/run/vsnfs/relay-$CID-$PORT.log" 2>/dev/null
echo "SUMMARY $passed passed, $failed failed"
[ "$failed" = 0 ]
