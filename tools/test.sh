#!/usr/bin/env bash
# test.sh — the README's test command (and CI's, through .ci/run): installs
# what is missing (tools/install-deps.sh: the Debian packages, and .venv with
# the official safetensors and numpy, which write the test vectors and are
# the differential tests' reference), then builds and runs the whole suite
# four ways:
#   1. build/        warnings as errors, every Check suite and differential
#                    test (GPU suites print a SKIP line where no GPU exists);
#   2. build-asan/   the same under AddressSanitizer + UBSan;
#   3. build-tsan/   the concurrency suites (ctest label `threads`) under
#                    ThreadSanitizer, which must report nothing;
#   4. build-fuzz/   clang + libFuzzer: the header parser and discovery
#                    (with a verified host load), sharing HOIST_FUZZ_SECONDS
#                    (default 120: 60 s each).
#   and the Python package's tests (pytest from .venv) against build/.
# `tools/test.sh --tsan` runs step 3 alone.  Each build writes its own
# vectors (<build>/vectors, the ctest fixture make_vectors); nothing outside
# the checkout is needed.  ../shared/vectors, when present, is checked as
# well.
set -euo pipefail
cd "$(dirname "$0")/.."

only_tsan=0
case "${1:-}" in
  "") ;;
  --tsan) only_tsan=1 ;;
  *) echo "usage: tools/test.sh [--tsan]" >&2; exit 2 ;;
esac

tools/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${HOIST_FUZZ_SECONDS:-120}

# ThreadSanitizer: a report fails the test (exit 66 from the forked test),
# and no report is suppressed.  The concurrency suites build their own
# inputs, so this step needs nothing beside the checkout.
tsan_step() {
  echo "== build-tsan (ThreadSanitizer, ctest -L threads)"
  local start=$SECONDS
  cmake -S . -B build-tsan -DHOIST_TSAN=ON -DHOIST_CUDA=OFF -DHOIST_WERROR=ON >/dev/null
  cmake --build build-tsan -j"$jobs" --target thread_suites
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
     ctest --output-on-failure -j"$jobs" -L threads)
  echo "tsan: clean in $((SECONDS - start)) s"
}

if [ "$only_tsan" = 1 ]; then
  tsan_step
  exit 0
fi

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

tsan_step

echo "== fuzz (libFuzzer, ${fuzz_seconds}s: header parser, then discovery)"
CC=clang cmake -S . -B build-fuzz -DHOIST_FUZZ=ON -DHOIST_CUDA=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors fuzz_discover
# The two harnesses share the budget; each keeps its corpus between runs.
header_seconds=$(((fuzz_seconds + 1) / 2))
discover_seconds=$((fuzz_seconds - header_seconds))
mkdir -p build-fuzz/corpus build-fuzz/corpus-discover
# (-max_total_time=0 would mean no limit: a harness with no time is skipped.)
if ((header_seconds > 0)); then
  build-fuzz/tests/fuzz/fuzz_safetensors -max_total_time="$header_seconds" -max_len=65536 \
    -rss_limit_mb=2048 build-fuzz/corpus tests/fuzz/seeds 2>&1 | tail -n 5
fi
if ((discover_seconds > 0)); then
  build-fuzz/tests/fuzz/fuzz_discover -max_total_time="$discover_seconds" -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 -dict=tests/fuzz/discover.dict \
    build-fuzz/corpus-discover tests/fuzz/seeds-discover 2>&1 | tail -n 5
fi
echo "fuzz: ${header_seconds}s (header parser) + ${discover_seconds}s (discovery) without a crash"
