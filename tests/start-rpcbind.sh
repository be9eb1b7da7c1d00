#!/usr/bin/env bash
# Starts rpcbind for the tests that ask it (libtirpc's `rpcinfo -t` and the
# server's --rpcbind registration), unless one already answers.
#
# A socket file alone proves nothing: a killed rpcbind leaves
# /run/rpcbind.sock behind. And the daemon must not inherit the caller's
# descriptors: a CI pipe held open by rpcbind never reaches end-of-file.
set -u
if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "start-rpcbind: rpcbind is not running and only root can start it (sudo rpcbind -w);" \
         "the rpcbind tests will fail" >&2
    exit 0
fi
command -v rpcbind >/dev/null || { echo "start-rpcbind: rpcbind is not installed (apt-get install rpcbind)" >&2; exit 0; }
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
echo "start-rpcbind: rpcbind -w started but does not answer rpcinfo -p 127.0.0.1" >&2
