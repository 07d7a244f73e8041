#!/usr/bin/env bash
# The one list of Debian 12 packages augserve needs, used by the README, CI and the Dockerfile.
#   docker/install-deps.sh            build, test and run (developers, CI, the build stage)
#   docker/install-deps.sh --runtime  run only (the runtime stage of the image)
# Idempotent: installs only what is missing, and fails loudly when apt does.
set -euo pipefail

build_packages=(
  build-essential cmake pkg-config clang-format
  libmicrohttpd-dev   # HTTP server
  libjansson-dev      # JSON
  libssl-dev          # SHA-256, constant-time compare, random keys
  libsqlite3-dev      # embedded store
  libpq-dev           # the store on PostgreSQL (store: postgresql://...)
  postgresql-15       # the PostgreSQL store tests start a server of their own (tests/pg/pg-start.sh)
  libturbojpeg0-dev   # JPEG fast path
  libspng-dev         # PNG fast path
  libvips-dev         # every other format, EXIF/ICC, large images, resizing
  libprotobuf-c-dev protobuf-c-compiler # ONNX model files
  libdnnl-dev         # neural-network executor (oneDNN)
  libsndfile1-dev     # audio decoding and encoding (WAV, AIFF, FLAC; not Ogg: see libopusfile)
  libvorbis-dev       # Ogg Vorbis decoding (libvorbisfile)
  libopusfile-dev     # Ogg Opus decoding: libsndfile's Ogg reader leaks on crafted streams
  libmpg123-dev       # MP3 decoding
  libsoxr-dev         # audio resampling
  libfftw3-dev        # STFT for log-mel features
  libarchive-dev      # dataset archives: reads tar, gzip and zip safely and streams them, so the
                      # project writes no decompressor of its own
  libcmocka-dev       # unit tests
  libcurl4-openssl-dev # HTTP client: augserve search (a client of a server), integration tests
  libonnx-testdata    # real ONNX models for the model-file tests
  # The reference implementations parity tests generate their large fixtures with at test time
  # (tests/parity/gen_torchvision.py, gen_lpips.py) or check the engine's exports with
  # (gen_zoo.py: onnx.checker, PyTorch, scipy's Kolmogorov-Smirnov test); without them those
  # tests skip.
  python3-torchvision python3-torchaudio python3-onnx python3-skimage python3-scipy
  chromium nodejs     # the web UI's browser tests (tests/browser: playwright-core drives chromium)
  # The fuzz targets (tests/fuzz): clang, its libFuzzer and sanitizer runtimes (only recommended by
  # clang, so named here), clang's OpenMP headers for the engine, llvm-symbolizer for stack traces.
  clang libclang-rt-dev libomp-dev llvm
  ca-certificates curl
)
runtime_packages=(
  libmicrohttpd12 libjansson4 libssl3 libsqlite3-0 libpq5 libturbojpeg0 libspng0 libvips42
  libprotobuf-c1 libdnnl2 libsndfile1 libvorbisfile3 libopusfile0 libmpg123-0 libsoxr0 libfftw3-single3
  libarchive13 # dataset archives (tar, gzip, zip)
  libcurl4     # augserve search: the command-line client of a running server
  ca-certificates curl # curl: the image's HEALTHCHECK
)

case "${1:-}" in
  "") packages=("${build_packages[@]}") ;;
  --runtime) packages=("${runtime_packages[@]}") ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# npm: Debian's own package, unless the installed nodejs already brings the command (NodeSource's
# nodejs bundles npm and conflicts with Debian's npm package).
if [[ -z "${1:-}" ]] && ! command -v npm >/dev/null && ! dpkg-query -W -f='${Status}' npm 2>/dev/null |
  grep -q "install ok installed"; then
  missing+=(npm)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
