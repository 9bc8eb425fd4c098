#!/usr/bin/env bash
# Bulk TCP throughput through underpass and peer tunnels, measured by iperf3, all on loopback.
#
#   cargo build --release
#   cargo install bore-cli rathole --root /tmp/peers     # optional peers
#   apt-get install -y iperf3
#   PEERS_BIN=/tmp/peers/bin bench/peers.sh [seconds]
#
# Prints one markdown row per tunnel: MB/s with 1 and with 8 parallel TCP connections
# (iperf3 receiver side, MBytes/s = 2^20 bytes/s). A tunnel whose binary is missing is skipped.
set -euo pipefail
T=${1:-5}
UP=${UNDERPASS:-./target/release/underpass}
PEERS_BIN=${PEERS_BIN:-}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
bg() { "$@" >"$TMP/$(basename "$1").$RANDOM.log" 2>&1 & PIDS+=($!); }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
mbps() { # iperf3 receiver throughput in MBytes/s; retried while the iperf3 server is still busy
  for _ in 1 2 3 4 5; do
    out=$(iperf3 -c 127.0.0.1 -p "$1" -t "$T" -P "$2" -f M 2>/dev/null | grep receiver | tail -1 |
      awk '{for (i=1;i<=NF;i++) if ($i ~ /MBytes\/sec/) print $(i-1)}') || true
    [ -n "$out" ] && { echo "$out"; return; }
    sleep 1
  done
  echo "failed"
}
row() { echo "| $1 | $(mbps "$2" 1) | $(mbps "$2" 8) |"; }

bg iperf3 -s -p 15201
wait_port 15201
echo "| path | 1 connection MB/s | 8 connections MB/s |"
echo "|---|---:|---:|"
row "direct (no tunnel)" 15201

bg "$UP" server --listen 127.0.0.1:18080 --token bench --quic-listen 127.0.0.1:18443 --tls-cert-cache "$TMP/quic.pem"
wait_port 18080
sleep 0.3
bg "$UP" tcp 15201 --port 25201 --server ws://127.0.0.1:18080 --token bench --connections 1
wait_port 25201; row "underpass ws, 1 carrier" 25201
bg "$UP" tcp 15201 --port 25202 --server ws://127.0.0.1:18080 --token bench --connections 4
wait_port 25202; row "underpass ws, 4 carriers" 25202
FP=$(openssl x509 -in "$TMP/quic.pem" -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)
bg "$UP" tcp 15201 --port 25203 --server quic://127.0.0.1:18443 --server-cert-sha256 "$FP" --token bench --connections 4
wait_port 25203; row "underpass quic, 4 carriers" 25203

if [ -x "$PEERS_BIN/bore" ]; then
  bg "$PEERS_BIN/bore" server --min-port 25300 --max-port 25399
  wait_port 7835
  bg "$PEERS_BIN/bore" local 15201 --to 127.0.0.1 --port 25301
  wait_port 25301; row "bore 0.6 (tcp)" 25301
fi
if [ -x "$PEERS_BIN/rathole" ]; then
  cat >"$TMP/rs.toml" <<TOML
[server]
bind_addr = "127.0.0.1:2333"
[server.services.iperf]
token = "bench"
bind_addr = "127.0.0.1:25401"
TOML
  cat >"$TMP/rc.toml" <<TOML
[client]
remote_addr = "127.0.0.1:2333"
[client.services.iperf]
token = "bench"
local_addr = "127.0.0.1:15201"
TOML
  bg "$PEERS_BIN/rathole" -s "$TMP/rs.toml"
  wait_port 2333
  bg "$PEERS_BIN/rathole" -c "$TMP/rc.toml"
  wait_port 25401; sleep 1; row "rathole 0.5 (tcp)" 25401
fi
