#!/bin/sh
# The e2e workload, run inside the test guest as /workload/run (see run.sh).
# The guest is also the "host" here: the server exports a directory of this
# same machine over vsock loopback (CID 1), and the kernel NFS client mounts it
# through vsnfs-mount's relay. /workload/env sets VERS (3 or 4.1).
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

passed=0 failed=0
check() {   # check NAME FUNCTION: runs FUNCTION, records its result
    name=$1; shift
    start=$(date +%s)
    out=$("$@" 2>&1)
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        echo "PASS $name (${secs}s)"
        passed=$((passed + 1))
    else
        echo "FAIL $name (${secs}s): $(echo "$out" | tail -n 4 | tr '\n' '|')"
        failed=$((failed + 1))
    fi
}
# Each check runs in a subshell ($(...)): fail ends that check only.
fail() { echo "$*"; exit 1; }
# Checks that need the NFS mount fail at once without it, rather than pass
# against the bare mount-point directory.
need_mount() { grep -q " $MNT nfs" /proc/mounts || fail "$MNT is not mounted"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
sum() { sha256sum "$1" | cut -d' ' -f1; }
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

t_bad_spec() {
    out=$(mount -t vsnfs nonsense "$MNT" 2>&1) && fail "mount of a bad SPEC succeeded"
    echo "$out" | grep -q "bad SPEC" || fail "message: $out"
    out=$(mount.vsnfs 1:relative "$MNT" 2>&1) && fail "mount of a relative path succeeded"
    echo "$out" | grep -q "bad SPEC" || fail "message: $out"
    echo "$out"
}
check "bad SPEC is refused with a clear message" t_bad_spec

t_nothing_listening() {
    out=$(mount -t vsnfs -o port=7777 1:/ "$MNT" 2>&1) && fail "mount to an unused port succeeded"
    echo "$out" | grep -q "nothing is listening at vsock CID 1 port 7777" || fail "message: $out"
}
check "nothing listening at CID:port gives a clear message" t_nothing_listening

t_mount() {
    ip link set lo down
    mount -t vsnfs -o "vers=$VERS,actimeo=2" 1:/ "$MNT" || fail "mount failed"
    grep " $MNT nfs" /proc/mounts || fail "no NFS mount at $MNT in /proc/mounts"
    grep " $MNT nfs" /proc/mounts | grep -q "vers=$VERS" || fail "not NFSv$VERS: $(grep " $MNT " /proc/mounts)"
    ip link show lo | grep -q "UP" || fail "loopback still down"
    [ -s /run/vsnfs/relay-1-$PORT.port ] || fail "no relay port file"
}
check "mount -t vsnfs 1:/ (NFSv$VERS, brings lo up)" t_mount

t_files() {
    need_mount
    for size in 0 1 4095 4096 4097 65536 1048583 16777216 67108864; do
        dd if=/dev/urandom of="$SRC/f$size" bs=1048576 count=$((size / 1048576)) 2>/dev/null
        head -c $((size % 1048576)) /dev/urandom >> "$SRC/f$size"
        cp "$SRC/f$size" "$MNT/f$size" || fail "write of $size bytes failed"
    done
    drop_caches
    for size in 0 1 4095 4096 4097 65536 1048583 16777216 67108864; do
        want=$(sum "$SRC/f$size")
        [ "$(sum "$MNT/f$size")" = "$want" ] || fail "read-back of $size bytes differs"
        [ "$(sum "$EXPORT/f$size")" = "$want" ] || fail "host copy of $size bytes differs"
        [ "$(stat -c %s "$MNT/f$size")" = "$size" ] || fail "size of f$size"
    done
    rm -f "$SRC"/f16777216 "$SRC"/f67108864   # keep guest memory free
}
check "files of 0 B to 64 MiB written and read back (sha256, host copy too)" t_files

t_append() {
    need_mount
    printf 'one\n' > "$MNT/app"
    printf 'two\n' >> "$MNT/app"
    head -c 10000 /dev/urandom > "$SRC/app.tail"
    cat "$SRC/app.tail" >> "$MNT/app"
    { printf 'one\ntwo\n'; cat "$SRC/app.tail"; } > "$SRC/app"
    drop_caches
    cmp "$SRC/app" "$MNT/app" || fail "appended file differs"
    cmp "$SRC/app" "$EXPORT/app" || fail "host copy differs"
}
check "append" t_append

t_truncate() {
    need_mount
    head -c 100000 /dev/urandom > "$MNT/tr"
    head -c 50000 "$MNT/tr" > "$SRC/tr.head"
    truncate -s 50000 "$MNT/tr" || fail "shrink failed"
    drop_caches
    [ "$(stat -c %s "$MNT/tr")" = 50000 ] || fail "size after shrink: $(stat -c %s "$MNT/tr")"
    cmp "$SRC/tr.head" "$MNT/tr" || fail "content after shrink"
    truncate -s 70000 "$MNT/tr" || fail "grow failed"
    drop_caches
    [ "$(stat -c %s "$EXPORT/tr")" = 70000 ] || fail "host size after grow"
    [ "$(tail -c 20000 "$MNT/tr" | tr -d '\0' | wc -c)" = 0 ] || fail "grown part is not zeros"
    : > "$MNT/tr"
    [ "$(stat -c %s "$MNT/tr")" = 0 ] || fail "truncate to 0"
}
check "truncate (shrink, grow, to zero)" t_truncate

t_sparse() {
    need_mount
    printf 'start' > "$MNT/sparse"
    printf 'middle' | dd of="$MNT/sparse" bs=1 seek=$((50 * 1048576)) conv=notrunc 2>/dev/null
    printf 'end' | dd of="$MNT/sparse" bs=1 seek=$((100 * 1048576)) conv=notrunc 2>/dev/null
    drop_caches
    [ "$(stat -c %s "$MNT/sparse")" = $((100 * 1048576 + 3)) ] || fail "size $(stat -c %s "$MNT/sparse")"
    [ "$(dd if="$MNT/sparse" bs=1 skip=$((50 * 1048576)) count=6 2>/dev/null)" = middle ] || fail "middle"
    [ "$(dd if="$MNT/sparse" bs=1 skip=$((100 * 1048576)) count=3 2>/dev/null)" = end ] || fail "end"
    [ "$(dd if="$MNT/sparse" bs=4096 skip=100 count=1 2>/dev/null | tr -d '\0' | wc -c)" = 0 ] || fail "hole not zeros"
    used=$(du -k "$EXPORT/sparse" | cut -f1)
    [ "$used" -lt 10240 ] || fail "host file is not sparse: ${used} KiB used"
}
check "sparse writes (holes read as zeros, host file stays sparse)" t_sparse

t_tree_copy() {
    need_mount
    # TREE_DIRS x (2 x TREE_PER_DIR + 2) files (default 2,000) and 80 directories, with
    # varied sizes and modes, owned by nobody so cp -a's ownership is allowed
    # under root_squash. Every create costs several RPCs of ~15 ms under
    # emulation (cp -a: ~0.1 s a file on a quiet machine, 0.2-0.35 s on a busy
    # one), which bounds the size for a CI run of a few minutes;
    # TREE_DIRS=40 TREE_PER_DIR=40 gives 3,280 files.
    mkdir -p "$SRC/tree"
    d=0
    while [ $d -lt "${TREE_DIRS:-40}" ]; do
        mkdir -p "$SRC/tree/d$d/sub"
        head -c $((d * 37)) /dev/urandom > "$SRC/tree/d$d/seed"
        i=0
        while [ $i -lt "${TREE_PER_DIR:-24}" ]; do
            head -c $(( (i * 131 + d) % 3000 )) "$SRC/f1048583" > "$SRC/tree/d$d/f$i"
            echo "$d/$i" > "$SRC/tree/d$d/sub/g$i"
            i=$((i + 1))
        done
        chmod 640 "$SRC/tree/d$d/f1"; chmod 755 "$SRC/tree/d$d/f2"
        ln -s f3 "$SRC/tree/d$d/link"
        d=$((d + 1))
    done
    chown -R 65534:65534 "$SRC/tree"
    total=$(find "$SRC/tree" | wc -l)
    cp -a "$SRC/tree" "$MNT/tree" || fail "cp -a failed"
    drop_caches
    diff -r "$SRC/tree" "$MNT/tree" || fail "tree differs (client view)"
    diff -r "$SRC/tree" "$EXPORT/tree" || fail "tree differs (host view)"
    # (Sizes of directories are the filesystem's business, and busybox cp -a
    # keeps no times of symlinks, even locally; diff -r compared contents.)
    (cd "$SRC/tree" && find . ! -type l | sort | xargs stat -c '%n %a %Y %F') > /tmp/tree.src
    (cd "$MNT/tree" && find . ! -type l | sort | xargs stat -c '%n %a %Y %F') > /tmp/tree.mnt
    [ "$(cd "$MNT/tree" && find . -type l | sort | xargs readlink)" = "$(cd "$SRC/tree" && find . -type l | sort | xargs readlink)" ] ||
        fail "symlink targets differ"
    cmp /tmp/tree.src /tmp/tree.mnt || { diff /tmp/tree.src /tmp/tree.mnt | head -5; fail "modes, sizes or mtimes differ"; }
    echo "$total entries"
}
check "cp -a of a tree of ${TREE_DIRS:-40}x$((2 * ${TREE_PER_DIR:-24} + 2)) files, byte-for-byte and modes/mtimes" t_tree_copy

t_big_dir() {
    need_mount
    # 100 entries created through NFS, 4,900 on the host side (creating all
    # 5,000 through NFS costs minutes under emulation), all listed through NFS.
    mkdir "$MNT/big"
    (cd "$MNT/big" && seq 1 100 | sed 's/^/entry-/' | xargs touch) || fail "create failed"
    (cd "$EXPORT/big" && seq 101 5000 | sed 's/^/entry-/' | xargs touch) || fail "host create failed"
    sleep 2   # directory attribute timeout (actimeo=2): the client notices the host's change
    drop_caches
    ls -1A "$MNT/big" | sort > /tmp/big.got
    n=$(grep -c '^entry-' /tmp/big.got)
    [ "$n" = 5000 ] || fail "listed $n of 5000 entries"
    seq 1 5000 | sed 's/^/entry-/' | sort > /tmp/big.want
    cmp /tmp/big.want /tmp/big.got || fail "names differ"
    [ "$(ls "$EXPORT/big" | wc -l)" = 5000 ] || fail "host sees $(ls "$EXPORT/big" | wc -l)"
}
check "5,000-entry directory listed completely" t_big_dir

t_deep() {
    need_mount
    p=$MNT/deep; h=$EXPORT/deep; i=0
    while [ $i -lt 40 ]; do p=$p/level$i; h=$h/level$i; i=$((i + 1)); done
    mkdir -p "$p" || fail "mkdir -p failed"
    echo bottom > "$p/file"
    drop_caches
    [ "$(cat "$p/file")" = bottom ] || fail "client read"
    [ "$(cat "$h/file")" = bottom ] || fail "host read"
}
check "mkdir -p of a 40-level tree" t_deep

t_rename() {
    need_mount
    mkdir -p "$MNT/r1/inner" "$MNT/r2"
    echo moved > "$MNT/r1/f"
    echo inner > "$MNT/r1/inner/x"
    mv "$MNT/r1/f" "$MNT/r2/g" || fail "file rename failed"
    mv "$MNT/r1/inner" "$MNT/r2/inner2" || fail "directory rename failed"
    echo new > "$MNT/r2/over"; echo old > "$MNT/r2/target"
    mv "$MNT/r2/over" "$MNT/r2/target" || fail "rename over a file failed"
    drop_caches
    [ ! -e "$MNT/r1/f" ] && [ ! -e "$MNT/r1/inner" ] || fail "sources still exist"
    [ "$(cat "$MNT/r2/g")" = moved ] || fail "moved file content"
    [ "$(cat "$MNT/r2/inner2/x")" = inner ] || fail "moved directory content"
    [ "$(cat "$MNT/r2/target")" = new ] || fail "replaced file content"
    [ "$(cat "$EXPORT/r2/g")" = moved ] && [ ! -e "$EXPORT/r1/f" ] || fail "host view"
}
check "rename across directories (file, directory, over a file)" t_rename

t_hardlink() {
    need_mount
    echo linked > "$MNT/hl1"
    ln "$MNT/hl1" "$MNT/hl2" || fail "ln failed"
    [ "$(stat -c %h "$MNT/hl1")" = 2 ] || fail "link count $(stat -c %h "$MNT/hl1")"
    [ "$(stat -c %i "$MNT/hl1")" = "$(stat -c %i "$MNT/hl2")" ] || fail "different inodes"
    [ "$(stat -c %i "$EXPORT/hl1")" = "$(stat -c %i "$EXPORT/hl2")" ] || fail "host: different inodes"
    rm "$MNT/hl1"
    drop_caches
    [ "$(cat "$MNT/hl2")" = linked ] || fail "content via second link"
    [ "$(stat -c %h "$MNT/hl2")" = 1 ] || fail "link count after unlink"
}
check "hard links" t_hardlink

t_symlink() {
    need_mount
    echo target > "$MNT/st"
    ln -s st "$MNT/sl" || fail "ln -s failed"
    [ "$(readlink "$MNT/sl")" = st ] || fail "readlink"
    [ "$(cat "$MNT/sl")" = target ] || fail "read through link"
    [ "$(readlink "$EXPORT/sl")" = st ] || fail "host readlink"
    # A link whose target leaves the export: the server returns the link, never the target.
    ln -s ../outside-data "$EXPORT/escape"
    drop_caches
    [ "$(readlink "$MNT/escape")" = ../outside-data ] || fail "readlink of escape link"
    [ "$(stat -c %F "$MNT/escape")" = "symbolic link" ] || fail "escape is not a symlink on the client"
    if cat "$MNT/escape/secret" 2>/dev/null; then fail "read outside the export through a symlink"; fi
    ls "$MNT" | grep -q secret && fail "outside file listed in the export"
    return 0
}
check "symlinks (and one pointing outside the export is not followed)" t_symlink

t_chmod() {
    need_mount
    echo m > "$MNT/mode"
    chmod 0754 "$MNT/mode" || fail "chmod failed"
    drop_caches
    [ "$(stat -c %a "$MNT/mode")" = 754 ] || fail "client sees $(stat -c %a "$MNT/mode")"
    [ "$(stat -c %a "$EXPORT/mode")" = 754 ] || fail "host sees $(stat -c %a "$EXPORT/mode")"
    chmod 600 "$MNT/mode"
    [ "$(stat -c %a "$EXPORT/mode")" = 600 ] || fail "host after second chmod"
}
check "chmod (client and host views)" t_chmod

t_chown_squashed() {
    need_mount
    echo o > "$MNT/own"
    [ "$(stat -c %u "$EXPORT/own")" = 65534 ] || fail "root not squashed: host uid $(stat -c %u "$EXPORT/own")"
    if chown 1234 "$MNT/own" 2>/dev/null; then fail "chown succeeded under root_squash"; fi
    [ "$(stat -c %u "$EXPORT/own")" = 65534 ] || fail "owner changed on the host"
    return 0
}
check "chown refused under root_squash" t_chown_squashed

t_unlink_open() {
    need_mount
    echo "still here" > "$MNT/open"
    exec 7< "$MNT/open"
    rm "$MNT/open" || fail "rm failed"
    [ ! -e "$MNT/open" ] || fail "name still visible"
    [ "$(cat <&7)" = "still here" ] || { exec 7<&-; fail "read after unlink"; }
    exec 7<&-
    sleep 1
    left=$(ls -A "$MNT" | grep -c '^\.nfs')
    [ "$left" = 0 ] || fail "$left .nfs files left after close"
}
check "unlink of an open file" t_unlink_open

t_host_view() {
    need_mount
    echo "from guest" > "$MNT/hv"; chmod 640 "$MNT/hv"
    [ "$(cat "$EXPORT/hv")" = "from guest" ] && [ "$(stat -c %a "$EXPORT/hv")" = 640 ] || fail "host does not see the guest's write"
    cat "$MNT/hv" > /dev/null
    echo "changed on host" > "$EXPORT/hv"
    touch "$EXPORT/hostnew"
    sleep 3   # attribute timeout (mounted with actimeo=2)
    [ "$(cat "$MNT/hv")" = "changed on host" ] || fail "guest sees '$(cat "$MNT/hv")'"
    [ -e "$MNT/hostnew" ] || fail "guest does not see a file created on the host"
}
check "host-side view both ways (after attribute timeout)" t_host_view

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

t_refused() {
    vsnfs serve --exports /etc/vsnfs-exports --listen vsock:2050 --state-dir /var/lib/vsnfs-2 \
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
    vsnfs serve $small --listen vsock:2051 --state-dir /var/lib/vsnfs-3 >> /tmp/vsnfs-serve-3.log 2>&1 &
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

t_umount() {
    need_mount
    relay=$(cut -d' ' -f1 /run/vsnfs/relay-1-$PORT.port)
    umount "$MNT" || fail "umount failed"
    grep -q " $MNT " /proc/mounts && fail "still mounted"
    i=0
    while kill -0 "$relay" 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
    kill -0 "$relay" 2>/dev/null && fail "relay $relay still running ${i}s after the last umount"
    echo "relay exited ${i}s after umount"
}
check "umount; the relay exits when no mount uses it" t_umount

kill "$(server_pid)" 2>/dev/null
echo "---- relay log ----"; cat /run/vsnfs/relay-1-$PORT.log 2>/dev/null | tail -n 20
if [ "$failed" != 0 ]; then echo "---- server log (tail) ----"; tail -n 40 "$SERVER_LOG"; fi
echo "SUMMARY $passed passed, $failed failed"
[ "$failed" = 0 ]
