# The e2e checks shared by both runs (sourced; POSIX sh, busybox and coreutils):
#  - in-guest (tests/e2e/workload.sh, `make e2e`): the server runs inside the
#    test guest on the loopback CID; the "host" is this same machine, and host
#    steps run directly on $EXPORT;
#  - host path (tests/e2e/host-workload.sh, `make e2e-host`): the server runs on
#    the host behind a vhost-user-vsock device (CID 2); host steps are carried
#    out by the host script (tests/e2e/host-run.sh), which sources this file
#    for the host_* functions and runs each step the guest asks for (see
#    on_host).
#
# Settings the caller gives: VERS, CID (the server's CID), PORT, MOUNT_PATH
# (the export's mount path), MNT, SRC; EXPORT (the export directory, in-guest
# only); HOST_CALLS=1 (host path). Checks print "PASS name" or "FAIL name: why".
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
# One digest of a tree: names, types, modes, file contents, symlink targets.
# Same output from busybox and coreutils.
tree_sum() {
    (cd "$1" && {
        find . -type f | LC_ALL=C sort | xargs -r sha256sum
        find . -type l | LC_ALL=C sort | while read -r l; do echo "$l -> $(readlink "$l")"; done
        find . ! -type l | LC_ALL=C sort | xargs stat -c '%n %a'
    } | sha256sum | cut -d' ' -f1)
}

# ---- host steps: host_NAME ROOT ARGS..., ROOT being the export directory on the host ----
host_sha256() {   # ROOT PATH SUM [PATH SUM]...
    r=$1; shift
    while [ $# -ge 2 ]; do
        [ -f "$r/$1" ] || fail "host: no file $1"
        [ "$(sum "$r/$1")" = "$2" ] || fail "host: $1 differs"
        shift 2
    done
}
host_size() { [ "$(stat -c %s "$1/$2")" = "$3" ] || fail "host: size of $2 is $(stat -c %s "$1/$2"), not $3"; }
host_sparse() {   # ROOT PATH MAX_KIB
    used=$(du -k "$1/$2" | cut -f1)
    [ "$used" -lt "$3" ] || fail "host file $2 is not sparse: ${used} KiB used"
}
host_chmod() { chmod "$3" "$1/$2" || fail "host chmod $3 $2 failed"; }
host_mv() { mv "$1/$2" "$1/$3" || fail "host mv $2 $3 failed"; }
host_mode() { [ "$(stat -c %a "$1/$2")" = "$3" ] || fail "host sees mode $(stat -c %a "$1/$2") on $2, not $3"; }
host_uid() { [ "$(stat -c %u "$1/$2")" = "$3" ] || fail "host: owner of $2 is uid $(stat -c %u "$1/$2"), not $3"; }
host_gid() { [ "$(stat -c %g "$1/$2")" = "$3" ] || fail "host: group of $2 is gid $(stat -c %g "$1/$2"), not $3"; }
host_create_owned() { touch "$1/$2" && chown "$3" "$1/$2" || fail "host: cannot make $2 owned by $3"; }   # ROOT PATH UID:GID
host_same_inode() { [ "$(stat -c %i "$1/$2")" = "$(stat -c %i "$1/$3")" ] || fail "host: $2 and $3 are different inodes"; }
host_readlink() { [ "$(readlink "$1/$2")" = "$3" ] || fail "host readlink $2: '$(readlink "$1/$2")'"; }
host_content() { [ "$(cat "$1/$2")" = "$3" ] || fail "host: $2 holds '$(cat "$1/$2" | head -c 80)', not '$3'"; }
host_absent() { [ ! -e "$1/$2" ] && [ ! -L "$1/$2" ] || fail "host: $2 still exists"; }
host_count() { n=$(ls -A "$1/$2" | wc -l); [ "$n" = "$3" ] || fail "host sees $n entries in $2, not $3"; }
host_tree_sum() { [ "$(tree_sum "$1/$2")" = "$3" ] || fail "host: tree $2 differs (digest of names, modes, contents, links)"; }
host_touch_entries() { (cd "$1/$2" && seq "$3" "$4" | sed 's/^/entry-/' | xargs touch) || fail "host create failed"; }
host_symlink() { ln -s "$2" "$1/$3" || fail "host ln -s failed"; }
host_write() { printf '%s\n' "$3" > "$1/$2" || fail "host write failed"; }
host_create() { touch "$1/$2" || fail "host touch failed"; }

# on_host host_NAME ARGS...: a step on the host side of the export. In-guest,
# it runs on $EXPORT. On the host path the guest writes the request into
# $MNT/.host-calls/req-N (one argument a line); host-run.sh runs it on its
# export directory and answers with done-N (exit status, then output), which
# this waits for (up to 60 s).
on_host() {
    f=$1; shift
    if [ -z "${HOST_CALLS:-}" ]; then
        "$f" "$EXPORT" "$@"
        return
    fi
    # Checks run in subshells: the call counter lives in a file.
    n=$(( $(cat /tmp/host-call-n 2>/dev/null || echo 0) + 1 ))
    echo $n > /tmp/host-call-n
    d=$MNT/.host-calls
    mkdir -p "$d" || fail "cannot make $d"
    { echo "$f"; for a in "$@"; do printf '%s\n' "$a"; done; } > "$d/req-$n.tmp" || fail "cannot write a host request"
    mv "$d/req-$n.tmp" "$d/req-$n" || fail "cannot post a host request"
    i=0
    while :; do
        echo 2 > /proc/sys/vm/drop_caches   # forget dentries: look done-N up on the server
        [ -e "$d/done-$n" ] && break
        i=$((i + 1)); [ $i -lt 300 ] || fail "host did not answer $f within 60 s"
        sleep 0.2
    done
    rc=$(head -n 1 "$d/done-$n")
    tail -n +2 "$d/done-$n"
    rm -f "$d/done-$n"
    [ "$rc" = 0 ] || exit 1
}

# ---- checks before and at mount ----
t_bad_spec() {
    out=$(mount -t vsnfs nonsense "$MNT" 2>&1) && fail "mount of a bad SPEC succeeded"
    echo "$out" | grep -q "bad SPEC" || fail "message: $out"
    out=$(mount.vsnfs "$CID:relative" "$MNT" 2>&1) && fail "mount of a relative path succeeded"
    echo "$out" | grep -q "bad SPEC" || fail "message: $out"
    echo "$out"
}
t_nothing_listening() {
    out=$(mount -t vsnfs -o port=7777 "$CID:$MOUNT_PATH" "$MNT" 2>&1) && fail "mount to an unused port succeeded"
    echo "$out" | grep -q "nothing is listening at vsock CID $CID port 7777" || fail "message: $out"
}
t_mount() {
    ip link set lo down
    mount -t vsnfs -o "vers=$VERS,actimeo=2" "$CID:$MOUNT_PATH" "$MNT" || fail "mount failed"
    grep " $MNT nfs" /proc/mounts || fail "no NFS mount at $MNT in /proc/mounts"
    grep " $MNT nfs" /proc/mounts | grep -q "vers=$VERS" || fail "not NFSv$VERS: $(grep " $MNT " /proc/mounts)"
    ip link show lo | grep -q "UP" || fail "loopback still down"
    [ -s "/run/vsnfs/relay-$CID-$PORT.port" ] || fail "no relay port file"
}
mount_checks() {
    check "bad SPEC is refused with a clear message" t_bad_spec
    check "nothing listening at CID:port gives a clear message" t_nothing_listening
    check "mount -t vsnfs $CID:$MOUNT_PATH (NFSv$VERS, brings lo up)" t_mount
}

# ---- file system checks on the mount ----
FILE_SIZES=${FILE_SIZES:-0 1 4095 4096 4097 65536 1048583 16777216 67108864}
t_files() {
    need_mount
    for size in $FILE_SIZES; do
        dd if=/dev/urandom of="$SRC/f$size" bs=1048576 count=$((size / 1048576)) 2>/dev/null
        head -c $((size % 1048576)) /dev/urandom >> "$SRC/f$size"
        cp "$SRC/f$size" "$MNT/f$size" || fail "write of $size bytes failed"
    done
    drop_caches
    host_sums=""
    for size in $FILE_SIZES; do
        want=$(sum "$SRC/f$size")
        [ "$(sum "$MNT/f$size")" = "$want" ] || fail "read-back of $size bytes differs"
        [ "$(stat -c %s "$MNT/f$size")" = "$size" ] || fail "size of f$size"
        host_sums="$host_sums f$size $want"
        # For the host's own check once the guest is gone (host path).
        echo "GUEST-WROTE f$size $want" >> /tmp/guest-wrote
    done
    # shellcheck disable=SC2086
    on_host host_sha256 $host_sums
    rm -f "$SRC"/f16777216 "$SRC"/f67108864   # keep guest memory free
}
t_append() {
    need_mount
    printf 'one\n' > "$MNT/app"
    printf 'two\n' >> "$MNT/app"
    head -c 10000 /dev/urandom > "$SRC/app.tail"
    cat "$SRC/app.tail" >> "$MNT/app"
    { printf 'one\ntwo\n'; cat "$SRC/app.tail"; } > "$SRC/app"
    drop_caches
    cmp "$SRC/app" "$MNT/app" || fail "appended file differs"
    on_host host_sha256 app "$(sum "$SRC/app")"
}
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
    on_host host_size tr 70000
    [ "$(tail -c 20000 "$MNT/tr" | tr -d '\0' | wc -c)" = 0 ] || fail "grown part is not zeros"
    : > "$MNT/tr"
    [ "$(stat -c %s "$MNT/tr")" = 0 ] || fail "truncate to 0"
}
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
    on_host host_sparse sparse 10240
}
t_tree_copy() {
    need_mount
    # TREE_DIRS x (2 x TREE_PER_DIR + 2) files (default 2,000) and 80 directories, with
    # varied sizes and modes, owned by nobody so cp -a's ownership is allowed
    # under root_squash. Every create costs several RPCs of ~15 ms under
    # emulation (cp -a: ~0.1 s a file on a quiet machine, 0.2-0.35 s on a busy
    # one), which bounds the size for a CI run of a few minutes;
    # TREE_DIRS=40 TREE_PER_DIR=40 gives 3,280 files.
    mkdir -p "$SRC/tree"
    head -c 3000 /dev/urandom > /tmp/tree-seed
    d=0
    while [ $d -lt "${TREE_DIRS:-40}" ]; do
        mkdir -p "$SRC/tree/d$d/sub"
        head -c $((d * 37)) /dev/urandom > "$SRC/tree/d$d/seed"
        i=0
        while [ $i -lt "${TREE_PER_DIR:-24}" ]; do
            head -c $(( (i * 131 + d) % 3000 )) /tmp/tree-seed > "$SRC/tree/d$d/f$i"
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
    # Host view: names, types, modes, contents and link targets.
    on_host host_tree_sum tree "$(tree_sum "$SRC/tree")"
    # (Sizes of directories are the filesystem's business, and busybox cp -a
    # keeps no times of symlinks, even locally; diff -r compared contents.)
    (cd "$SRC/tree" && find . ! -type l | sort | xargs stat -c '%n %a %Y %F') > /tmp/tree.src
    (cd "$MNT/tree" && find . ! -type l | sort | xargs stat -c '%n %a %Y %F') > /tmp/tree.mnt
    [ "$(cd "$MNT/tree" && find . -type l | sort | xargs readlink)" = "$(cd "$SRC/tree" && find . -type l | sort | xargs readlink)" ] ||
        fail "symlink targets differ"
    cmp /tmp/tree.src /tmp/tree.mnt || { diff /tmp/tree.src /tmp/tree.mnt | head -5; fail "modes, sizes or mtimes differ"; }
    echo "$total entries"
}
t_big_dir() {
    need_mount
    # 100 entries created through NFS, 4,900 on the host side (creating all
    # 5,000 through NFS costs minutes under emulation), all listed through NFS.
    mkdir "$MNT/big"
    (cd "$MNT/big" && seq 1 100 | sed 's/^/entry-/' | xargs touch) || fail "create failed"
    on_host host_touch_entries big 101 5000
    sleep 2   # directory attribute timeout (actimeo=2): the client notices the host's change
    drop_caches
    ls -1A "$MNT/big" | sort > /tmp/big.got
    n=$(grep -c '^entry-' /tmp/big.got)
    [ "$n" = 5000 ] || fail "listed $n of 5000 entries"
    seq 1 5000 | sed 's/^/entry-/' | sort > /tmp/big.want
    cmp /tmp/big.want /tmp/big.got || fail "names differ"
    on_host host_count big 5000
}
t_deep() {
    need_mount
    p=$MNT/deep; h=deep; i=0
    while [ $i -lt 40 ]; do p=$p/level$i; h=$h/level$i; i=$((i + 1)); done
    mkdir -p "$p" || fail "mkdir -p failed"
    echo bottom > "$p/file"
    drop_caches
    [ "$(cat "$p/file")" = bottom ] || fail "client read"
    on_host host_content "$h/file" bottom
}
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
    on_host host_content r2/g moved
    on_host host_absent r1/f
}
t_hardlink() {
    need_mount
    echo linked > "$MNT/hl1"
    ln "$MNT/hl1" "$MNT/hl2" || fail "ln failed"
    [ "$(stat -c %h "$MNT/hl1")" = 2 ] || fail "link count $(stat -c %h "$MNT/hl1")"
    [ "$(stat -c %i "$MNT/hl1")" = "$(stat -c %i "$MNT/hl2")" ] || fail "different inodes"
    on_host host_same_inode hl1 hl2
    rm "$MNT/hl1"
    drop_caches
    [ "$(cat "$MNT/hl2")" = linked ] || fail "content via second link"
    [ "$(stat -c %h "$MNT/hl2")" = 1 ] || fail "link count after unlink"
}
t_symlink() {
    need_mount
    echo target > "$MNT/st"
    ln -s st "$MNT/sl" || fail "ln -s failed"
    [ "$(readlink "$MNT/sl")" = st ] || fail "readlink"
    [ "$(cat "$MNT/sl")" = target ] || fail "read through link"
    on_host host_readlink sl st
    # A link whose target leaves the export (a sibling directory outside-data
    # holds a file "secret"): the server returns the link, never the target.
    on_host host_symlink ../outside-data escape
    drop_caches
    [ "$(readlink "$MNT/escape")" = ../outside-data ] || fail "readlink of escape link"
    [ "$(stat -c %F "$MNT/escape")" = "symbolic link" ] || fail "escape is not a symlink on the client"
    if cat "$MNT/escape/secret" 2>/dev/null; then fail "read outside the export through a symlink"; fi
    ls "$MNT" | grep -q secret && fail "outside file listed in the export"
    return 0
}
t_chmod() {
    need_mount
    echo m > "$MNT/mode"
    chmod 0754 "$MNT/mode" || fail "chmod failed"
    drop_caches
    [ "$(stat -c %a "$MNT/mode")" = 754 ] || fail "client sees $(stat -c %a "$MNT/mode")"
    on_host host_mode mode 754
    chmod 600 "$MNT/mode"
    on_host host_mode mode 600
}
t_chown_squashed() {
    need_mount
    echo o > "$MNT/own"
    on_host host_uid own 65534   # root squashed
    if chown 1234 "$MNT/own" 2>/dev/null; then fail "chown succeeded under root_squash"; fi
    on_host host_uid own 65534
    return 0
}
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
t_host_view() {
    need_mount
    echo "from guest" > "$MNT/hv"; chmod 640 "$MNT/hv"
    on_host host_content hv "from guest"
    on_host host_mode hv 640
    cat "$MNT/hv" > /dev/null
    on_host host_write hv "changed on host"
    on_host host_create hostnew
    sleep 3   # attribute timeout (mounted with actimeo=2)
    [ "$(cat "$MNT/hv")" = "changed on host" ] || fail "guest sees '$(cat "$MNT/hv")'"
    [ -e "$MNT/hostnew" ] || fail "guest does not see a file created on the host"
}
# NFSv4.1+: the guest holds a file open for reading (the server gives it a read
# delegation), a host process outside the mount writes the file: the host's
# open waits on the server's lease while the delegation is recalled, and the
# guest sees the new contents at once (not after the attribute timeout).
deleg_returns() { awk '$1 == "DELEGRETURN:" { n += $2 } END { print n + 0 }' /proc/self/mountstats; }
t_deleg_recall() {
    need_mount
    # Made on the host: a write through the server would leave it a write
    # descriptor for a few seconds (idle close), and no lease, so no delegation.
    on_host host_write dg "before"
    before=$(deleg_returns)
    exec 3< "$MNT/dg"
    [ "$(cat "$MNT/dg")" = "before" ] || fail "guest reads '$(cat "$MNT/dg")'"
    on_host host_write dg "after host write"
    i=0
    while [ "$(cat "$MNT/dg")" != "after host write" ]; do
        i=$((i + 1)); [ $i -lt 10 ] || fail "guest still sees '$(cat "$MNT/dg")' 1 s after the host write"
        sleep 0.1
    done
    exec 3<&-
    after=$(deleg_returns)
    [ "$after" -gt "$before" ] || fail "no DELEGRETURN ($before before, $after after): no delegation was recalled"
    echo "seen after $((i * 100)) ms; DELEGRETURN $before -> $after"
}
# NFSv4.1+: as t_deleg_recall, but the host chmods the file and renames it
# within the directory: neither breaks the kernel lease (no open for
# writing); the server's inotify watch of the delegated file recalls the
# delegation. The guest sees the new mode of the file it has open within 3 s
# (once returned, its cached attributes last the attribute timeout, actimeo=2,
# from their last refresh; without the recall, never while it holds the
# delegation) and finds it under its new name. The old name is
# a directory entry (directories are not delegated): the guest drops it when
# its attributes of the directory time out, within 3 s (while the delegation
# stood it trusted the entry without asking).
t_deleg_recall_meta() {
    need_mount
    on_host host_write dm "meta"
    on_host host_chmod dm 644
    before=$(deleg_returns)
    exec 3< "$MNT/dm"
    [ "$(cat "$MNT/dm")" = "meta" ] || fail "guest reads '$(cat "$MNT/dm")'"
    [ "$(stat -L -c %a /proc/self/fd/3)" = 644 ] || fail "guest sees mode $(stat -L -c %a /proc/self/fd/3), not 644"
    on_host host_chmod dm 600
    on_host host_mv dm dm-moved
    i=0
    while [ "$(stat -L -c %a /proc/self/fd/3)" != 600 ]; do
        i=$((i + 1))
        [ $i -lt 30 ] || fail "3 s after the host's chmod the guest sees mode $(stat -L -c %a /proc/self/fd/3) on the open file, not 600 (DELEGRETURN $before -> $(deleg_returns))"
        sleep 0.1
    done
    [ "$(stat -c %a "$MNT/dm-moved")" = 600 ] || fail "guest does not see dm-moved (mode 600) after the host's mv"
    j=0
    while [ -e "$MNT/dm" ]; do
        j=$((j + 1)); [ $j -lt 30 ] || fail "3 s after the host's mv the guest still sees the old name dm"
        sleep 0.1
    done
    exec 3<&-
    after=$(deleg_returns)
    [ "$after" -gt "$before" ] || fail "no DELEGRETURN ($before before, $after after): no delegation was recalled"
    echo "mode seen after $((i * 100)) ms, old name gone $((j * 100)) ms later; DELEGRETURN $before -> $after"
}
fs_checks() {
    check "files of $(echo $FILE_SIZES | tr ' ' ,) bytes written and read back (sha256, host copy too)" t_files
    check "append" t_append
    check "truncate (shrink, grow, to zero)" t_truncate
    check "sparse writes (holes read as zeros, host file stays sparse)" t_sparse
    check "cp -a of a tree of ${TREE_DIRS:-40}x$((2 * ${TREE_PER_DIR:-24} + 2)) files, byte-for-byte and modes/mtimes" t_tree_copy
    check "5,000-entry directory listed completely" t_big_dir
    check "mkdir -p of a 40-level tree" t_deep
    check "rename across directories (file, directory, over a file)" t_rename
    check "hard links" t_hardlink
    check "symlinks (and one pointing outside the export is not followed)" t_symlink
    check "chmod (client and host views)" t_chmod
    check "chown refused under root_squash" t_chown_squashed
    check "unlink of an open file" t_unlink_open
    check "host-side view both ways (after attribute timeout)" t_host_view
    case ${VERS:-3} in
        4*) check "read delegation recalled when a host process writes the file; the guest sees it within 1 s" t_deleg_recall
            check "read delegation recalled when a host process chmods and renames the file; the guest sees the new mode within 3 s" t_deleg_recall_meta ;;
    esac
}

# ---- byte-range locks (NFSv4.1/4.2 only: NFSv3 mounts nolock) ----
# `locker` (tests/e2e/locker.c): posix|flock try|wait|hold FILE [READY].
# The Linux NFSv4 client sends flock(2) as a whole-file LOCK, so on the mount
# flock and fcntl locks meet each other (they do not on a local file system),
# and a guest's flock meets the host's fcntl lock. The host's own locks are
# fcntl locks on the exported file, which the server's OFD locks meet.
wait_for_file() {   # FILE SECONDS
    i=0
    while [ ! -e "$1" ]; do i=$((i + 1)); [ $i -lt $(($2 * 5)) ] || return 1; sleep 0.2; done
}
# The waiter's end: F_SETLKW and blocking flock are retried by the client
# (NFSv4 has no blocking LOCK; it polls, backing off up to 30 s).
wait_exit() {   # PID SECONDS: waits for PID to exit; fails if it does not
    i=0
    while kill -0 "$1" 2>/dev/null; do i=$((i + 1)); [ $i -lt $(($2 * 5)) ] || return 1; sleep 0.2; done
}
host_lock_hold() {   # ROOT PATH: a host process holds a whole-file fcntl write lock
    rm -f /tmp/host-lock.ready
    locker posix hold "$1/$2" /tmp/host-lock.ready > /tmp/host-lock.log 2>&1 &
    echo $! > /tmp/host-lock.pid
    wait_for_file /tmp/host-lock.ready 10 || fail "host: no lock on $2 within 10 s: $(cat /tmp/host-lock.log)"
}
# The host steps run under host-run.sh's `set -e`: failing commands are tested, never left bare.
host_lock_release() { kill "$(cat /tmp/host-lock.pid)" 2>/dev/null || true; rm -f /tmp/host-lock.pid; }
host_lock_refused() {   # ROOT PATH: the host's F_SETLK fails
    if locker posix try "$1/$2"; then rc=0; else rc=$?; fi
    [ $rc = 1 ] || fail "host: F_SETLK on $2 exited $rc, not 1 (refused)"
}
host_lock_free() {   # ROOT PATH: the host's F_SETLK succeeds (within 10 s: the guest's unlock is on its way)
    i=0
    until locker posix try "$1/$2" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 50 ] || fail "host: F_SETLK on $2 still refused after 10 s"; sleep 0.2
    done
}
guest_hold() {   # KIND FILE: a guest process holds the lock; prints its pid
    rm -f /tmp/guest-lock.ready
    locker "$1" hold "$2" /tmp/guest-lock.ready > /tmp/guest-lock.log 2>&1 &
    pid=$!
    wait_for_file /tmp/guest-lock.ready 30 || { kill $pid; fail "guest: no $1 lock on $2 within 30 s: $(cat /tmp/guest-lock.log)"; }
    echo $pid
}
contend() {   # HOLDER_KIND OTHER_KIND: the other process's try is refused, its wait waits for the release
    f=$MNT/locks/$1-$2
    echo "locked data" > "$f" || fail "cannot write $f"
    holder=$(guest_hold "$1" "$f") || fail "$holder"
    locker "$2" try "$f"; rc=$?
    [ $rc = 1 ] || { kill $holder; fail "$2 try while $1 is held exited $rc, not 1 (refused)"; }
    locker "$2" wait "$f" & waiter=$!
    sleep 3
    kill -0 $waiter 2>/dev/null || { kill $holder; fail "$2 wait did not wait for the $1 holder"; }
    kill $holder
    wait_exit $waiter 60 || { kill $waiter; fail "$2 wait still waiting 60 s after the $1 holder ended"; }
    wait $waiter || fail "$2 wait exited $?"
    locker "$2" try "$f" || fail "$2 try after both ended exited $?"
}
t_lock_fcntl() { need_mount; mkdir -p "$MNT/locks"; contend posix posix; }
t_lock_flock() { need_mount; mkdir -p "$MNT/locks"; contend flock flock; }
t_lock_flock_fcntl() { need_mount; mkdir -p "$MNT/locks"; contend flock posix; }
t_lock_host_blocks_guest() {
    need_mount
    mkdir -p "$MNT/locks"; echo "host locks me" > "$MNT/locks/by-host"; sync
    on_host host_lock_hold locks/by-host
    locker posix try "$MNT/locks/by-host"; rc=$?
    [ $rc = 1 ] || { (on_host host_lock_release); fail "guest F_SETLK while the host holds the lock exited $rc, not 1"; }
    locker flock try "$MNT/locks/by-host"; rc=$?
    [ $rc = 1 ] || { (on_host host_lock_release); fail "guest flock LOCK_NB while the host holds the lock exited $rc, not 1"; }
    locker posix wait "$MNT/locks/by-host" & waiter=$!
    sleep 3
    kill -0 $waiter 2>/dev/null || { (on_host host_lock_release); fail "guest F_SETLKW did not wait for the host's lock"; }
    on_host host_lock_release
    wait_exit $waiter 60 || { kill $waiter; fail "guest F_SETLKW still waiting 60 s after the host released"; }
    wait $waiter || fail "guest F_SETLKW exited $?"
}
t_lock_guest_blocks_host() {
    need_mount
    mkdir -p "$MNT/locks"; echo "guest locks me" > "$MNT/locks/by-guest"; sync
    holder=$(guest_hold posix "$MNT/locks/by-guest") || fail "$holder"
    (on_host host_lock_refused locks/by-guest) || { kill $holder; fail "the host's F_SETLK was not refused"; }
    kill $holder; wait_exit $holder 10
    on_host host_lock_free locks/by-guest
}
lock_checks() {
    case $VERS in 4*) ;; *) return 0 ;; esac
    check "fcntl locks between two guest processes: F_SETLK refused while held, F_SETLKW waits for the release" t_lock_fcntl
    check "flock between two guest processes: LOCK_NB refused while held, LOCK_EX waits for the release" t_lock_flock
    check "flock and fcntl meet on NFSv4 (the client sends flock as a whole-file LOCK)" t_lock_flock_fcntl
    check "a host process's fcntl lock on the exported file blocks the guest's F_SETLK, F_SETLKW and flock" t_lock_host_blocks_guest
    check "a guest's lock makes the host's F_SETLK on the exported file fail, until released" t_lock_guest_blocks_host
}

# ---- the end ----
t_umount() {
    need_mount
    relay=$(cut -d' ' -f1 "/run/vsnfs/relay-$CID-$PORT.port")
    umount "$MNT" || fail "umount failed"
    grep -q " $MNT " /proc/mounts && fail "still mounted"
    i=0
    while kill -0 "$relay" 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
    kill -0 "$relay" 2>/dev/null && fail "relay $relay still running ${i}s after the last umount"
    echo "relay exited ${i}s after umount"
}
umount_check() { check "umount; the relay exits when no mount uses it" t_umount; }
