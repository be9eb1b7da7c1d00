#!/bin/sh
# make install, tested (make test-install; CI): installs into a temporary
# DESTDIR and checks that every file lands where it should, that the
# binaries run with the Swift runtime linked in, that mount.vsnfs is what
# mount(8) will run, and that the systemd units parse: `systemd-analyze
# verify` when it is installed, and their keys in any case. A second install
# with PREFIX under the temporary directory gives units whose ExecStart paths
# exist, for systemd-analyze.
# Prints "N passed, M failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vsnfs-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {   # check NAME FUNCTION
    name=$1; shift
    if out=$("$@" 2>&1); then
        echo "PASS $name"; passed=$((passed + 1))
    else
        echo "FAIL $name: $(echo "$out" | tail -n 4 | tr '\n' '|')"; failed=$((failed + 1))
    fi
}
fail() { echo "$*"; exit 1; }

d=$tmp/destdir
make -s -C "$top" install install-initramfs DESTDIR="$d" PREFIX=/usr/local > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; echo "FAIL make install DESTDIR=$d PREFIX=/usr/local"; echo "0 passed, 1 failed"; exit 1; }

t_files() {
    for f in usr/local/bin/vsnfs usr/local/bin/vsnfs-mount; do
        [ -f "$d/$f" ] && [ -x "$d/$f" ] || fail "no executable $f"
    done
    for f in usr/local/lib/systemd/system/vsnfs.service usr/local/lib/systemd/system/vsnfs-mount-auto.service \
             usr/local/share/doc/vsnfs/README.md usr/local/share/doc/vsnfs/docs/guest.md \
             etc/initramfs-tools/hooks/vsnfs etc/initramfs-tools/scripts/init-bottom/vsnfs; do
        [ -f "$d/$f" ] || fail "no $f"
    done
    [ -x "$d/etc/initramfs-tools/hooks/vsnfs" ] && [ -x "$d/etc/initramfs-tools/scripts/init-bottom/vsnfs" ] ||
        fail "the initramfs hook or script is not executable"
    # Nothing outside PREFIX but the mount helper and the initramfs files.
    extra=$(cd "$d" && find . -type f -o -type l | grep -v -e '^./usr/local/' -e '^./sbin/mount.vsnfs$' -e '^./etc/initramfs-tools/')
    [ -z "$extra" ] || fail "installed outside PREFIX: $extra"
}
check "make install puts the binaries, units, docs and initramfs files under DESTDIR" t_files

t_mount_helper() {
    [ -L "$d/sbin/mount.vsnfs" ] || fail "no symlink /sbin/mount.vsnfs (mount(8) runs helpers from /sbin)"
    [ "$(readlink "$d/sbin/mount.vsnfs")" = /usr/local/bin/vsnfs-mount ] ||
        fail "/sbin/mount.vsnfs points to $(readlink "$d/sbin/mount.vsnfs"), not /usr/local/bin/vsnfs-mount"
    # Run as mount(8) would, by that name: it must answer as mount.vsnfs.
    ln -s "$d/usr/local/bin/vsnfs-mount" "$tmp/mount.vsnfs"
    "$tmp/mount.vsnfs" --help | grep -q "mount.vsnfs" || fail "the helper does not answer as mount.vsnfs"
}
check "mount.vsnfs in /sbin is vsnfs-mount and answers by that name" t_mount_helper

t_binaries_run() {
    for b in vsnfs vsnfs-mount; do
        "$d/usr/local/bin/$b" --version > /dev/null || fail "$b --version failed"
        if ldd "$d/usr/local/bin/$b" | grep -q 'libswift'; then fail "$b needs the Swift runtime: $(ldd "$d/usr/local/bin/$b" | grep libswift | head -n 2)"; fi
    done
    "$d/usr/local/bin/vsnfs" serve --help | grep -q -- "--exports" || fail "vsnfs serve --help"
}
check "the installed binaries run, with the Swift runtime linked in" t_binaries_run

# ---- the units' keys (independent of systemd) ----
key() { grep -qx "$2" "$1" || fail "${1##*/}: no line '$2'"; }
t_unit_keys() {
    u=$d/usr/local/lib/systemd/system
    ! grep -n '@[A-Z]*@' "$u"/*.service "$d"/etc/initramfs-tools/hooks/vsnfs || fail "placeholders left"
    key "$u/vsnfs.service" 'ExecStart=/usr/local/bin/vsnfs serve --exports /etc/vsnfs/exports $VSNFS_ARGS'
    key "$u/vsnfs.service" 'ExecReload=/bin/kill -HUP $MAINPID'
    key "$u/vsnfs.service" 'WantedBy=multi-user.target'
    key "$u/vsnfs.service" 'StateDirectory=vsnfs'
    key "$u/vsnfs-mount-auto.service" 'ExecStart=/usr/local/bin/vsnfs-mount --auto'
    key "$u/vsnfs-mount-auto.service" 'Type=oneshot'
    key "$u/vsnfs-mount-auto.service" 'WantedBy=remote-fs.target'
    for f in "$u"/*.service; do
        # Every line a comment, a [Section] or Key=value; the sections systemd knows.
        bad=$(grep -v -e '^#' -e '^$' -e '^\[\(Unit\|Service\|Install\)\]$' -e '^[A-Za-z]*=' "$f")
        [ -z "$bad" ] || fail "${f##*/}: not a unit line: $bad"
        for s in Unit Service Install; do grep -qx "\[$s\]" "$f" || fail "${f##*/}: no [$s]"; done
    done
    key "$d/etc/initramfs-tools/hooks/vsnfs" 'copy_exec /usr/local/bin/vsnfs-mount /usr/bin/vsnfs-mount'
    sh -n "$d/etc/initramfs-tools/hooks/vsnfs" && sh -n "$d/etc/initramfs-tools/scripts/init-bottom/vsnfs" ||
        fail "the initramfs hook or script is not valid sh"
}
check "the units hold the keys they need (ExecStart, ExecReload=/bin/kill -HUP \$MAINPID, WantedBy)" t_unit_keys

# ---- systemd's own parser ----
p=$tmp/prefix
t_systemd_verify() {
    make -s -C "$top" install PREFIX="$p" MOUNTHELPERDIR="$p/sbin" SYSCONFDIR="$p/etc" > "$tmp/install2.log" 2>&1 ||
        fail "make install PREFIX=$p failed: $(tail -n 3 "$tmp/install2.log")"
    for unit in vsnfs.service vsnfs-mount-auto.service; do
        out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no --generators=no "$p/lib/systemd/system/$unit" 2>&1) ||
            fail "systemd-analyze verify $unit: $out"
        # verify exits 0 on some problems it only reports
        [ -z "$out" ] || fail "systemd-analyze verify $unit: $out"
    done
    echo "verified by $(systemd-analyze --version | head -n 1)"
}
if command -v systemd-analyze > /dev/null 2>&1; then
    check "systemd-analyze verify accepts both units" t_systemd_verify
else
    echo "install: systemd-analyze is not installed; the units were checked by their keys only" >&2
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
