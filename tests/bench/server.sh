# Sourced by the HTTP benchmarks (run from the repository root): start_server LOG [FLAG...] starts
# build/augserve on a free port of 127.0.0.1 with the flags, its stderr in LOG, and sets `server`
# (its pid) and `port` once it listens; otherwise it prints the log and exits 1.
start_server() {
  local log=$1
  shift
  build/augserve --listen 127.0.0.1:0 "$@" 2> "$log" &
  server=$!
  port=
  for _ in $(seq 100); do
    port=$(grep -o 'on port [0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [[ -n "$port" ]] && return 0
    sleep 0.1
  done
  cat "$log"
  exit 1
}
