# gpu-env.sh — sourced from the repository root by the scripts that run on
# the GPU machine (tools/gpu-run.sh, bench/convert_load.sh).  Defines
#   $root     the checkout
#   $build    the build folder made by tools/gpu-prepare.sh (HOIST_BUILD,
#             default build-gpu); its binaries find their libraries in
#             $build/lib themselves
#   $hoist    the CLI in it
#   $out      where logs and JSON go (OUT, default /tmp/hoist-out)
#   has STEP  whether STEP is one of $steps
#   gpu_tests every GPU suite of the build, run directly (ctest's files hold
#             the paths of the machine that built them)
# installs the wheels carried in $build/wheels into a private folder on
# PYTHONPATH, and records the card in $out/gpu.txt.
root=$PWD
build=${HOIST_BUILD:-$root/build-gpu}
out=${OUT:-/tmp/hoist-out}
hoist=$build/hoist
mkdir -p "$out"
if [ ! -x "$hoist" ]; then
  echo "no $hoist: run tools/gpu-prepare.sh where the CUDA toolkit is, then copy the build here" >&2
  exit 1
fi
export PYTHONUNBUFFERED=1
if ls "$build"/wheels/*.whl >/dev/null 2>&1; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$build"/wheels/*.whl && export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current \
  --format=csv | tee "$out/gpu.txt"

has() { [[ " $steps " == *" $1 "* ]]; }

# The suites ctest labels gpu (tests/test_gpu_*.c), unforked as there: CUDA
# does not survive Check's fork.  Returns nonzero when one fails.
gpu_tests() {
  local t n=0 failed=0
  for t in "$build"/tests/test_gpu_*; do
    [ -x "$t" ] || continue
    n=$((n + 1))
    if CK_FORK=no "$t"; then
      echo "PASS ${t##*/}"
    else
      echo "FAIL ${t##*/}"
      failed=$((failed + 1))
    fi
  done
  echo "gpu suites: $((n - failed)) of $n passed"
  [ "$n" -gt 0 ] && [ "$failed" -eq 0 ]
}
