#!/usr/bin/env bash
# What the request inspector costs the client, all on loopback: the client process's CPU (user +
# sys, read from /proc, which other load on a shared machine disturbs far less than throughput)
# per request for 1 KiB files (wrk, 8 connections, 8 s) and per GiB for 3 x 100 MiB down and up
# (curl), with the inspector off and on; optionally also a build without the inspector.
#
#   cargo build --release
#   apt-get install -y nginx wrk curl bc
#   bench/inspector.sh [rounds]                      # default 3 rounds, interleaved
#   UNDERPASS_BASELINE=/path/to/older/underpass bench/inspector.sh
#
# Prints one line per run; compare the medians.
set -euo pipefail
ROUNDS=${1:-3}
UP=${UNDERPASS:-./target/release/underpass}
BASE=${UNDERPASS_BASELINE:-}
TMP=$(mktemp -d)
PIDS=()
NGINX=
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # TERM, not KILL: the master then stops its worker too.
  [ -n "$NGINX" ] && { kill "$NGINX" 2>/dev/null || true; wait "$NGINX" 2>/dev/null || true; }
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$TMP/www" "$TMP/nginx"
head -c 1024 /dev/urandom > "$TMP/www/small.bin"
head -c 104857600 /dev/urandom > "$TMP/www/big.bin"
# nginx's worker runs as nobody: it must read the files.
chmod 755 "$TMP" "$TMP/www" && chmod 644 "$TMP/www/"*
APP=$(free_port)
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$APP;
    root $TMP/www;
    keepalive_requests 1000000;
    location = /post { client_max_body_size 200m; return 200 "ok\n"; }
  }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
NGINX=$!
sleep 0.5

# run BINARY INSPECT(none|off|on) LABEL
run() {
  local bin=$1 mode=$2 label=$3 port cp sp
  port=$(free_port)
  "$bin" server --listen "127.0.0.1:$port" --token tok --domain bench.test >"$TMP/s.out" 2>&1 &
  sp=$!; PIDS+=($sp)
  sleep 0.5
  local args=(http "$APP" --server "ws://127.0.0.1:$port" --token tok --subdomain b)
  case $mode in
    off) args+=(--inspect off) ;;
    on) args+=(--inspect 127.0.0.1:0) ;;
  esac
  RUST_LOG=warn "$bin" "${args[@]}" >"$TMP/c.out" 2>&1 &
  cp=$!; PIDS+=($cp)
  for _ in $(seq 1 100); do grep -q '^public:' "$TMP/c.out" && break; sleep 0.1; done
  local h='Host: b.bench.test' u="http://127.0.0.1:$port"
  cpu() { awk '{print $14 + $15}' "/proc/$cp/stat"; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$h" "$u/small.bin")" = 200 ] || { echo "$label: the app does not answer 200" >&2; return 1; }
  local c0 c1 c2 c3 w n
  c0=$(cpu)
  w=$(wrk -t1 -c8 -d8s --latency -H "$h" "$u/small.bin")
  c1=$(cpu)
  n=$(echo "$w" | awk '/requests in/ {print $1}')
  for _ in 1 2 3; do curl -sSf -o /dev/null -H "$h" "$u/big.bin"; done
  c2=$(cpu)
  for _ in 1 2 3; do curl -s -o /dev/null -H 'Expect:' --data-binary "@$TMP/www/big.bin" -H "$h" "$u/post"; done
  c3=$(cpu)
  # /proc counts clock ticks of 1/100 s; 300 MiB each way.
  printf '%-9s requests=%-7s req/s=%-9s client_cpu_us_per_request=%-6s down_cpu_s_per_GiB=%-5s up_cpu_s_per_GiB=%s\n' \
    "$label" "$n" "$(echo "$w" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "scale=1; ($c1 - $c0) * 10000 / $n" | bc)" \
    "$(echo "scale=2; ($c2 - $c1) / 100 * 1024 / 300" | bc)" \
    "$(echo "scale=2; ($c3 - $c2) / 100 * 1024 / 300" | bc)"
  kill -9 "$cp" "$sp" 2>/dev/null || true
  wait "$cp" "$sp" 2>/dev/null || true
}

for _ in $(seq 1 "$ROUNDS"); do
  [ -n "$BASE" ] && run "$BASE" none baseline
  run "$UP" off off
  run "$UP" on on
done
