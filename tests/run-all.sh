#!/usr/bin/env bash
# Builds augserve and runs every test twice: a Release build with -Werror, then a build under
# AddressSanitizer and UndefinedBehaviorSanitizer; the browser tests of the web UI run once, on
# the Release build; then every fuzz target runs for 30 s. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAUGSERVE_WERROR=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

# The web UI in a real Chromium against the Release binary; screenshots land in build/. Once, not
# again under the sanitizers: the browser tests check the pages, and the routes they call are
# already run under ASan/UBSan by the integration tests.
(cd tests/browser && npm ci --no-audit --no-fund)
node tests/browser/run.mjs build/augserve build

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAUGSERVE_WERROR=ON \
  -DAUGSERVE_SANITIZE=address,undefined
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure

# Every libFuzzer target (clang, ASan, UBSan) for 30 s with leak detection, on a scratch copy of
# its seeds; a crash, leak or timeout fails the run with the input printed as hex.
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DAUGSERVE_WERROR=ON -DAUGSERVE_FUZZ=ON \
  -DAUGSERVE_SANITIZE=address,undefined -DBUILD_TESTING=OFF
cmake --build build-fuzz -j"$jobs" --target fuzzers
tests/fuzz/run.sh build-fuzz 30
