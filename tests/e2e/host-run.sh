#!/bin/sh
# The host-path end-to-end test (make e2e-host): vsnfs serves a directory of
# THIS machine through two vhost-user-vsock devices (CID 3, granted rw by the
# exports file; CID 5, refused), and the test guest (vm-images/, booted under
# qemu TCG with shared memory and vhost-user-vsock-pci) mounts it with
# `mount -t vsnfs` and runs tests/e2e/host-workload.sh: the checks shared
# with `make e2e` (tests/e2e/checks.sh), their host-side steps run here. A
# second guest, CID 5, boots at the same time and must be refused. In the
# CID 3 guest a second vsnfs exports its mount of DIR/nested on the guest's
# loopback CID, and a mount through it reads and changes the host's files
# (nested VMs: CI runners inside VMs). After the guests exit, this checks
# the files the guest wrote against the checksums it reported, and prints
# "N passed, M failed" over the guests' and its checks.
#   tests/e2e/host-run.sh [VERS]     VERS: 3 (default), 4.1 or 4.2
# Expects `make images` (the guest, and the release vsnfs in .build-guest,
# which runs here too). Consoles, server log: .e2e/host/ (.e2e/host-6.12/).
# Environment: GUEST_KERNEL (6.1 or 6.12, vm-images/scripts/guest-kernel.sh),
# VSNFS (server binary), E2E_TIMEOUT (s, per guest; 900),
# TREE_DIRS, TREE_PER_DIR, FILE_SIZES (see checks.sh).
set -eu
vers=${1:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/vm-images/scripts/guest-kernel.sh"
images=$top/vm-images/$guest_out
vsnfs=${VSNFS:-$top/.build-guest/release/vsnfs}
work=$top/.e2e/host$guest_tag
share=$work/share
timeout_s=${E2E_TIMEOUT:-900}
# The host path's own sizes: a smaller tree than in-guest (about 500 files).
TREE_DIRS=${TREE_DIRS:-10} TREE_PER_DIR=${TREE_PER_DIR:-24}
for f in "$vsnfs" "$images/vmlinuz" "$images/initramfs.cpio.gz"; do
    [ -e "$f" ] || { echo "e2e-host: $f is missing; run make images" >&2; exit 1; }
done
# root_squash gives files to uid 65534 only when the server runs as root.
[ "$(id -u)" = 0 ] || echo "e2e-host: not root: the root_squash ownership checks will fail" >&2
. "$top/tests/e2e/checks.sh"
# locker (lock contention, tests/e2e/locker.c): static for the guest, and on the host's PATH for its steps.
mkdir -p "$top/.e2e"
cc -O2 -static -o "$top/.e2e/locker" "$top/tests/e2e/locker.c"
PATH=$top/.e2e:$PATH

rm -rf "$work"
mkdir -p "$share" "$work/outside-data" "$work/state"
chmod 0777 "$share"
echo "outside the export" > "$work/outside-data/secret"   # the escape symlink's target
# Files the host writes before boot; the guest checks their sha256.
host_files=""
for size in 0 1 4097 1048583 3000000; do
    head -c "$size" /dev/urandom > "$share/fromhost-$size"
    host_files="$host_files fromhost-$size $(sum "$share/fromhost-$size")"
done
# The nested server in the guest (host-workload.sh) exports its mount of
# $share/nested; a file the host wrote there must read back through it.
mkdir -m 0777 "$share/nested"
head -c 2000003 /dev/urandom > "$share/nested/fromhost"
nested_host_file="fromhost $(sum "$share/nested/fromhost")"
# CID 5 is not granted: refused. CID 3's uid/gid 1000 are host 4501/4502 (host-workload.sh's t_mapped_user).
printf '%s vsock:3(rw,map_uid=1000:4501:1,map_gid=1000:4502:1)
' "$share" > "$work/exports"

"$vsnfs" serve --exports "$work/exports" --listen "vhost-user:$work/vm3.sock:cid=3" \
    --listen "vhost-user:$work/vm5.sock:cid=5" --state-dir "$work/state" \
    --control "$work/control" > "$work/vsnfs.log" 2>&1 &
server=$!
calls=""
cleanup() { kill $server $calls 2>/dev/null || true; }
trap cleanup EXIT
i=0
while [ ! -S "$work/vm3.sock" ] || [ ! -S "$work/vm5.sock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "e2e-host: vsnfs did not create its sockets" >&2; cat "$work/vsnfs.log" >&2; exit 1; }
    sleep 0.1
done

# Host steps the guest asks for: $share/.host-calls/req-N holds a host_*
# function of checks.sh and its arguments, one a line; the answer done-N
# holds its exit status, then its output. (Test harness only: it trusts the
# test guest with paths under $share.)
serve_calls() {
    d=$share/.host-calls
    while :; do
        for req in "$d"/req-*; do
            case $req in *.tmp|*'req-*') continue ;; esac
            n=${req##*/req-}
            set --
            while IFS= read -r line; do set -- "$@" "$line"; done < "$req"
            f=${1:-}; [ $# -gt 0 ] && shift
            case $f in
                host_*) if out=$("$f" "$share" "$@" 2>&1); then rc=0; else rc=$?; fi ;;
                *) out="not a host step: $f"; rc=2 ;;
            esac
            echo "host step $n: $f $* -> $rc" >> "$work/host-calls.log"
            printf '%s\n%s\n' "$rc" "$out" > "$d/done-$n.tmp"
            mv "$d/done-$n.tmp" "$d/done-$n"
            rm -f "$req"
        done
        sleep 0.1
    done
}
# Host steps of the control socket checks (host-workload.sh's t_control): the
# running server scripted with vsnfs status and vsnfs export add/remove.
host_control_status() {   # ROOT: status lists the guest (vsock:3), its calls, its export, its auth row
    out=$("$vsnfs" status --control "$work/control") || fail "vsnfs status exited $?"
    echo "$out" > "$work/status.txt"
    echo "$out" | grep -Eq "^  vsock:3:[0-9]+ on vhost-user:" || fail "no client vsock:3 in: $out"
    echo "$out" | grep -Fq "    exports   $1 (rw, as vsock:3)" || fail "vsock:3's export is not listed rw: $out"
    if [ "$vers" = 3 ]; then
        echo "$out" | grep -Fq "    NFS       v3; sessions: none (NFSv3)" || fail "no NFSv3 use shown: $out"
        echo "$out" | grep -E "^    calls     [0-9]+: " | grep -F "NFS v3 READ " | grep -Fq "NFS v3 WRITE " ||
            fail "no READ and WRITE counts: $out"
    else
        # NFSv4.x: the guest kernel's client record and its session, and the
        # operations inside its COMPOUNDs.
        echo "$out" | grep -Eq "^    NFS       v4; sessions: [1-9][0-9]* of [1-9][0-9]* NFSv4 client" ||
            fail "no NFSv4 session shown: $out"
        echo "$out" | grep -Eq "^    NFSv4     client [0-9a-f]{16}, sessions [0-9a-f]{32}" || fail "no NFSv4 client record: $out"
        echo "$out" | grep -E "^    ops       " | grep -E "(^| )READ [0-9]+" | grep -Eq "(^| )WRITE [0-9]+" ||
            fail "no READ and WRITE counts inside COMPOUNDs: $out"
    fi
    echo "$out" | grep -Eq "^  nfsd +vsock:3 +vsock:3 +$1\$" || fail "no auth row for vsock:3: $out"
    echo "$out" | grep -E "^    calls"
}
host_control_add() {   # ROOT: exports $work/added to vsock:3 at runtime; prints its path
    mkdir -p "$work/added" && echo "added at runtime" > "$work/added/hello" || fail "cannot make $work/added"
    "$vsnfs" export add "$work/added" --to vsock:3 --options rw --control "$work/control" > /dev/null ||
        fail "vsnfs export add exited $?"
    echo "$work/added"
}
host_control_remove() {   # ROOT: removes it again while the guest has it mounted
    "$vsnfs" export remove "$work/added" --control "$work/control" > /dev/null || fail "vsnfs export remove exited $?"
}

serve_calls &
calls=$!

workload() { # NAME MODE GUEST_CID: the workload archive for one guest
    stage=$work/stage-$1
    mkdir -p "$stage/workload"
    cp "$top/tests/e2e/host-workload.sh" "$stage/workload/run"
    cp "$top/tests/e2e/checks.sh" "$stage/workload/checks.sh"
    cp "$top/.e2e/locker" "$stage/workload/"
    {
        echo "MODE=$2 GUEST_CID=$3 VERS=$vers"
        echo "MOUNT_PATH='$share'"
        echo "HOST_FILES='$host_files'"
        echo "NESTED_HOST_FILE='$nested_host_file'"
        echo "TREE_DIRS=$TREE_DIRS TREE_PER_DIR=$TREE_PER_DIR"
        echo "FILE_SIZES='$FILE_SIZES'"   # checks.sh's default unless set
    } > "$stage/workload/env"
    (cd "$stage" && find workload | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$work/workload-$1.cpio.gz"
}
guest() { # NAME SOCKET MEM_MIB SMP: boots the test guest on the vhost-user socket
    QEMU_MEM=$3 QEMU_SMP=$4 QEMU_EXTRA="-object memory-backend-memfd,id=mem,size=$3M,share=on -machine memory-backend=mem
        -chardev socket,id=vu,path=$2 -device vhost-user-vsock-pci,chardev=vu" \
        sh "$top/vm-images/scripts/boot.sh" "$work/console-$1.log" "$timeout_s" "$images/vmlinuz" \
        "$images/initramfs.cpio.gz" "$work/workload-$1.cpio.gz" || echo "e2e-host: qemu for $1 exited $?" >&2
    tr -d '\r' < "$work/console-$1.log" > "$work/console-$1.txt"
}
workload cid3 main 3
workload cid5 refused 5
start=$(date +%s)
# Both guests at once: one vsnfs, two VMs, two devices.
guest cid5 "$work/vm5.sock" 512 1 &
refused_guest=$!
guest cid3 "$work/vm3.sock" 1024 2
wait $refused_guest || true
guest_secs=$(( $(date +%s) - start ))
kill $calls 2>/dev/null || true

# ---- the guests' results, then the host's own checks ----
set +e   # check() looks at each check's exit status itself
passed=0 failed=0
for g in cid3 cid5; do
    c=$work/console-$g.txt
    passed=$((passed + $(grep -c '^PASS ' "$c" || true)))
    failed=$((failed + $(grep -c '^FAIL ' "$c" || true)))
    grep '^FAIL ' "$c" | sed "s/^/$g: /" >&2 || true
    if ! grep -q '^VSNFS-WORKLOAD-EXIT ' "$c" || ! grep -q '^SUMMARY ' "$c"; then
        echo "FAIL guest $g did not finish its workload; see ${c#$top/}"
        failed=$((failed + 1))
    fi
done

t_guest_wrote() {
    n=0
    while read -r tag name want; do
        [ "$tag" = GUEST-WROTE ] || continue
        [ -f "$share/$name" ] || fail "no $name on the host"
        [ "$(sum "$share/$name")" = "$want" ] || fail "$name on the host differs from what the guest wrote"
        n=$((n + 1))
    done < "$work/console-cid3.txt"
    want_n=$(echo $FILE_SIZES | wc -w)
    [ "$n" = "$want_n" ] || fail "the guest reported $n written files, not $want_n"
    echo "$n files"
}
check "host: the files the guest wrote match the sha256 it reported" t_guest_wrote
t_guest_saw() {
    # shellcheck disable=SC2086
    set -- $host_files
    while [ $# -ge 2 ]; do
        grep -qx "GUEST-SAW-HOST $1 $2" "$work/console-cid3.txt" || fail "the guest did not report $1 with the host's sha256"
        [ "$(sum "$share/$1")" = "$2" ] || fail "$1 changed on the host"
        shift 2
    done
}
check "host: the guest read the host's files with the host's sha256" t_guest_saw
t_nested() {
    c=$work/console-cid3.txt
    grep -qx "NESTED-SAW-HOST $nested_host_file" "$c" || fail "the guest did not read nested/fromhost through the nested mount with the host's sha256"
    line=$(grep '^NESTED-WROTE ' "$c" | head -n 1)
    [ -n "$line" ] || fail "the guest reported no file written through the nested mount"
    set -- $line
    [ -f "$share/$2" ] || fail "no $2 on the host"
    [ "$(sum "$share/$2")" = "$3" ] || fail "$2 on the host differs from what the guest wrote through the nested mount"
    [ "$(cat "$share/nested/d/e" 2>/dev/null)" = two ] || fail "nested/d/e (written after the nested server's restart) is not on the host"
}
check "host: files through the nested server (vsnfs in the guest re-exporting its mount) match on the host" t_nested
t_refusal_logged() {
    grep -E "refused: vsock:5:[0-9]+ has no access" "$work/vsnfs.log" | head -n 2 | grep . ||
        fail "no refusal of vsock:5 in the server log"
}
check "host: vsnfs logged the refusal of CID 5" t_refusal_logged
t_server_alive() {
    kill -0 $server 2>/dev/null || fail "vsnfs exited: $(tail -n 5 "$work/vsnfs.log")"
    left=$(ls "$share/.host-calls" 2>/dev/null | grep -c '^req-' || true)
    [ "$left" = 0 ] || fail "$left host steps left unanswered"
}
check "host: vsnfs still serving after both guests, no host step left" t_server_alive

kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
trap - EXIT
grep '^REFUSED-MESSAGE ' "$work/console-cid5.txt" | sed 's/^REFUSED-MESSAGE /e2e-host: CID 5 was told: /' >&2
if [ "$failed" != 0 ]; then echo "---- server log (tail) ----" >&2; tail -n 30 "$work/vsnfs.log" >&2; fi
echo "e2e-host (NFSv$vers, kernel $guest_kernel, guests ${guest_secs}s, consoles: ${work#$top/}/console-cid3.log, console-cid5.log):" >&2
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
