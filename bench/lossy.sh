#!/usr/bin/env bash
# QUIC against WebSocket carriers on a lossy link: eight concurrent TCP streams (iperf3 -P 8)
# through a `tcp` expose whose carriers cross a veth pair that drops 0, 1 and 3 % of the packets
# in each direction (nftables `numgen random`), between two network namespaces the script
# creates and removes. Run as root:
#
#   cargo build --release
#   bench/lossy.sh [seconds]               # default 5 s per measurement
#
# Needs ip (iproute2), nft, iperf3, openssl; installs nothing. Environment:
#   UNDERPASS=path   binary to measure (default ./target/release/underpass)
#   LOSSES="0 1 3"   loss percentages to run
#
# Layout: namespace "server side" holds the underpass server, the visitor (iperf3 client) and
# nothing else; namespace "client side" holds the underpass client and the service (iperf3
# server). Only the carriers cross the veth link, so only they see the loss. The "direct" column
# is iperf3 across the same link without a tunnel: 8 TCP connections, each recovering from its
# own losses. No delay is added (tc netem is not available everywhere); the link's round trip is
# a few tens of microseconds, so loss is recovered fast and the figures show the cost of
# recovery in CPU and head-of-line blocking rather than in waiting.
set -euo pipefail
# shellcheck source=bench/stop_all.sh
source "$(dirname "$0")/stop_all.sh"

T=${1:-5}
UP=$(realpath "${UNDERPASS:-./target/release/underpass}")
LOSSES=${LOSSES:-0 1 3}
TOKEN=bench-token-0123456789abcdef
ID=up$$
NS_S=${ID}s NS_C=${ID}c
IP_S=10.213.0.1 IP_C=10.213.0.2

[ "$(id -u)" = 0 ] || { echo "bench/lossy.sh: needs root (network namespaces)" >&2; exit 1; }
for tool in ip nft iperf3 openssl; do
  command -v "$tool" >/dev/null || { echo "bench/lossy.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$UP" ] || { echo "bench/lossy.sh: no underpass binary at $UP (cargo build --release)" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  ip netns del "$NS_S" 2>/dev/null || true # takes the veth pair with it
  ip netns del "$NS_C" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_S"
ip netns add "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip -n "$NS_S" link add veth0 type veth peer name veth1 netns "$NS_C"
ip -n "$NS_S" addr add "$IP_S/24" dev veth0
ip -n "$NS_C" addr add "$IP_C/24" dev veth1
ip -n "$NS_S" link set veth0 up
ip -n "$NS_C" link set veth1 up

# set_loss PERCENT: drops that share of the packets leaving each namespace on the link.
set_loss() {
  local permille=$(($1 * 10)) ns dev
  for pair in "$NS_S:veth0" "$NS_C:veth1"; do
    ns=${pair%%:*} dev=${pair#*:}
    ip netns exec "$ns" nft -f - <<NFT
table inet lossy
delete table inet lossy
table inet lossy {
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "$dev" numgen random mod 1000 < $permille drop;
  }
}
NFT
  done
}

# in NS NAME CMD...: runs CMD in namespace NS in the background; sets $LAST_PID.
in_ns() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$@" >"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
wait_port() { # wait_port NS HOST PORT, bounded: 20 s
  for _ in $(seq 1 200); do
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/lossy.sh: $2:$3 never opened; logs:" >&2; tail -n 5 "$TMP"/*.log >&2; return 1
}
# iperf_8 HOST PORT: Gbit/s at the receiver with 8 streams, or "failed".
iperf_8() {
  local out
  for _ in 1 2 3; do
    out=$(timeout $((T + 30)) ip netns exec "$NS_S" iperf3 -c "$1" -p "$2" -t "$T" -P 8 -J 2>/dev/null |
      jq -r '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100' 2>/dev/null) || true
    case "$out" in [0-9]*) echo "$out"; return;; esac
    sleep 1
  done
  echo "failed"
}

in_ns "$NS_C" iperf3 iperf3 -s -p 5201
in_ns "$NS_S" server "$UP" server --listen "$IP_S:8080" --token "$TOKEN" --expose-ports 20000-20010 \
  --quic-listen "$IP_S:8443" --tls-cert-cache "$TMP/quic.pem"
wait_port "$NS_C" 127.0.0.1 5201
wait_port "$NS_S" "$IP_S" 8080
for _ in $(seq 1 100); do [ -s "$TMP/quic.pem" ] && break; sleep 0.1; done
FP=$(openssl x509 -in "$TMP/quic.pem" -outform DER | sha256sum | cut -d' ' -f1)

# One client per transport, each with its own public port, kept for every loss rate.
in_ns "$NS_C" ws4 "$UP" tcp 5201 --port 20001 --server "ws://$IP_S:8080" --token "$TOKEN" --connections 4
in_ns "$NS_C" ws1 "$UP" tcp 5201 --port 20002 --server "ws://$IP_S:8080" --token "$TOKEN" --connections 1
in_ns "$NS_C" quic "$UP" tcp 5201 --port 20003 --server "quic://$IP_S:8443" --server-cert-sha256 "$FP" \
  --token "$TOKEN" --connections 4
for port in 20001 20002 20003; do wait_port "$NS_S" "$IP_S" "$port"; done

echo "$(date -u +%FT%TZ), ${T} s per measurement, 8 streams, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "underpass: $UP"
echo
echo "| loss each way | direct TCP Gbit/s | underpass ws x4 | ws x1 | quic x4 |"
echo "|---|---:|---:|---:|---:|"
for loss in $LOSSES; do
  set_loss "$loss"
  direct=$(iperf_8 "$IP_C" 5201)
  ws4=$(iperf_8 "$IP_S" 20001)
  ws1=$(iperf_8 "$IP_S" 20002)
  quic=$(iperf_8 "$IP_S" 20003)
  echo "| $loss % | $direct | $ws4 | $ws1 | $quic |"
done
