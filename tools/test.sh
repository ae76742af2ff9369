#!/usr/bin/env bash
# test.sh — the README's test command (and CI's, through .ci/run): installs
# what is missing, then builds and runs the whole suite three ways:
#   1. build/        warnings as errors, every Check suite and differential
#                    test (GPU suites print a SKIP line where no GPU exists);
#   2. build-asan/   the same under AddressSanitizer + UBSan;
#   3. build-fuzz/   clang + libFuzzer on the header parser for 60 s;
# and the Python package's tests (pytest from .venv) against build/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${HOIST_FUZZ_SECONDS:-60}

echo "== build (warnings as errors)"
cmake -S . -B build -DHOIST_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== python (the hoist package built into build/python, pytest from .venv)"
cmake -S . -B build -DHOIST_PYTHON=ON -DPython3_EXECUTABLE="$PWD/.venv/bin/python" >/dev/null
cmake --build build -j"$jobs" --target hoist_python hoist_cli
HOIST_CLI="$PWD/build/hoist" PYTHONPATH="$PWD/build/python" .venv/bin/python -m pytest -q -rs \
  python/tests

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
