#!/bin/sh
# The guest side of make e2e-share (tests/e2e/share-run.sh), run as
# /workload/run in the test guest that `vsnfs share` booted. It mounts
# nothing itself: `vsnfs-mount --auto` must find the requests, from fw_cfg
# only (SOURCE=fw_cfg: /proc/cmdline is hidden) or from the kernel command
# line only (SOURCE=cmdline: the qemu_fw_cfg module is unloaded). Then it
# reads the host's file, writes one back, unmounts, and ends QEMU through
# isa-debug-exit: status 33 if every check passed, 65 if not (QEMU exits
# with (value << 1) | 1), which vsnfs share must return to the host.
# /workload/env: SOURCE, SHARE_MNT and SECOND_MNT (where the guest must find
# the two shares), HOST_SUM (sha256 of from-host.txt), RUN (1 or 2).
. /workload/env
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
passed=0 failed=0
check() {
    name=$1; shift
    if out=$("$@" 2>&1); then echo "PASS $name"; passed=$((passed + 1))
    else echo "FAIL $name: $out"; failed=$((failed + 1)); fi
}
fail() { echo "$*"; exit 1; }
fwcfg=/sys/firmware/qemu_fw_cfg/by_name/opt/vsnfs/mount/raw

case $SOURCE in
fw_cfg)
    : > /tmp/empty-cmdline
    mount -o bind /tmp/empty-cmdline /proc/cmdline
    t_only() {
        [ -f "$fwcfg" ] || fail "no $fwcfg (is qemu_fw_cfg loaded?)"
        echo "fw_cfg: $(cat "$fwcfg")"
        ! grep -q vsnfs.mount /proc/cmdline || fail "/proc/cmdline still shows vsnfs.mount"
    }
    check "the requests are in fw_cfg, and the kernel command line is hidden" t_only ;;
cmdline)
    rmmod qemu_fw_cfg
    t_only() {
        [ ! -e /sys/firmware/qemu_fw_cfg ] || fail "qemu_fw_cfg is still loaded"
        grep -q vsnfs.mount= /proc/cmdline || fail "no vsnfs.mount= on the kernel command line: $(cat /proc/cmdline)"
        tr ' ' '\n' < /proc/cmdline | grep vsnfs.mount=
    }
    check "the requests are on the kernel command line, and fw_cfg is gone" t_only ;;
esac

t_auto() {
    vsnfs-mount --auto -v > /tmp/auto.log 2>&1 || fail "vsnfs-mount --auto failed: $(cat /tmp/auto.log)"
    case $SOURCE in fw_cfg) from="from fw_cfg opt/vsnfs/mount" ;; cmdline) from="from the kernel command line" ;; esac
    [ "$(grep -c "$from" /tmp/auto.log)" = 2 ] || fail "--auto did not take both requests $from: $(cat /tmp/auto.log)"
}
check "vsnfs-mount --auto mounts both shares, from $SOURCE" t_auto
sed 's/^/auto: /' /tmp/auto.log
t_mounted() {
    for m in "$SHARE_MNT" "$SECOND_MNT"; do
        awk -v m="$m" '{ gsub(/\\040/, " ", $2) } $2 == m && ($3 == "nfs" || $3 == "nfs4") { found = 1 } END { exit !found }' /proc/mounts ||
            fail "$m is not an NFS mount: $(cat /proc/mounts)"
    done
}
check "both shares are NFS mounts at the guest paths asked for" t_mounted
t_again() { vsnfs-mount --auto -v 2>&1 | grep -q "already mounted" || fail "a second --auto did not leave the mounts alone"; }
check "a second --auto leaves the mounts alone" t_again
t_read() {
    got=$(sha256sum "$SHARE_MNT/from-host.txt" | cut -d' ' -f1)
    [ "$got" = "$HOST_SUM" ] || fail "from-host.txt reads as $got, the host wrote $HOST_SUM"
    [ "$(cat "$SECOND_MNT/second.txt")" = "second share" ] || fail "the second share's file reads wrong"
}
check "the host's files read back" t_read
t_write() {
    echo "written by the guest in run $RUN" > "$SHARE_MNT/from-guest-$RUN.txt" || fail "cannot write"
    sync
    umount "$SHARE_MNT" && umount "$SECOND_MNT" || fail "umount failed"
}
check "a file written back, the shares unmounted" t_write

echo "SUMMARY $passed passed, $failed failed"
value='\020'; [ "$failed" = 0 ] && [ "$passed" -gt 0 ] || value='\040'
# isa-debug-exit at port 0xf4: QEMU exits at once with (value << 1) | 1.
printf "$value" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo "isa-debug-exit did not end QEMU"
exit 1
