#!/usr/bin/env bash
# HTTP overhead: wrk posts a 224 px JPEG to POST /v1/augment (RandAugment) at concurrency 16
# against the Release server, and the CLI benchmark runs the same pipeline without HTTP, once per
# core. Prints both, and the share of throughput HTTP costs. With --with-job, wrk runs a second
# time while a job runs on the server's job runner (the debug kind count, checkpointing as fast as
# it can: one core busy with the store), and /v1/augment's p99 latency is printed without and with
# it.
#   tests/bench/http_augment.sh [--with-job] [SECONDS]     (needs wrk and a Release build in build/)
set -euo pipefail
cd "$(dirname "$0")/../.."
with_job=0
if [[ "${1:-}" == "--with-job" ]]; then
  with_job=1
  shift
fi
seconds=${1:-10}
cores=$(nproc)
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

/usr/bin/python3 - "$work/input.jpg" <<'PY'
import sys
from PIL import Image
try:
    from skimage import data
    image = Image.fromarray(data.astronaut())
except ImportError:
    image = Image.radial_gradient("L").convert("RGB")
image.resize((224, 224), Image.BILINEAR).save(sys.argv[1], quality=90)
PY

source tests/bench/server.sh
start_server "$work/server.log" --workers "$cores" --access-log off --data-dir "$work/var" \
  --static-dir "$work" --debug-routes "$([[ $with_job == 1 ]] && echo true || echo false)"

# CPU seconds the server has used: wrk shares these cores, so throughput per server CPU second is
# the fair comparison with the CLI.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$server/stat"
}
echo "== HTTP: wrk -t2 -c16 -d${seconds}s, POST /v1/augment?policy=randaugment, 224 px JPEG"
cpu_before=$(server_cpu)
AUGSERVE_BENCH_IMAGE="$work/input.jpg" wrk -t2 -c16 -d"${seconds}s" --latency \
  -s tests/bench/http_augment.lua "http://127.0.0.1:$port" | tee "$work/wrk.txt"
cpu_after=$(server_cpu)

if [[ $with_job == 1 ]]; then
  echo "== HTTP while a job runs: the same wrk run, the debug count job on the job runner"
  job=$(curl -sS -H 'Content-Type: application/json' \
    -d '{"kind": "count", "params": {"units": 100000}}' "http://127.0.0.1:$port/v1/jobs" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  AUGSERVE_BENCH_IMAGE="$work/input.jpg" wrk -t2 -c16 -d"${seconds}s" --latency \
    -s tests/bench/http_augment.lua "http://127.0.0.1:$port" | tee "$work/wrk-job.txt"
  state=$(curl -sS "http://127.0.0.1:$port/v1/jobs/$job" |
    /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["state"], d["progress"]["fraction"])')
  curl -sS -o /dev/null -X DELETE "http://127.0.0.1:$port/v1/jobs/$job"
  echo "the job was $state (state, fraction done) when wrk ended"
  echo "p99 of POST /v1/augment: $(awk '/p99 latency/ {print $3}' "$work/wrk.txt") ms without a" \
    "job, $(awk '/p99 latency/ {print $3}' "$work/wrk-job.txt") ms with one running"
fi

echo "== CLI: the same pipeline, one process per core"
cli_pids=()
for n in $(seq "$cores"); do
  build/augserve bench augment -p randaugment --size 224 --seconds "$seconds" \
    --image "$work/input.jpg" > "$work/cli.$n.json" &
  cli_pids+=($!)
done
wait "${cli_pids[@]}"
cli=$(cat "$work"/cli.*.json | /usr/bin/python3 -c \
  'import json,sys; print(sum(json.loads(l)["images_per_second"] for l in sys.stdin))')
http=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
echo "CLI total: $cli images/s on $cores cores"
/usr/bin/python3 - "$http" "$cli" "$cores" "$seconds" "$cpu_before" "$cpu_after" <<'PY'
import sys
http, cli, cores, seconds, before, after = map(float, sys.argv[1:])
per_cpu_http = http * seconds / (after - before)
per_cpu_cli = cli / cores
print(f"wall clock: HTTP {http:.1f} req/s, {100 * http / cli:.1f}% of the CLI (wrk shares the cores)")
print(f"per CPU second: HTTP {per_cpu_http:.1f} req, CLI {per_cpu_cli:.1f} images: "
      f"HTTP costs {100 * (1 - per_cpu_http / per_cpu_cli):.1f}%")
PY
