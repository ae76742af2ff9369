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
#   4. build-fuzz/   clang + libFuzzer, sharing HOIST_FUZZ_SECONDS (default
#                    160): 3/8 each on the header parser and on discovery
#                    (with a verified host load), 1/8 each on hoist serve's
#                    HTTP path and on its control-socket messages;
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
fuzz_seconds=${HOIST_FUZZ_SECONDS:-160}

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

echo "== fuzz (libFuzzer, ${fuzz_seconds}s: header parser, discovery, HTTP, control socket)"
CC=clang cmake -S . -B build-fuzz -DHOIST_FUZZ=ON -DHOIST_CUDA=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors fuzz_discover fuzz_http fuzz_control
# fuzz NAME SECONDS SEEDS [libFuzzer options]: one harness for its share of
# the budget, keeping its corpus between runs (-max_total_time=0 would mean
# no limit: a harness given no time is skipped).
fuzz() {
  local name=$1 seconds=$2 seeds=$3
  shift 3
  ((seconds > 0)) || return 0
  mkdir -p "build-fuzz/corpus-$name"
  "build-fuzz/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/ "$@" "build-fuzz/corpus-$name" "$seeds" 2>&1 | tail -n 3
  echo "fuzz_$name: ${seconds}s without a crash"
}
eighth=$((fuzz_seconds / 8))
fuzz safetensors $((3 * eighth)) tests/fuzz/seeds -max_len=65536
fuzz discover $((fuzz_seconds - 5 * eighth)) tests/fuzz/seeds-discover -max_len=16384 -timeout=10 \
  -dict=tests/fuzz/discover.dict
fuzz http "$eighth" tests/fuzz/seeds_http -max_len=65536
fuzz control "$eighth" tests/fuzz/seeds_control -max_len=65536
