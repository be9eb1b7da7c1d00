#!/bin/sh
# Guest workload: the relay's raw throughput, splice(2) vs read/write, both
# directions, against direct vsock. Run with: E2E_WORKLOAD=tests/e2e/relay-bench.sh tests/e2e/run.sh
# Rounds alternate the modes (A B B A); figures swing between boots, so
# compare modes within one run only.
export PATH=/workload:$PATH
export VSNFS_RELAY_STAY=1
MIB=${MIB:-100}
vsock-echo -s 5000 &
vsock-echo -S 5001 "$MIB" &
sleep 0.3
echo "direct vsock upload:   $(vsock-echo -c 5000 "$MIB")"
relay() {  # mode vsockport -> prints the relay's TCP port; leaves $rp
    rm -f /run/vsnfs/relay-1-$2.port
    vsnfs-mount __relay 1 "$2" "$1" 2>>/tmp/relay.log &
    rp=$!
    while [ ! -s /run/vsnfs/relay-1-$2.port ]; do sleep 0.1; done
}
for mode in auto splice copy copy splice auto auto splice copy; do
    relay $mode 5000; port=$(cut -d' ' -f2 /run/vsnfs/relay-1-5000.port)
    echo "relay $mode upload:   $(vsock-echo -t "$port" "$MIB")"
    kill $rp; wait $rp 2>/dev/null
    relay $mode 5001; port=$(cut -d' ' -f2 /run/vsnfs/relay-1-5001.port)
    echo "relay $mode download: $(vsock-echo -r "$port")"
    kill $rp; wait $rp 2>/dev/null
done
echo "SUMMARY 0 passed, 0 failed"
