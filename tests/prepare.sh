#!/usr/bin/env bash
# make test's set-up: the independent clients the tests drive, and rpcbind.
#
# - rpcinfo (Debian package rpcbind), nfs-ls/nfs-cp/nfs-cat (libnfs-utils),
#   and libnl-3-200 and libtirpc3 (vsnfs doctor's tests) are installed with
#   apt-get when missing and we are root. Otherwise the tests that need them
#   fail and say which tool is missing.
# - rpcbind is started unless one already answers. A socket file alone
#   proves nothing: a killed rpcbind leaves /run/rpcbind.sock behind. The
#   daemon must not inherit our descriptors either: a CI pipe held open by
#   rpcbind never reaches end-of-file.
set -u
root=$([ "$(id -u)" = 0 ] && echo yes || echo no)

missing=()
command -v rpcinfo >/dev/null || missing+=(rpcbind)
command -v nfs-cp >/dev/null || missing+=(libnfs-utils)
# vsnfs doctor's libraries, loaded at run time (its tests fail without them).
ldconfig -p 2>/dev/null | grep -q 'libnl-3\.so\.200 ' || missing+=(libnl-3-200)
ldconfig -p 2>/dev/null | grep -q 'libtirpc\.so\.3 ' || missing+=(libtirpc3)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$root" = yes ] && command -v apt-get >/dev/null; then
        echo "prepare: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || echo "prepare: apt-get install ${missing[*]} failed; the tests that need them will fail" >&2
    else
        echo "prepare: missing ${missing[*]} (apt-get install them as root); the tests that need them will fail" >&2
    fi
fi

command -v rpcinfo >/dev/null || exit 0
if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then exit 0; fi
if [ "$root" = no ]; then
    echo "prepare: rpcbind is not running and only root can start it (sudo rpcbind -w); the rpcbind tests will fail" >&2
    exit 0
fi
(
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec rpcbind -w </dev/null >/dev/null 2>&1
)
for _ in $(seq 50); do
    rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && exit 0
    sleep 0.1
done
echo "prepare: rpcbind -w started but does not answer rpcinfo -p 127.0.0.1" >&2
