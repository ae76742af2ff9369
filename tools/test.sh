#!/usr/bin/env bash
# test.sh — the README's test command (and CI's, through .ci/run): installs
# what is missing, then builds and runs the whole suite three ways:
#   1. build/        warnings as errors, every Check suite and differential
#                    test (GPU suites print a SKIP line where no GPU exists);
#   2. build-asan/   the same under AddressSanitizer + UBSan;
#   3. build-fuzz/   clang + libFuzzer on the header parser for 60 s, and on
#                    hoist serve's HTTP path and control messages for 10 s each.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${HOIST_FUZZ_SECONDS:-60}

echo "== build (warnings as errors)"
cmake -S . -B build -DHOIST_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== build-asan (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -DHOIST_SANITIZE=ON -DHOIST_CUDA=OFF -DHOIST_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -LE gpu)

echo "== fuzz (libFuzzer, ${fuzz_seconds}s)"
CC=clang cmake -S . -B build-fuzz -DHOIST_FUZZ=ON -DHOIST_CUDA=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors
mkdir -p build-fuzz/corpus
build-fuzz/tests/fuzz/fuzz_safetensors -max_total_time="$fuzz_seconds" -max_len=65536 \
  -rss_limit_mb=2048 build-fuzz/corpus tests/fuzz/seeds 2>&1 | tail -n 5
echo "fuzz: ${fuzz_seconds}s without a crash"

# hoist serve: the HTTP request path and the control socket's messages, a
# few seconds each (HOIST_FUZZ_SERVE_SECONDS).
serve_fuzz_seconds=${HOIST_FUZZ_SERVE_SECONDS:-10}
cmake --build build-fuzz -j"$jobs" --target fuzz_http fuzz_control
for target in http control; do
  mkdir -p "build-fuzz/corpus_$target"
  "build-fuzz/tests/fuzz/fuzz_$target" -max_total_time="$serve_fuzz_seconds" -max_len=65536 \
    -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ "build-fuzz/corpus_$target" \
    "tests/fuzz/seeds_$target" 2>&1 | tail -n 2
  echo "fuzz_$target: ${serve_fuzz_seconds}s without a crash"
done
