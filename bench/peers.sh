#!/usr/bin/env bash
# underpass against per-connection tunnels (rathole, bore) and a direct path, all in one run on
# loopback: bulk TCP with iperf3, HTTP request rate with wrk against nginx, CPU seconds per GiB
# and memory of the tunnel's own processes.
#
#   cargo build --release
#   bench/peers.sh [seconds]                  # default 5 s per measurement
#
# Needs iperf3, wrk, nginx and jq; installs nothing. Environment:
#   UNDERPASS=path   underpass binary to measure (default ./target/release/underpass)
#   BEFORE=path      a second underpass binary, measured in the same run as the "before" rows
#   PEERS_BIN=dir    where rathole and bore are (default /opt/peers/bin); a missing one is skipped
#   ROWS="..."       which rows, in order (default: direct ws4 ws1 quic rathole bore, plus
#                    before-ws4 before-ws1 before-quic when BEFORE is set)
#   ROUNDS=N         measure every row N times, rows interleaved, and print the median of each
#                    cell (default 1); each round's rows are printed too
#   BASE_PORT=N      first of the ~40 loopback ports used (default 31000)
#
# Per row: iperf3 1 and 8 streams through a `pull` and through a `tcp` expose (Gbit/s at the
# receiver; rathole and bore have one kind of TCP tunnel, so only the tcp columns), wrk -t2 -c50
# against nginx serving a 100-byte file: keep-alive through a tcp expose of nginx (a plain TCP
# tunnel, the way rathole and bore carry HTTP) and through an http expose on a dedicated port
# (underpass parses, routes and logs each request), and `Connection: close` through the http
# expose (rathole and bore: their TCP tunnel) (req/s). CPU: utime + stime of the tunnel's processes (server and
# client; /proc/PID/stat) during the bulk runs, divided by the GiB the receivers counted, and
# during each keep-alive run, divided by the requests wrk counted. On a busy machine these two
# move far less than the throughput columns. Peak RSS is VmHWM at the end of the row; after-load
# RSS is VmRSS 5 s after the last load.
# A ratio table against rathole follows. Every wait is bounded; everything started is stopped
# on exit.
set -euo pipefail
# shellcheck source=bench/stop_all.sh
source "$(dirname "$0")/stop_all.sh"

T=${1:-5}
UP=${UNDERPASS:-./target/release/underpass}
BEFORE=${BEFORE:-}
PEERS_BIN=${PEERS_BIN:-/opt/peers/bin}
BASE=${BASE_PORT:-31000}
ROUNDS=${ROUNDS:-1}
if [ -z "${ROWS:-}" ]; then
  ROWS="direct ws4 ws1 quic rathole bore"
  [ -n "$BEFORE" ] && ROWS="$ROWS before-ws4 before-ws1 before-quic"
fi
TOKEN=bench-token-0123456789abcdef
HZ=$(getconf CLK_TCK)

for tool in iperf3 wrk nginx jq; do
  command -v "$tool" >/dev/null || { echo "bench/peers.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$UP" ] || { echo "bench/peers.sh: no underpass binary at $UP (cargo build --release)" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "bench/peers.sh: BEFORE=$BEFORE is not executable" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  stop_all "${PIDS[@]}"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: services, then per-row tunnel ports (each row stops its processes before the next).
IPERF=$BASE NGINX=$((BASE + 1))
CTRL=$((BASE + 10)) QUICP=$((BASE + 11)) PULL=$((BASE + 12)) TCPP=$((BASE + 13)) HTTPP=$((BASE + 14))
TCPH=$((BASE + 15)) # a tcp expose of nginx: HTTP through a plain TCP tunnel, as rathole and bore carry it
RH_CTRL=$((BASE + 20)) RH_TCP=$((BASE + 21)) RH_HTTP=$((BASE + 22))
BORE_TCP=$((BASE + 31)) BORE_HTTP=$((BASE + 32))

# start NAME CMD...: runs CMD in the background, its output in $TMP/NAME.log; sets $LAST_PID.
start() {
  local name=$1; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
wait_port() { # bounded: 20 s
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench/peers.sh: port $1 never opened; logs:" >&2; tail -n 5 "$TMP"/*.log >&2; return 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cpu_ticks() { local sum=0; for p in "$@"; do
  sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$sum"; }
mib() { awk -v k="$(awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status" 2>/dev/null)" \
  'BEGIN { if (k == "") print "-"; else printf "%.0f", k / 1024 }'; }

# iperf PORT STREAMS: prints "Gbit/s bytes" at the receiver, or "failed 0". Retried while the
# iperf3 server is still busy with the previous test.
iperf() {
  local out
  for _ in 1 2 3; do
    out=$(timeout $((T + 20)) iperf3 -c 127.0.0.1 -p "$1" -t "$T" -P "$2" -J 2>/dev/null |
      jq -r '.end.sum_received | "\(.bits_per_second / 1e9 * 100 | round / 100) \(.bytes)"' 2>/dev/null) || true
    case "$out" in [0-9]*) echo "$out"; return;; esac
    sleep 1
  done
  echo "failed 0"
}
# wrk_rps PORT [close]: "req/s requests" for the 100-byte file, or "failed 0".
wrk_rps() {
  local hdr=()
  [ "${2:-}" = close ] && hdr=(-H "Connection: close")
  timeout $((T + 20)) wrk -t2 -c50 -d"${T}s" "${hdr[@]}" "http://127.0.0.1:$1/100b" 2>/dev/null |
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=sprintf("%.1fk", $2 / 1000)}
      END {if (r == "" || n == "") print "failed 0"; else print r, n}'
}

# measure LABEL PULL_PORT|- TCP_PORT TCP_HTTP_PORT HTTP_PORT|- PID...: one table row.
# TCP_HTTP_PORT carries nginx through a plain TCP tunnel (a tcp expose; rathole's and bore's only
# kind), HTTP_PORT through an http expose (underpass only).
measure() {
  local label=$1 pull=$2 tcp=$3 tcp_http=$4 http=$5; shift 5
  local pids=("$@") p1=- p8=- t1 t8 bytes=0 r c0 c1
  c0=$(cpu_ticks "${pids[@]}")
  if [ "$pull" != - ]; then
    r=$(iperf "$pull" 1); p1=${r% *}; bytes=$((bytes + ${r#* }))
    r=$(iperf "$pull" 8); p8=${r% *}; bytes=$((bytes + ${r#* }))
  fi
  r=$(iperf "$tcp" 1); t1=${r% *}; bytes=$((bytes + ${r#* }))
  r=$(iperf "$tcp" 8); t8=${r% *}; bytes=$((bytes + ${r#* }))
  c1=$(cpu_ticks "${pids[@]}")
  local ka_tcp ka_http="- 0" close cpu=- req_tcp=- req_http=- peak=- after=- c2 c3
  ka_tcp=$(wrk_rps "$tcp_http")
  c2=$(cpu_ticks "${pids[@]}")
  [ "$http" != - ] && ka_http=$(wrk_rps "$http")
  c3=$(cpu_ticks "${pids[@]}")
  close=$(wrk_rps "$([ "$http" != - ] && echo "$http" || echo "$tcp_http")" close)
  if [ ${#pids[@]} -gt 0 ]; then
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v b="$bytes" \
      'BEGIN { if (b > 0) printf "%.2f", t / hz / (b / 1073741824); else print "-" }')
    req_tcp=$(per_request $((c2 - c1)) "${ka_tcp#* }")
    req_http=$(per_request $((c3 - c2)) "${ka_http#* }")
    peak="" after=""
    for p in "${pids[@]}"; do peak="$peak${peak:+ / }$(mib "$p" VmHWM)"; done
    sleep 5
    for p in "${pids[@]}"; do after="$after${after:+ / }$(mib "$p" VmRSS)"; done
  fi
  echo "| $label | $p1 | $p8 | $t1 | $t8 | ${ka_tcp% *} | ${ka_http% *} | ${close% *} | $cpu | $req_tcp | $req_http | $peak | $after |" |
    tee -a "$TMP/rows"
}
# per_request TICKS REQUESTS: CPU µs per request.
per_request() {
  awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz / n * 1e6; else print "-" }'
}

underpass_row() { # underpass_row LABEL BINARY ws|quic CONNECTIONS
  local label=$1 bin=$2 transport=$3 conns=$4 server_url
  for p in $CTRL $PULL $TCPP $HTTPP $TCPH; do port_free "$p" || { echo "bench/peers.sh: port $p is busy" >&2; return 1; }; done
  start server "$bin" server --listen "127.0.0.1:$CTRL" --token "$TOKEN" --expose-ports "$TCPP-$TCPH" \
    --quic-listen "127.0.0.1:$QUICP" --tls-cert-cache "$TMP/quic.pem"
  local spid=$LAST_PID
  wait_port "$CTRL"
  server_url=ws://127.0.0.1:$CTRL
  local extra=()
  if [ "$transport" = quic ]; then
    for _ in $(seq 1 100); do [ -s "$TMP/quic.pem" ] && break; sleep 0.1; done
    server_url=quic://127.0.0.1:$QUICP
    extra=(--server-cert-sha256 "$(openssl x509 -in "$TMP/quic.pem" -outform DER | sha256sum | cut -d' ' -f1)")
  fi
  cat >"$TMP/client.toml" <<TOML
[[pull]]
port = $IPERF
remote_port = $PULL

[[tcp]]
port = $IPERF
remote_port = $TCPP

[[tcp]]
port = $NGINX
remote_port = $TCPH

[[http]]
port = $NGINX
subdomain = "bench"
public_port = $HTTPP
TOML
  start client "$bin" start --config "$TMP/client.toml" --server "$server_url" --token "$TOKEN" \
    --connections "$conns" "${extra[@]}"
  local cpid=$LAST_PID
  wait_port "$PULL"; wait_port "$TCPP"; wait_port "$HTTPP"; wait_port "$TCPH"
  measure "$label" "$PULL" "$TCPP" "$TCPH" "$HTTPP" "$spid" "$cpid"
  stop "$cpid" "$spid"
}

rathole_row() {
  [ -x "$PEERS_BIN/rathole" ] || { echo "| rathole | not installed in $PEERS_BIN |" | tee -a "$TMP/rows"; return; }
  cat >"$TMP/rs.toml" <<TOML
[server]
bind_addr = "127.0.0.1:$RH_CTRL"
[server.services.iperf]
token = "$TOKEN"
bind_addr = "127.0.0.1:$RH_TCP"
[server.services.nginx]
token = "$TOKEN"
bind_addr = "127.0.0.1:$RH_HTTP"
TOML
  cat >"$TMP/rc.toml" <<TOML
[client]
remote_addr = "127.0.0.1:$RH_CTRL"
[client.services.iperf]
token = "$TOKEN"
local_addr = "127.0.0.1:$IPERF"
[client.services.nginx]
token = "$TOKEN"
local_addr = "127.0.0.1:$NGINX"
TOML
  start rathole-server "$PEERS_BIN/rathole" -s "$TMP/rs.toml"; local spid=$LAST_PID
  wait_port "$RH_CTRL"
  start rathole-client "$PEERS_BIN/rathole" -c "$TMP/rc.toml"; local cpid=$LAST_PID
  wait_port "$RH_TCP"; wait_port "$RH_HTTP"
  sleep 1 # the services are bound before the client's control channels are up
  measure "rathole $("$PEERS_BIN/rathole" --version 2>/dev/null | awk '/Build Version/ {print $3}')" - "$RH_TCP" "$RH_HTTP" - "$spid" "$cpid"
  stop "$cpid" "$spid"
}

bore_row() {
  [ -x "$PEERS_BIN/bore" ] || { echo "| bore | not installed in $PEERS_BIN |" | tee -a "$TMP/rows"; return; }
  port_free 7835 || { echo "bench/peers.sh: bore's control port 7835 is busy" >&2; return 1; }
  start bore-server "$PEERS_BIN/bore" server --min-port "$BORE_TCP" --max-port "$BORE_HTTP"; local spid=$LAST_PID
  wait_port 7835
  start bore-tcp "$PEERS_BIN/bore" local "$IPERF" --to 127.0.0.1 --port "$BORE_TCP"; local c1=$LAST_PID
  start bore-http "$PEERS_BIN/bore" local "$NGINX" --to 127.0.0.1 --port "$BORE_HTTP"; local c2=$LAST_PID
  wait_port "$BORE_TCP"; wait_port "$BORE_HTTP"
  measure "bore $("$PEERS_BIN/bore" --version 2>/dev/null | awk '{print $2}') (server / 2 clients)" - "$BORE_TCP" "$BORE_HTTP" - "$spid" "$c1" "$c2"
  stop "$c1" "$c2" "$spid"
}

# The services: iperf3 and nginx with a 100-byte file.
for p in $IPERF $NGINX; do port_free "$p" || { echo "bench/peers.sh: port $p is busy (BASE_PORT=...)" >&2; exit 1; }; done
start iperf3 iperf3 -s -p "$IPERF"
mkdir -p "$TMP/www" "$TMP/nginx"
head -c 100 /dev/zero | tr '\0' x >"$TMP/www/100b"
cat >"$TMP/nginx.conf" <<NGINX
daemon off;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 4096; }
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

echo "$(date -u +%FT%TZ), ${T} s per measurement, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "underpass: $UP${BEFORE:+, before: $BEFORE}"
echo
HEADER="| path | pull 1 stream Gbit/s | pull 8 streams | tcp 1 stream | tcp 8 streams | keep-alive req/s, TCP tunnel | keep-alive req/s, http expose | Connection: close req/s | CPU s/GiB (server + client) | CPU µs per keep-alive request, TCP tunnel | same, http expose | peak RSS MiB (server / client) | after-load RSS MiB |"
RULE="|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "Round $round of $ROUNDS:"
  echo "$HEADER"
  echo "$RULE"
  for row in $ROWS; do
    case $row in
      direct) measure "direct (no tunnel)" - "$IPERF" "$NGINX" - ;;
      ws4) underpass_row "underpass ws x4 (default)" "$UP" ws 4 ;;
      ws1) underpass_row "underpass ws x1" "$UP" ws 1 ;;
      quic) underpass_row "underpass quic x4" "$UP" quic 4 ;;
      before-ws4) underpass_row "before: underpass ws x4" "$BEFORE" ws 4 ;;
      before-ws1) underpass_row "before: underpass ws x1" "$BEFORE" ws 1 ;;
      before-quic) underpass_row "before: underpass quic x4" "$BEFORE" quic 4 ;;
      rathole) rathole_row ;;
      bore) bore_row ;;
      *) echo "bench/peers.sh: unknown row $row" >&2; exit 1 ;;
    esac
  done
  echo
done

# The median of each cell over the rounds ("a / b" cells component by component).
if [ "$ROUNDS" -gt 1 ]; then
  echo "Median of $ROUNDS rounds:"
  echo "$HEADER"
  echo "$RULE"
  awk -F'|' '
    function median(list,   n, v, i, j, t) {
      n = split(list, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function cell(key, col,   parts, k, out, list, unit, m) {
      if (!((key, col, 1) in vals)) return first[key, col]
      out = ""
      for (k = 1; (key, col, k) in vals; k++) {
        unit = units[key, col, k]
        list = vals[key, col, k]
        m = median(list)
        out = out (k > 1 ? " / " : "") (unit == "k" ? sprintf("%.1fk", m) : (m == int(m) ? m : sprintf("%.2f", m)))
      }
      return out
    }
    {
      key = $2
      if (!(key in seen)) { seen[key] = 1; order[++rows] = key }
      cols[key] = NF - 1
      for (c = 3; c < NF; c++) {
        v = $c; gsub(/^ +| +$/, "", v)
        if (!((key, c) in first)) first[key, c] = v
        n = split(v, p, " / ")
        for (k = 1; k <= n; k++) {
          x = p[k]; u = ""
          if (x ~ /k$/) { u = "k"; sub(/k$/, "", x) }
          if (x ~ /^[0-9.]+$/) { vals[key, c, k] = vals[key, c, k] " " x; units[key, c, k] = u }
        }
      }
    }
    END {
      for (r = 1; r <= rows; r++) {
        key = order[r]; line = "|" key "|"
        for (c = 3; c <= cols[key]; c++) line = line " " cell(key, c) " |"
        print line
      }
    }' "$TMP/rows" | tee "$TMP/median"
  cp "$TMP/median" "$TMP/rows"
fi

# Ratios against rathole (throughput: higher is better; CPU: lower is better).
rh=$(grep '^| rathole [0-9]' "$TMP/rows" | head -1 || true)
if [ -n "$rh" ]; then
  echo
  echo "| path / rathole | pull 1 | pull 8 | tcp 1 | tcp 8 | keep-alive, TCP tunnel | keep-alive, http expose | close | CPU s/GiB | CPU per request, TCP tunnel | same, http expose |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  grep '^| \(underpass\|before\)' "$TMP/rows" | while IFS= read -r line; do
    # rathole carries HTTP only through its TCP tunnel: both keep-alive columns are against it.
    awk -F'|' -v rh="$rh" 'BEGIN { split(rh, R, "|") }
      function num(s) { gsub(/[ k]/, "", s); return s + 0 }
      function ratio(a, b) { return (num(b) > 0 && a !~ /-|failed/) ? sprintf("%.2f", num(a) / num(b)) : "-" }
      { printf "|%s| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2,
          ratio($3, R[5]), ratio($4, R[6]), ratio($5, R[5]), ratio($6, R[6]),
          ratio($7, R[7]), ratio($8, R[7]), ratio($9, R[9]), ratio($10, R[10]),
          ratio($11, R[11]), ratio($12, R[11]) }' <<<"$line"
  done
fi
