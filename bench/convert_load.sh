#!/usr/bin/env bash
# convert_load.sh — runs on the GPU machine, from the root of a checkout that
# holds a build folder made by tools/gpu-prepare.sh (bench/README.md): what
# converting and verifying cost during a load.  It writes one
# FLUX.1-dev-shaped pipeline in F32 and the same shapes in BF16, then:
#   tests  the GPU suites
#   bench  `hoist bench load --repeat 5` of the F32 files plain, --dtype bf16,
#          --verify and --dtype bf16 --verify, and of the BF16 files plain and
#          --verify, in HOIST_CONV_ROUNDS interleaved rounds (default 2), so
#          drift between processes hits every variant alike
#   pairs  `hoist bench load --compare-dtype T --repeat HOIST_CONV_PAIRS`
#          (default 20): a plain and a converted load per pair, in one process
#          and alternating order, so the drift between processes does not
#          enter the ratio: F32 files against f32 (nothing converts: the
#          method's own noise), bf16 and f16, and BF16 files against f32
# Every JSON line carries median/min/max GB/s, h2d_pinned_GBps measured in
# the same process, device_bytes (arenas) and peak_device_bytes (mem_info
# sampled from the progress callback).  Logs and JSON go to $OUT.
#   HOIST_CONV_STEPS  default "tests bench"
#   HOIST_CONV_SCALE  make-pipeline scale (default 0.15: 10.12 GB in F32,
#                     5.06 GB in BF16)
#   HOIST_BENCH_DIR   where the pipelines are written (default /tmp/hoist-bench)
#   HOIST_BUILD       the build folder (default build-gpu)
set -uo pipefail
steps=${HOIST_CONV_STEPS:-"tests bench"}
scale=${HOIST_CONV_SCALE:-0.15}
rounds=${HOIST_CONV_ROUNDS:-2}
pairs=${HOIST_CONV_PAIRS:-20}
dir=${HOIST_BENCH_DIR:-/tmp/hoist-bench}

source tools/gpu-env.sh

if has tests; then
  gpu_tests 2>&1 | tee "$out/conv-tests.log"
fi

if has bench || has pairs; then
  for dt in f32 bf16; do
    if [ ! -f "$dir/flux-$dt-$scale/model_index.json" ]; then
      rm -rf "$dir/flux-$dt-$scale" && mkdir -p "$dir"
      "$hoist" make-pipeline --preset flux1-dev --scale "$scale" --seed 1 --dtype "$dt" \
        "$dir/flux-$dt-$scale" | tail -n 1
    fi
  done
fi

if has bench; then
  "$hoist" plan --dtype bf16 "$dir/flux-f32-$scale" | head -n 8 | tee "$out/conv-plan.txt"
  run() { # label, args..
    local label=$1
    shift
    "$hoist" bench load --json --device cuda:0 --repeat 5 "$@" | sed "s/^{/{\"variant\":\"$label\",/"
  }
  {
    for round in $(seq "$rounds"); do
      run "f32 plain" "$dir/flux-f32-$scale"
      run "f32 --dtype bf16" --dtype bf16 "$dir/flux-f32-$scale"
      run "f32 --verify" --verify "$dir/flux-f32-$scale"
      run "f32 --dtype bf16 --verify" --dtype bf16 --verify "$dir/flux-f32-$scale"
      run "bf16 plain" "$dir/flux-bf16-$scale"
      run "bf16 --verify" --verify "$dir/flux-bf16-$scale"
    done
  } 2>&1 | tee "$out/conv-bench.jsonl"
fi
if has pairs; then
  pair() { # label, args..
    local label=$1
    shift
    "$hoist" bench load --json --device cuda:0 --repeat "$pairs" "$@" |
      sed "s/^{/{\"variant\":\"$label\",/"
  }
  {
    pair "f32 files, A-A" --compare-dtype f32 "$dir/flux-f32-$scale"
    pair "f32 files, bf16" --compare-dtype bf16 "$dir/flux-f32-$scale"
    pair "f32 files, f16" --compare-dtype f16 "$dir/flux-f32-$scale"
    pair "bf16 files, f32" --compare-dtype f32 "$dir/flux-bf16-$scale"
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
