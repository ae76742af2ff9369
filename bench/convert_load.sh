#!/usr/bin/env bash
# convert_load.sh — run ON the GPU machine (after tools/gpu-prepare.sh here;
# same carry as tools/gpu-run.sh: build-gpu, .gpu) for issue 7's load
# figures: the conversion and verification GPU tests, then `hoist bench
# load` on one FLUX.1-dev-shaped pipeline written in F32 (plain load,
# --dtype bf16, each with and without --verify) and on the same shapes in
# BF16 (plain and --verify), runs interleaved so drift hits both sides.
# Every JSON line carries median/min/max GB/s, h2d_pinned_GBps measured in
# the same process, device_bytes (arenas) and peak_device_bytes (mem_info
# sampled from the progress callback).  Logs and JSON go to $OUT.
#   HOIST_CONV_SCALE  make-pipeline scale (default 0.15: about 5 GB in BF16,
#                     10 GB in F32)
# The breakdown step runs `hoist bench load -vv` (each component's
# allocation, upload, verify times and transfer counts on stderr) on the F32
# pipeline: plain, --dtype bf16, and each with --verify.
#   HOIST_CONV_STEPS  default "tests bench"; also "breakdown" and "pairs"
#   HOIST_CONV_ROUNDS interleaved rounds of the bench step (default 2)
#   HOIST_CONV_AB     rounds of a second bench step on the F32 files, each
#                     plain, --dtype bf16, plain again (so the two plain runs
#                     show the noise an A/A comparison has); default 0.
#                     bench/ab_summary.py prints the ratios.
#   HOIST_CONV_PAIRS  pairs of the "pairs" step (default 20): `hoist bench
#                     load --compare-dtype` in one process, each pair a plain
#                     and a converted load in alternating order, so drift
#                     between processes does not enter the ratio: F32 files
#                     against --dtype f32 (nothing converts: the method's
#                     A/A noise), --dtype bf16 and --dtype f16, and BF16
#                     files against --dtype f32 (an upcast).
set -uo pipefail
steps=${HOIST_CONV_STEPS:-"tests bench"}
scale=${HOIST_CONV_SCALE:-0.15}
rounds=${HOIST_CONV_ROUNDS:-2}
ab_rounds=${HOIST_CONV_AB:-0}
pairs=${HOIST_CONV_PAIRS:-20}
dir=${HOIST_BENCH_DIR:-/tmp/hoist-bench}

source tools/gpu-env.sh

if has tests; then
  (cd /work/main/build-gpu && ctest -R 'test_gpu_(convert_load|load|kernels)' -V) 2>&1 |
    grep -E 'SKIP|gpu peak|gpu verify|Checks|Passed|Failed|tests passed|F:|E:' | tee "$out/conv-tests.log"
fi

if has bench || has breakdown || has pairs; then
  for dt in f32 bf16; do
    if [ ! -f "$dir/flux-$dt/model_index.json" ]; then
      rm -rf "$dir/flux-$dt" && mkdir -p "$dir"
      "$hoist" make-pipeline --preset flux1-dev --scale "$scale" --seed 1 --dtype "$dt" \
        "$dir/flux-$dt" | tail -n 1
    fi
  done
fi

if has breakdown; then
  for args in "" "--dtype bf16" "--verify" "--dtype bf16 --verify"; do
    # shellcheck disable=SC2086
    "$hoist" bench load -vv --device cuda:0 --repeat 2 $args "$dir/flux-f32" 2>&1 |
      grep -v '^ *run ' | tee -a "$out/conv-breakdown.log"
  done
fi

if has bench; then
  "$hoist" plan --dtype bf16 "$dir/flux-f32" | head -n 8 | tee "$out/conv-plan.txt"
  run() { # label, args..
    local label=$1
    shift
    "$hoist" bench load --json --device cuda:0 --repeat 5 "$@" | sed "s/^{/{\"variant\":\"$label\",/"
  }
  {
    for round in $(seq "$rounds"); do
      run "f32 plain" "$dir/flux-f32"
      run "f32 --dtype bf16" --dtype bf16 "$dir/flux-f32"
      run "f32 --verify" --verify "$dir/flux-f32"
      run "f32 --dtype bf16 --verify" --dtype bf16 --verify "$dir/flux-f32"
      run "bf16 plain" "$dir/flux-bf16"
      run "bf16 --verify" --verify "$dir/flux-bf16"
    done
  } 2>&1 | tee "$out/conv-bench.jsonl"
  for round in $(seq "$ab_rounds"); do
    run "f32 plain" "$dir/flux-f32"
    run "f32 --dtype bf16" --dtype bf16 "$dir/flux-f32"
    run "f32 plain again" "$dir/flux-f32"
  done 2>&1 | tee "$out/conv-ab.jsonl"
  [ "$ab_rounds" -gt 0 ] && python3 bench/ab_summary.py "$out/conv-ab.jsonl" | tee "$out/conv-ab.txt"
fi
if has pairs; then
  pair() { # label, args..
    local label=$1
    shift
    "$hoist" bench load --json --device cuda:0 --repeat "$pairs" "$@" |
      sed "s/^{/{\"variant\":\"$label\",/"
  }
  {
    pair "f32 files, A-A" --compare-dtype f32 "$dir/flux-f32"
    pair "f32 files, bf16" --compare-dtype bf16 "$dir/flux-f32"
    pair "f32 files, f16" --compare-dtype f16 "$dir/flux-f32"
    pair "bf16 files, f32" --compare-dtype f32 "$dir/flux-bf16"
  } 2>&1 | tee "$out/conv-pairs.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        d = json.loads(line)
    except ValueError:
        print(line.rstrip())
        continue
    c = d["compare"]
    print("%-16s plain %.2f GB/s, --dtype %s %.2f GB/s; paired ratio median %.3f (min %.3f, max %.3f) over %d pairs; limit %.2f; peak %d / %d"
          % (d["variant"], d["median_GBps"], c["dtype"], c["median_GBps"], c["ratio_median"], c["ratio_min"],
             c["ratio_max"], d["runs"], d["h2d_pinned_GBps"], d["peak_device_bytes"], c["peak_device_bytes"]))'
fi
echo "convert_load: done"
