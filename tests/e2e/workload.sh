#!/bin/sh
# The e2e workload, run inside the test guest as /workload/run (see run.sh).
# The guest is also the "host" here: the server exports a directory of this
# same machine over vsock loopback (CID 1), and the kernel NFS client mounts it
# through vsnfs-mount's relay. /workload/env sets VERS (3, 4.1 or 4.2).
#
# Prints "PASS name" or "FAIL name: why" per check, then "SUMMARY N passed, M failed".
. /workload/env
VERS=${VERS:-3}
PORT=2049
EXPORT=/export            # exported to this guest (CID 1), root_squash
SECRET=/secret            # exported to CID 42 only
OUTSIDE=/outside-data     # not exported; a symlink in the export points here (../outside-data)
MNT=/mnt/v
SRC=/tmp/src
SERVER_LOG=/tmp/vsnfs-serve.log
export PATH=/workload:/usr/sbin:/usr/bin:/sbin:/bin
CID=1 MOUNT_PATH=/
# The checks shared with the host-path run (make e2e-host); host steps run on $EXPORT.
. /workload/checks.sh
server_pid() { cat /tmp/vsnfs-serve.pid; }
start_server() {
    LD_PRELOAD=${SERVER_PRELOAD:-} vsnfs serve "$EXPORT" --listen "vsock:$PORT" >> "$SERVER_LOG" 2>&1 &
    server_pid=$!
    echo $server_pid > /tmp/vsnfs-serve.pid
    i=0
    while [ $i -lt 100 ]; do   # up to 20 s: the probe connects over vsock
        mount.vsnfs -f "1:/" "$MNT" -o "vers=$VERS" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || { tail -n 5 "$SERVER_LOG"; return 1; }
        sleep 0.2; i=$((i + 1))
    done
    tail -n 5 "$SERVER_LOG"; return 1
}

# ---- set up the host side (this same machine) ----
mkdir -p /var/lib "$EXPORT" "$SECRET" "$OUTSIDE" "$MNT" /mnt/s "$SRC"
mount -t tmpfs -o size=400m,mode=0777 tmpfs "$EXPORT"
echo "secret data" > "$SECRET/file"
echo "outside the export" > "$OUTSIDE/secret"
# For the refusal check, a second server (port 2050) with an exports file:
# /secret is exported to CID 42 only.
cat > /etc/vsnfs-exports <<EOT
$EXPORT vsock:1(rw)
$SECRET vsock:42(rw)
EOT
echo "e2e: NFS version $VERS, kernel $(uname -r)${SERVER_PRELOAD:+, server with $SERVER_PRELOAD preloaded}"

t_server_starts() { start_server; }
check "server starts and answers on vsock:$PORT" t_server_starts

mount_checks

# vsnfs doctor in a kernel that has vsock_diag (the build hosts have not):
# the server's listener and the relay's connection, read through libnl-3. The
# guest carries libnl-3 but not libtirpc (vm-images DLOPEN_LIBS): doctor says
# which package is missing instead of failing.
t_doctor() {
    need_mount
    out=$(vsnfs doctor --listen "vsock:$PORT" --state-dir /tmp/doctor-state 2>&1); rc=$?
    echo "$out" | grep -Eq "^ok +vsock-sockets +vsock_diag lists .*; ports listening: ([0-9]+, )*$PORT(,|;)" ||
        fail "listener not listed: $(echo "$out" | grep vsock-sockets)"
    echo "$out" | grep -Eq "^ok +vsock-sockets .*; sockets connected: [1-9]" ||
        fail "the relay's connection not listed: $(echo "$out" | grep vsock-sockets)"
    echo "$out" | grep -Fq "vsock port $PORT is in use (*:$PORT listening)" ||
        fail "port not reported in use: $(echo "$out" | grep 'listen vsock')"
    echo "$out" | grep -Eq "^warn +rpcbind +libtirpc not installed" ||
        fail "missing libtirpc not reported: $(echo "$out" | grep rpcbind)"
    [ "$rc" = 1 ] || fail "exit status $rc with a failed check"
}
check "vsnfs doctor lists the server's vsock listener and connections (vsock_diag via libnl-3)" t_doctor


fs_checks
lock_checks

t_restart() {
    need_mount
    head -c 8388608 /dev/urandom > "$SRC/before"
    cp "$SRC/before" "$MNT/before"; sync
    relay=$(cut -d' ' -f1 /run/vsnfs/relay-1-$PORT.port)
    pid=$(server_pid)
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    start_server || fail "server did not come back"
    drop_caches
    [ "$(sum "$MNT/before")" = "$(sum "$SRC/before")" ] || fail "data synced before the kill differs"
    head -c 1048576 /dev/urandom > "$SRC/after"
    cp "$SRC/after" "$MNT/after"; drop_caches
    [ "$(sum "$MNT/after")" = "$(sum "$SRC/after")" ] || fail "write after restart"
    [ "$(cat "$MNT/r2/g")" = moved ] || fail "old file after restart (stale handle?)"
    [ "$(cut -d' ' -f1 /run/vsnfs/relay-1-$PORT.port)" = "$relay" ] || fail "relay was replaced"
    kill -0 "$relay" || fail "relay died"
}
check "server restart mid-way: mount keeps working, synced data intact" t_restart

# SIGKILL of the server while the kernel client writes a file with
# `dd conv=fsync`: the source comes in two halves 3 s apart, and the flusher
# runs every 0.5 s, so the kill lands after part of the file reached the
# server as UNSTABLE writes and before the rest was written. The client
# reconnects to the restarted server, sees the new write verifier in WRITE or
# COMMIT replies, resends what was not committed, and dd's fsync succeeds:
# the file matches the source.
t_kill_mid_write() {
    need_mount
    head -c 33554432 /dev/urandom > "$SRC/killed"
    expire=$(cat /proc/sys/vm/dirty_expire_centisecs); writeback=$(cat /proc/sys/vm/dirty_writeback_centisecs)
    echo 50 > /proc/sys/vm/dirty_expire_centisecs; echo 50 > /proc/sys/vm/dirty_writeback_centisecs
    ( dd if="$SRC/killed" bs=1M count=16 2>/dev/null; sleep 3; dd if="$SRC/killed" bs=1M skip=16 2>/dev/null ) \
        | dd of="$MNT/killed" bs=1M conv=fsync 2>/tmp/dd-killed.log &
    writer=$!
    i=0
    while [ "$(stat -c %s "$EXPORT/killed" 2>/dev/null || echo 0)" -lt 1048576 ] && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    on_host=$(stat -c %s "$EXPORT/killed" 2>/dev/null || echo 0)
    pid=$(server_pid)
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    start_server || fail "server did not come back"
    wait $writer; rc=$?
    echo "$expire" > /proc/sys/vm/dirty_expire_centisecs; echo "$writeback" > /proc/sys/vm/dirty_writeback_centisecs
    [ $rc = 0 ] || fail "dd exited $rc: $(cat /tmp/dd-killed.log)"
    [ "$on_host" -gt 0 ] && [ "$on_host" -lt 33554432 ] || fail "the kill came with $on_host bytes on the host, not mid-file"
    [ "$(sum "$EXPORT/killed")" = "$(sum "$SRC/killed")" ] || fail "host file differs from the source"
    drop_caches
    [ "$(sum "$MNT/killed")" = "$(sum "$SRC/killed")" ] || fail "file read back differs from the source"
    echo "$on_host" > /tmp/killed-at
}
check "SIGKILL mid dd conv=fsync: the client resends after the restart, checksum matches" t_kill_mid_write
echo "e2e: kill mid-write: $(cat /tmp/killed-at 2>/dev/null || echo '?') of 33554432 bytes on the host at the kill"

# NFSv4.1/4.2: a lock survives a server restart (RFC 8881 §8.4.2): the client
# reclaims it in the grace period (OPEN CLAIM_PREVIOUS, LOCK reclaim), which
# the server allows because it recorded the client in its state directory.
# Another process's F_SETLK is refused afterwards (the client retries it
# while the server answers NFS4ERR_GRACE), and the file is intact.
t_lock_restart() {
    need_mount
    mkdir -p "$MNT/locks"
    head -c 1048576 /dev/urandom > "$SRC/locked"
    cp "$SRC/locked" "$MNT/locks/restart"; sync
    holder=$(guest_hold posix "$MNT/locks/restart") || fail "$holder"
    pid=$(server_pid)
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    [ -s /var/lib/vsnfs/nfs4-clients ] ||
        { kill $holder; fail "no client record in the state directory: $(ls /var/lib/vsnfs 2>&1)"; }
    start_server || { kill $holder; fail "server did not come back"; }
    locker posix try "$MNT/locks/restart"; rc=$?
    kill -0 $holder 2>/dev/null || fail "the holder died (its lock was lost?): $(cat /tmp/guest-lock.log)"
    [ $rc = 1 ] || { kill $holder; fail "F_SETLK after the restart exited $rc, not 1: the lock was not reclaimed"; }
    grep -q "grace period" "$SERVER_LOG" || { kill $holder; fail "the server did not start a grace period"; }
    kill $holder; wait_exit $holder 10
    locker posix try "$MNT/locks/restart" || fail "F_SETLK after the holder ended exited $?"
    drop_caches
    [ "$(sum "$MNT/locks/restart")" = "$(sum "$SRC/locked")" ] || fail "the locked file differs after the restart"
}
case $VERS in 4*) check "a lock held across a server restart is reclaimed: still held, file intact" t_lock_restart ;; esac

t_refused() {
    vsnfs serve --exports /etc/vsnfs-exports --listen vsock:2050 --state-dir /var/lib/vsnfs-2 \
        --control /run/vsnfs-2/control \
        >> /tmp/vsnfs-serve-2.log 2>&1 &
    pid2=$!
    i=0
    until mount.vsnfs -f 1:/ /mnt/s -o port=2050,vers=$VERS 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { kill $pid2; cat /tmp/vsnfs-serve-2.log; fail "second server did not start"; }
        sleep 0.2
    done
    out=$(mount -t vsnfs -o "vers=$VERS,port=2050" 1:$SECRET /mnt/s 2>&1)
    rc=$?
    [ $rc -eq 0 ] && umount /mnt/s
    kill $pid2
    [ $rc -ne 0 ] || fail "mount of an export for CID 42 succeeded"
    echo "$out"
    echo "$out" | grep -q "refused" || fail "message does not say refused"
    echo "$out" | grep -q "CID 1" || fail "message does not name CID 1"
}
check "export for another CID is refused with a clear message" t_refused

# A third server exports a 2 MiB tmpfs. The kernel client's writer must see
# ENOSPC (not EIO, not a hang), another file stays intact, and once the host
# deletes the big file the server takes writes again (it closes its fds of
# files deleted on the host, which would otherwise keep the space in use).
t_full_export() {
    small=/small-export
    mkdir -p $small /mnt/f
    mount -t tmpfs -o size=2m,mode=0777 tmpfs $small || fail "mount tmpfs"
    head -c 300000 /dev/urandom > $small/keep
    want=$(sum $small/keep)
    vsnfs serve $small --listen vsock:2051 --state-dir /var/lib/vsnfs-3 --control /run/vsnfs-3/control >> /tmp/vsnfs-serve-3.log 2>&1 &
    pid3=$!
    i=0
    until mount -t vsnfs -o "vers=$VERS,port=2051" 1:/ /mnt/f 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { kill $pid3; cat /tmp/vsnfs-serve-3.log; fail "third server did not start"; }
        sleep 0.2
    done
    out=$(dd if=/dev/zero of=/mnt/f/big bs=64k count=64 conv=fsync 2>&1)
    rc=$?
    echo "dd: $out"
    result=ok
    [ $rc -ne 0 ] || result="dd of 4 MiB into 2 MiB succeeded"
    echo "$out" | grep -q "No space left on device" || result="dd did not report ENOSPC"
    [ "$(sum /mnt/f/keep)" = "$want" ] || result="keep differs (client view)"
    [ "$(sum $small/keep)" = "$want" ] || result="keep differs (host view)"
    if [ "$result" = ok ]; then
        rm -f $small/big
        i=0
        until echo after > /mnt/f/after 2>/dev/null && [ "$(cat $small/after)" = after ]; do
            i=$((i + 1)); [ $i -lt 50 ] || { result="no write 10 s after the host freed space"; break; }
            sleep 0.2
        done
    fi
    kill -0 $pid3 || result="server died"
    umount /mnt/f; kill $pid3; umount $small
    [ "$result" = ok ] || fail "$result"
}
check "a full export: ENOSPC to the writer, nothing else lost, space back once the host deletes" t_full_export

umount_check

kill "$(server_pid)" 2>/dev/null
echo "---- relay log ----"; cat /run/vsnfs/relay-1-$PORT.log 2>/dev/null | tail -n 20
if [ "$failed" != 0 ]; then echo "---- server log (tail) ----"; tail -n 40 "$SERVER_LOG"; fi
echo "SUMMARY $passed passed, $failed failed"
[ "$failed" = 0 ]
