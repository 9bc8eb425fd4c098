#!/usr/bin/env bash
# Memory of an underpass server and client, all on loopback (resident set size from /proc).
#
#   cargo build --release
#   apt-get install -y iperf3 python3        # iperf3 for the bulk transfer, python3 for ws_hold.py
#   bench/memory.sh [BINARY] [N ...]          # BINARY: ./target/release/underpass by default
#
# Prints one markdown table: RSS of the server and of the client
#   - idle: connected with the default 4 WebSocket carriers and one binding, no traffic;
#   - during and after a 1 GiB transfer through `pull` (iperf3 -n 1G, one TCP connection), then
#     5 s later; the same with 8 parallel connections (iperf3 -P 8);
#   - with N idle WebSocket visitors held open through one `http` expose (default N = 1024 and
#     10000; each visitor's upgrade reaches a local app that answers 101 and stays quiet), and the
#     cost per visitor: (RSS with N held - RSS before) / N.
# Peaks are VmHWM, reset before each phase (/proc/PID/clear_refs, needs root or the same user).
# Each visitor run uses a fresh server and client; the server runs with
# --max-streams-per-session N+64. Every socket needs a descriptor: the script raises `ulimit -n`
# to the hard limit and N must stay below it.
set -euo pipefail
UP=${1:-${UNDERPASS:-./target/release/underpass}}
shift || true
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(1024 10000)
HERE=$(cd "$(dirname "$0")" && pwd)
ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  exec 8>&- 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
bg() { local log=$1; shift; "$@" >"$TMP/$log" 2>&1 & PIDS+=($!); LAST=$!; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
rss() { mib "$(kib "$1" VmRSS)"; }
hwm() { mib "$(kib "$1" VmHWM)"; }
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }
row() { echo "| $1 | $2 | $3 |"; }
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

PORT=18180
start_pair() { # start_pair SERVER_FLAGS... -- CLIENT_ARGS...
  local sflags=() ; while [ "$1" != "--" ]; do sflags+=("$1"); shift; done; shift
  bg server.log "$UP" server --listen 127.0.0.1:$PORT --token bench "${sflags[@]}"; SERVER=$LAST
  wait_port $PORT
  bg client.log "$UP" "$@" --server ws://127.0.0.1:$PORT --token bench; CLIENT=$LAST
}

echo "binary: $UP ($("$UP" --version 2>/dev/null || echo unknown version))"
echo
echo "| phase | server RSS MiB | client RSS MiB |"
echo "|---|---:|---:|"

# --- idle and bulk ---------------------------------------------------------------------------
bg iperf.log iperf3 -s -p 15301; IPERF=$LAST
wait_port 15301
start_pair -- pull 15301 --remote-port 25301
wait_port 25301
sleep 3
row "idle (4 carriers, 1 binding)" "$(rss $SERVER)" "$(rss $CLIENT)"
for parallel in 1 8; do
  reset_peak $SERVER; reset_peak $CLIENT
  iperf3 -c 127.0.0.1 -p 25301 -n 1G -P $parallel >"$TMP/bulk$parallel.log" 2>&1 || { echo "iperf3 failed" >&2; cat "$TMP/bulk$parallel.log" >&2; exit 1; }
  row "peak during 1 GiB, $parallel connection(s)" "$(hwm $SERVER)" "$(hwm $CLIENT)"
  row "right after it" "$(rss $SERVER)" "$(rss $CLIENT)"
  sleep 5
  row "5 s after it" "$(rss $SERVER)" "$(rss $CLIENT)"
done
stop $CLIENT $SERVER $IPERF

# --- idle WebSocket visitors -----------------------------------------------------------------
bg app.log python3 "$HERE/ws_hold.py" app 15302; APP=$LAST
wait_port 15302
for n in "${NS[@]}"; do
  PORT=$((PORT + 1))
  # All visitors come from 127.0.0.1: lift the per-address cap where the binary has one.
  percap=(); "$UP" server --help 2>/dev/null | grep -q -- --max-connections-per-ip && percap=(--max-connections-per-ip 0)
  start_pair --max-streams-per-session $((n + 64)) "${percap[@]}" -- http 15302 --port 25302
  wait_port 25302
  sleep 2
  s0=$(kib $SERVER VmRSS); c0=$(kib $CLIENT VmRSS)
  mkfifo "$TMP/hold"
  python3 "$HERE/ws_hold.py" visitors 25302 "$n" <"$TMP/hold" >"$TMP/visitors.out" 2>&1 &
  VIS=$!; PIDS+=($VIS)
  exec 8>"$TMP/hold"
  for _ in $(seq 1 1200); do grep -q '^held' "$TMP/visitors.out" && break; sleep 0.1; done
  held=$(awk '/^held/ {print $2}' "$TMP/visitors.out"); held=${held:-0}
  sleep 2
  s1=$(kib $SERVER VmRSS); c1=$(kib $CLIENT VmRSS)
  row "$held of $n idle WebSocket visitors held" "$(mib "$s1")" "$(mib "$c1")"
  if [ "$held" -gt 0 ]; then
    row "per visitor (KiB)" "$(( (s1 - s0) / held ))" "$(( (c1 - c0) / held ))"
  fi
  exec 8>&-
  stop $VIS
  rm -f "$TMP/hold"
  sleep 2
  row "after the $held visitors left" "$(rss $SERVER)" "$(rss $CLIENT)"
  stop $CLIENT $SERVER
done
