#!/usr/bin/env bash
# A slow reader behind loss: N times, a Python client in the lab's client
# namespace sends SIZE bytes to an echo server and reads them back 4 KiB a
# millisecond through a 64 KiB receive buffer, while nftables drops PCT % of
# the segments each way; sluiced's TCP echo (:7) and the kernel's (an epoll
# server, :7007) take turns. The sender of the echo is then held to the
# reader's window, a few segments in flight, where losses are found by RACK
# and probes rather than duplicate ACKs. Prints each transfer's time and
# sluiced's recovery counters. Not a timed test: a measurement (the loss is
# random), see BENCHMARKS.md.
#
#   bash scripts/slow-reader.sh            # PCT=5 SIZE=3000000 N=8
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PCT=${PCT:-5}
SIZE=${SIZE:-3000000}
N=${N:-8}
require_root "the slow-reader measurement"
require_cargo
install_packages "${SLUICE_PACKAGES[@]}" python3
cargo build --release --workspace --quiet
BIN="$PWD/target/release"
LAB=slowread
SRV="sluice-$LAB-s"
CLI="sluice-$LAB-c"
WORK=$(mktemp -d /tmp/sluice-slow-reader.XXXXXX)
SLUICED_PID=""
KERNEL_PID=""

cleanup() {
    exec 3>&- 2>/dev/null || true
    for p in $SLUICED_PID $KERNEL_PID; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    "$BIN/sluice-bench" lab down "$LAB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$WORK/client.py" <<'EOF'
import socket, sys, threading, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytes((i * 7 + 3) & 0xff for i in range(size))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(60)
s.connect((host, port))
got = bytearray()
def reader():
    while len(got) < size:
        b = s.recv(4096)
        if not b:
            break
        got.extend(b)
        time.sleep(0.001)
t0 = time.time()
th = threading.Thread(target=reader)
th.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
th.join()
print(f"{'sluice' if port == 7 else 'kernel'}: {len(got)} of {size} bytes back in {time.time() - t0:.2f} s, intact: {bytes(got) == data}")
EOF

"$BIN/sluice-bench" lab down "$LAB" >/dev/null 2>&1 || true
"$BIN/sluice-bench" lab up --name "$LAB" --queues 2 >/dev/null
cat >"$WORK/sluiced.toml" <<EOF
[engine]
interface = "sluice0"
control_socket = "$WORK/ctl.sock"

[[service]]
name = "echo"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "echo"
EOF
ip netns exec "$SRV" "$BIN/sluiced" --config "$WORK/sluiced.toml" 2>"$WORK/sluiced.log" &
SLUICED_PID=$!
for _ in $(seq 1 100); do
    "$BIN/sluicectl" --socket "$WORK/ctl.sock" status --json 2>/dev/null | grep -Eq '"xdp_mode": "(driver|skb)"' && break
    kill -0 "$SLUICED_PID" 2>/dev/null || { cat "$WORK/sluiced.log" >&2; die "sluiced exited"; }
    sleep 0.1
done
# The kernel's echo server ends when its stdin (fd 3 here) closes.
mkfifo "$WORK/kernel.in"
"$BIN/sluice-bench" serve-tcp-echo --ns "$SRV" --listen 198.18.0.2:7007 <"$WORK/kernel.in" &
KERNEL_PID=$!
exec 3>"$WORK/kernel.in"
sleep 0.5
# Wire-sized segments on the client side, so each loss rule sees one.
for i in $(ip netns exec "$CLI" ls /sys/class/net); do
    [ "$i" = lo ] || ip netns exec "$CLI" ethtool -K "$i" gso off tso off >/dev/null 2>&1 || true
done
for port in 7 7007; do
    ip netns exec "$CLI" nft -f - <<EOF
table inet sluiceloss$port {
  chain out { type filter hook output priority 0; ip daddr 198.18.0.2 tcp dport $port numgen random mod 100 < $PCT counter drop; }
  chain in { type filter hook input priority 0; ip saddr 198.18.0.2 tcp sport $port numgen random mod 100 < $PCT counter drop; }
}
EOF
done
echo "== $N x $SIZE bytes echoed to a slow reader through $PCT % loss each way"
for _ in $(seq 1 "$N"); do
    for port in 7 7007; do
        ip netns exec "$CLI" python3 "$WORK/client.py" 198.18.0.2 "$port" "$SIZE"
    done
done
echo "== sluiced's recovery counters (core 0, core 1, total)"
"$BIN/sluicectl" --socket "$WORK/ctl.sock" stats | grep -E "tcp_(rto_expired|retrans_rto|retrans_fast|fast_recoveries|tlp_probes|rack_timeouts)"
