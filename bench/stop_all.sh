# Sourced by the bench scripts: stop_all PID... sends SIGTERM, waits up to 5 s, then kills what
# is left with SIGKILL and reaps everything, so a wedged process can neither hold a script nor
# outlive it.
stop_all() {
  local p alive
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
