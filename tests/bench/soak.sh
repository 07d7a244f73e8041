#!/usr/bin/env bash
# Load and soak: wrk holds CONNECTIONS connections open for SECONDS against the Release server,
# replaying a mix of valid requests to every route, invalid ones and hostile ones (the fuzz
# corpora; tests/bench/soak_requests.py writes them), while the server's RSS is sampled. Prints
# the answers by route, by kind of request and by status class, every 5xx with the request that
# got it, p50/p99 latency, RSS at the start, after warm-up (10% of the run) and at the end, and a
# verdict on the goals: no 5xx but the documented 503, RSS within 5% of its warm-up value.
#   tests/bench/soak.sh [SECONDS] [CONNECTIONS]    (defaults 600 and 64)
# Needs a Release build in build/ (it builds nothing), python3, curl and wrk (Debian: apt-get
# install wrk; a benchmark tool, not a dependency of the tests). Set SOAK_KEEP=1 to keep the work
# folder (the request files, RSS samples, the server's log).
# Exit status: 0 when both goals are met, 1 when the server died or stopped answering /healthz,
# 3 when it is alive but a goal was missed, 2 for bad arguments or a missing tool.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
connections=${2:-64}
threads=2
sample_every=2
fail() { echo "$1" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ && "$connections" =~ ^[0-9]+$ ]] &&
  ((seconds >= 10 && connections >= threads)) ||
  fail "usage: $0 [SECONDS >= 10] [CONNECTIONS >= $threads]"
command -v wrk > /dev/null ||
  fail "soak.sh needs wrk: apt-get install wrk (Debian), or build github.com/wg/wrk"
[[ -x build/augserve ]] || fail "soak.sh needs a Release build: cmake -S . -B build \
-DCMAKE_BUILD_TYPE=Release && cmake --build build"

work=$(mktemp -d)
server=
sampler=
cleanup() {
  [[ -n "$sampler" ]] && kill "$sampler" 2> /dev/null
  [[ -n "$server" ]] && kill "$server" 2> /dev/null && wait "$server" 2> /dev/null
  if [[ -n "${SOAK_KEEP:-}" ]]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The models of the README's examples; the LPIPS model only when the tests have generated it.
mkdir -p "$work/models"
cp -r tests/parity/fixtures/models/*/ tests/parity/fixtures/predict/*/ "$work/models/"
lpips=
if [[ -f build/lpips-fixtures/models/alex/model.onnx ]]; then
  cp -r build/lpips-fixtures/models/alex "$work/models/"
  lpips=--lpips
fi

source tests/bench/server.sh
start_server "$work/server.log" --access-log off --debug-routes false \
  --models-dir "$work/models" --data-dir "$work/var" --static-dir static
base="http://127.0.0.1:$port"

etag=$(curl -sfI "$base/" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
/usr/bin/python3 tests/bench/soak_requests.py "$work/requests" ${etag:+--etag "$etag"} $lpips

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }
rss_start=$(rss)
# One line per sample: seconds since the load started, RSS in kB.
start_ns=$(date +%s%N)
elapsed() { echo $((($(date +%s%N) - start_ns) / 1000000000)); }
(
  while kill -0 "$server" 2> /dev/null; do
    echo "$(elapsed) $(rss)"
    sleep "$sample_every"
  done
) > "$work/rss.txt" 2> /dev/null &
sampler=$!

echo "== wrk -t$threads -c$connections -d${seconds}s against $base (workers: one per core)"
SOAK_REQUESTS="$work/requests/requests.tsv" SOAK_RESULTS="$work/results.tsv" \
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 65s --latency \
  -s tests/bench/soak.lua "$base" -- "$threads" | tee "$work/wrk.txt"
kill -0 "$server" 2> /dev/null && echo "$(elapsed) $(rss)" >> "$work/rss.txt"
kill "$sampler" 2> /dev/null || true
sampler=
# wrk runs on with its default request when the script fails to load; then nothing was measured.
[[ -f "$work/results.tsv" ]] || fail "soak.lua wrote no results: see wrk's messages above"

alive=yes
if ! kill -0 "$server" 2> /dev/null || ! curl -sf -m 10 "$base/healthz" > /dev/null; then
  alive=no
fi

if [[ $alive == yes ]]; then
  echo
  echo "== the server's own count of 5xx answers (/metrics; it also counts answers to requests"
  echo "   whose client left, such as the ones wrk abandons when its time is up)"
  curl -s -m 10 "$base/metrics" > "$work/metrics.txt" || true
  awk '/^augserve_http_requests_total/ && /status="5/ {print; n++} END {if (!n) print "none"}' \
    "$work/metrics.txt"
  grep '^augserve_requests_stopped_total' "$work/metrics.txt" || true
fi

echo
echo "== RSS (VmRSS, sampled every ${sample_every} s)"
warm_at=$((seconds / 10))
# rss.txt: start, after warm-up (the first sample at or past 10% of the run), end (the last),
# the peak after warm-up, and the least-squares slope after warm-up in MB per minute.
read -r rss_warm rss_end rss_peak slope < <(awk -v warm_at="$warm_at" '
  $1 >= warm_at && !warm {warm = $2}
  $1 >= warm_at {n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; if ($2 > peak) peak = $2}
  {end = $2}
  END {
    slope = n > 1 && n * sxx != sx * sx ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
    printf "%d %d %d %.3f\n", warm, end, peak, slope * 60 / 1024
  }' "$work/rss.txt")
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN {
  g = sprintf("%.1f", a ? 100 * (b - a) / a : 0); print g == "-0.0" ? "0.0" : g }')
awk -v s="$rss_start" -v w="$rss_warm" -v e="$rss_end" -v p="$rss_peak" -v at="$warm_at" \
  -v g="$growth" -v slope="$slope" -v n="$(wc -l < "$work/rss.txt")" 'BEGIN {
  printf "start %.1f MB, after warm-up (%d s) %.1f MB, end %.1f MB: %s%% after warm-up\n",
    s / 1024, at, w / 1024, e / 1024, g
  printf "peak after warm-up %.1f MB; trend after warm-up %s MB/min (least squares, %d samples)\n",
    p / 1024, slope, n }'

# results.tsv: name, class, route, expected, status, count.
bad5xx=$(awk -F'\t' '$5 >= 500 && $5 != 503 {n += $6} END {print n + 0}' "$work/results.tsv")
n503=$(awk -F'\t' '$5 == 503 {n += $6} END {print n + 0}' "$work/results.tsv")
rss_ok=$(awk -v g="$growth" 'BEGIN {print (g <= 5 ? "yes" : "no")}')
echo
echo "== verdict"
echo "server alive at the end (GET /healthz): $alive"
verdict() { if "$@"; then echo met; else echo MISSED; fi; }
echo "5xx other than 503: $bad5xx ($n503 x 503) -> $(verdict test "$bad5xx" -eq 0)"
echo "RSS growth after warm-up: $growth% (goal <= 5%) -> $(verdict test "$rss_ok" = yes)"
if [[ $alive == no ]]; then
  echo "the server is gone or not answering; the end of its log (without the rejected uploads):"
  grep -v '"event":"model_unavailable"' "$work/server.log" | tail -20
  exit 1
fi
[[ $bad5xx -eq 0 && $rss_ok == yes ]] || exit 3
