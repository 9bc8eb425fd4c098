#!/usr/bin/env bash
# User-space instructions the tunnel's server and client execute per MiB moved and per HTTP
# request, counted by valgrind's callgrind: a measure that a busy machine does not disturb.
#
#   cargo build --release
#   bench/callgrind.sh [BINARY...]        # default ./target/release/underpass
#
# For each binary: the server and a one-carrier client run under callgrind; after a warm-up the
# counters are zeroed (callgrind_control -z), then 256 MiB go visitor -> service through a tcp
# expose (iperf3 -n 256M), 256 MiB the other way (-R, the client masks), and wrk -t1 -c10 runs
# 10 s against nginx (100-byte file) through an http expose; the counters are dumped after each
# (callgrind_control -d). Needs valgrind, iperf3, wrk, nginx, jq; installs nothing. Logging is at
# warn; LOG_LEVEL=info counts the default level (one access line per request on each side).
# valgrind counts a `rep movsb` copy as one instruction per byte, so copies weigh more here than
# they do on the CPU.
set -euo pipefail
# shellcheck source=bench/stop_all.sh
source "$(dirname "$0")/stop_all.sh"

BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=(./target/release/underpass)
BASE=${BASE_PORT:-31500}
LEVEL=${LOG_LEVEL:-warn}
TOKEN=bench-token-0123456789abcdef
for tool in valgrind callgrind_control callgrind_annotate iperf3 wrk nginx jq; do
  command -v "$tool" >/dev/null || { echo "bench/callgrind.sh: $tool is not installed" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { local name=$1; shift; "$@" >"$TMP/$name.log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID"); }
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
wait_port() { # bounded: 60 s (valgrind starts slowly)
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench/callgrind.sh: port $1 never opened" >&2; tail -n 5 "$TMP"/*.log >&2; return 1
}
# count FILE: the instructions in one callgrind dump.
count() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
# measure CMD...: zero both counters, run CMD, dump; sets SPENT to the instructions spent in
# between. Each dump is the next numbered file (server.PID.1, .2, ...).
measure() {
  callgrind_control -z "$SPID" >/dev/null 2>&1; callgrind_control -z "$CPID" >/dev/null 2>&1
  "$@"
  callgrind_control -d "$SPID" >/dev/null 2>&1; callgrind_control -d "$CPID" >/dev/null 2>&1
  DUMP=$((DUMP + 1))
  for _ in $(seq 1 100); do
    [ -s "$TMP/server.$SPID.$DUMP" ] && [ -s "$TMP/client.$CPID.$DUMP" ] && break
    sleep 0.1
  done
  SPENT=$(($(count "$TMP/server.$SPID.$DUMP") + $(count "$TMP/client.$CPID.$DUMP")))
}

IPERF=$BASE NGINX=$((BASE + 1)) CTRL=$((BASE + 2)) TCPP=$((BASE + 3)) HTTPP=$((BASE + 4))
start iperf3 iperf3 -s -p "$IPERF"
mkdir -p "$TMP/www" "$TMP/nginx"
head -c 100 /dev/zero | tr '\0' x >"$TMP/www/100b"
cat >"$TMP/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NGINX; root $TMP/www; }
}
NGINX
start nginx nginx -c "$TMP/nginx.conf" -p "$TMP/nginx"
wait_port "$IPERF"; wait_port "$NGINX"

echo "| binary | instructions per MiB, visitor -> service | per MiB, service -> visitor | per HTTP keep-alive request |"
echo "|---|---:|---:|---:|"
for bin in "${BINS[@]}"; do
  rm -f "$TMP"/server.* "$TMP"/client.*
  RUST_LOG=$LEVEL start server valgrind --tool=callgrind --callgrind-out-file="$TMP/server.%p" \
    "$bin" server --listen "127.0.0.1:$CTRL" --token "$TOKEN" --expose-ports "$TCPP-$HTTPP"
  SPID=$LAST_PID
  wait_port "$CTRL"
  cat >"$TMP/client.toml" <<TOML
[[tcp]]
port = $IPERF
remote_port = $TCPP

[[http]]
port = $NGINX
subdomain = "bench"
public_port = $HTTPP
TOML
  RUST_LOG=$LEVEL start client valgrind --tool=callgrind --callgrind-out-file="$TMP/client.%p" \
    "$bin" start --config "$TMP/client.toml" --server "ws://127.0.0.1:$CTRL" --token "$TOKEN" --connections 1
  CPID=$LAST_PID
  DUMP=0
  wait_port "$TCPP"; wait_port "$HTTPP"
  wrk -t1 -c10 -d3s "http://127.0.0.1:$HTTPP/100b" >/dev/null # warm-up
  iperf3 -c 127.0.0.1 -p "$TCPP" -n 16M >/dev/null

  measure iperf3 -c 127.0.0.1 -p "$TCPP" -n 256M -J --logfile "$TMP/up.json"
  up=$SPENT
  up_bytes=$(jq .end.sum_received.bytes "$TMP/up.json")
  measure iperf3 -c 127.0.0.1 -p "$TCPP" -n 256M -R -J --logfile "$TMP/down.json"
  down=$SPENT
  down_bytes=$(jq .end.sum_received.bytes "$TMP/down.json")
  measure sh -c "wrk -t1 -c10 -d10s http://127.0.0.1:$HTTPP/100b > $TMP/wrk.txt"
  http=$SPENT
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
  awk -v b="$bin" -v u="$up" -v ub="$up_bytes" -v d="$down" -v db="$down_bytes" -v h="$http" -v r="$reqs" \
    'BEGIN { printf "| %s | %.2f M | %.2f M | %.0f k |\n", b, u / (ub / 1048576) / 1e6, d / (db / 1048576) / 1e6, h / r / 1e3 }'
  stop "$CPID" "$SPID"
done
