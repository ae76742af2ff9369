#!/usr/bin/env bash
# Check of the review fixes (conversion streams only for converting jobs): all gpu tests and the shared
# vectors (gpu-run.sh tests), a plain load's device peak in a fresh process,
# then the pairs step (10 pairs).
set -uo pipefail
final=$OUT; res=/tmp/res && mkdir -p $res/c $res/g
OUT=$res/g HOIST_GPU_STEPS="tests" bash tools/gpu-run.sh > $res/g/gpu-run.log 2>&1
grep -E "tests passed|Failed|exit" $res/g/gpu-run.log
OUT=$res/c HOIST_CONV_STEPS="pairs" HOIST_CONV_PAIRS=${PAIRS:-10} bash bench/convert_load.sh > $res/c/convert_load.log 2>&1
grep -E "ratio" $res/c/convert_load.log
source tools/gpu-env.sh > /dev/null
"$hoist" bench load --json --device cuda:0 --repeat 2 /tmp/hoist-bench/flux-f32 | tee $res/c/plain-peak.json | grep -o '"device_bytes.*'
tar czf $final/all.tgz -C $res .
"$hoist" bench load -vv --device cuda:0 --repeat 1 --dtype bf16 /tmp/hoist-bench/flux-f32 2>&1 | grep -E "transformer|text_encoder_2" | tee $res/c/vv.txt
tar czf $final/all.tgz -C $res .
