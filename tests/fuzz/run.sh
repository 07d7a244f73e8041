#!/usr/bin/env bash
# Runs every fuzz target (one per tests/fuzz/fuzz_<name>.c) for a bounded time, with leak
# detection, on a scratch copy of its seeds, so the checked-in corpus is never modified. A crash,
# leak, timeout or out-of-memory fails the run: the target's report and every input libFuzzer
# kept for it are printed, the inputs as hex. See tests/fuzz/README.md.
#   tests/fuzz/run.sh <build dir with the fuzz targets> [seconds per target, default 30]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 <build dir> [seconds]" >&2; exit 2; }
build=$(cd "$1" && pwd)
seconds=${2:-30}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The decoder's seeds are the codec parity fixtures, already small images of every format.
seeds_of() {
  case $1 in
    decode) echo "$root/tests/parity/fixtures/codec" ;;
    *) echo "$root/tests/fuzz/corpus/$1" ;;
  esac
}

failed=()
for source in "$root"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$source" .c)
  name=${name#fuzz_}
  target="$build/fuzz_$name"
  seeds=$(seeds_of "$name")
  work="$scratch/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [[ ! -x "$target" || ! -d "$seeds" ]]; then
    echo "fuzz: $name: no $target or no seeds in $seeds" >&2
    failed+=("$name")
    continue
  fi
  cp -R "$seeds/." "$work/corpus/"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1
           -artifact_prefix="$work/artifacts/" -print_final_stats=1)
  [[ -f "$root/tests/fuzz/$name.dict" ]] && options+=(-dict="$root/tests/fuzz/$name.dict")
  echo "fuzz: $name for ${seconds}s on $(find "$seeds" -type f | wc -l) seeds"
  status=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$target" "${options[@]}" "$work/corpus" >"$work/log" 2>&1 || status=$?
  artifacts=("$work"/artifacts/*)
  [[ -e "${artifacts[0]}" ]] || artifacts=()
  if [[ $status -eq 0 && ${#artifacts[@]} -eq 0 ]]; then
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units)' "$work/log" || true
    continue
  fi
  failed+=("$name")
  echo "fuzz: $name FAILED (exit $status); its report:" >&2
  # The sanitizer's report and libFuzzer's summary, not the progress lines before them.
  grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED|RELOAD)' "$work/log" |
    tail -n 80 >&2 || true
  for artifact in "${artifacts[@]}"; do
    echo "fuzz: $name: input $(basename "$artifact") ($(wc -c <"$artifact") bytes), as hex:" >&2
    od -An -tx1 -v "$artifact" >&2
    # Allocation stacks are cut short by system libraries built without frame pointers unless
    # they are unwound the slow way, too slow for fuzzing but fine for one input.
    echo "fuzz: $name: $(basename "$artifact") run again alone, with whole allocation stacks:" >&2
    ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 UBSAN_OPTIONS=print_stacktrace=1 \
      "$target" -timeout=10 -rss_limit_mb=2048 "$artifact" 2>&1 |
      sed -n '/ERROR: /,/^SUMMARY: /p' >&2 || true
  done
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash, leak or timeout"
