#!/usr/bin/env bash
# Sets everything up and runs the main job: installs missing system packages,
# builds, creates a veth lab (namespaces sluice-demo-s / sluice-demo-c, 2
# queues, 198.18.0.1 <-> 198.18.0.2), starts sluiced on its embedded default
# config in the server namespace, drives ping, UDP echo, TCP echo and HTTP
# traffic through it from the client namespace, and prints what happened.
# Cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

require_root "the demo"
require_cargo
install_packages "${SLUICE_PACKAGES[@]}"

echo "== building (release)"
cargo build --release --workspace --quiet
BIN="$PWD/target/release"
LAB=demo
SRV="sluice-$LAB-s"
CLI="sluice-$LAB-c"
SOCK=/run/sluice/ctl.sock
SLUICED_PID=""

cleanup() {
    if [ -n "$SLUICED_PID" ] && kill -0 "$SLUICED_PID" 2>/dev/null; then
        kill -TERM "$SLUICED_PID" 2>/dev/null || true
        wait "$SLUICED_PID" 2>/dev/null || true
    fi
    "$BIN/sluice-bench" lab down "$LAB" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A lab left behind by an interrupted run is replaced.
"$BIN/sluice-bench" lab down "$LAB" >/dev/null 2>&1 || true
echo "== lab"
"$BIN/sluice-bench" lab up --name "$LAB" --queues 2

echo "== starting sluiced (embedded default config: UDP and TCP echo on 198.18.0.2:7, UDP discard on :9, HTTP on :80)"
ip netns exec "$SRV" "$BIN/sluiced" 2>/tmp/sluice-demo.log &
SLUICED_PID=$!
for _ in $(seq 1 100); do
    # Ready once the XDP program is attached (the control socket answers first).
    "$BIN/sluicectl" --socket "$SOCK" status --json 2>/dev/null | grep -Eq '"xdp_mode": "(driver|skb)"' && break
    kill -0 "$SLUICED_PID" 2>/dev/null || { cat /tmp/sluice-demo.log >&2; die "sluiced exited"; }
    sleep 0.1
done
"$BIN/sluicectl" --socket "$SOCK" status

echo
echo "== ping 198.18.0.2 from the client namespace (answered by sluice, not the kernel)"
ip netns exec "$CLI" ping -c 3 -i 0.2 198.18.0.2 | tail -2

echo
echo "== UDP echo load: 64 kernel sockets, 8 requests in flight each, 3 s"
"$BIN/sluice-bench" load udp --netns "$CLI" --target 198.18.0.2:7 --flows 64 --window 8 --size 64 --duration 3

echo
echo "== TCP echo load on sluice's own TCP: 64 kernel-socket connections, one 64-byte request in flight each, 3 s"
"$BIN/sluice-bench" load tcp --netns "$CLI" --target 198.18.0.2:7 --conns 64 --duration 3 --threads 2

echo
echo "== HTTP: curl -i http://198.18.0.2/, then ab -k (20000 requests, 16 at a time)"
ip netns exec "$CLI" curl -sS -i http://198.18.0.2/
ip netns exec "$CLI" ab -q -k -n 20000 -c 16 http://198.18.0.2/ | grep -E "Complete requests|Failed requests|Requests per second"

echo
echo "== sluicectl stats"
"$BIN/sluicectl" --socket "$SOCK" stats

echo
echo "== stopping sluiced (SIGTERM)"
kill -TERM "$SLUICED_PID"
wait "$SLUICED_PID" && echo "sluiced exited cleanly"
SLUICED_PID=""
if ip -n "$SRV" link show dev sluice0 | grep -q "prog/xdp"; then
    die "the XDP program is still attached"
fi
echo "XDP program detached: sluice0 is back with the kernel"
