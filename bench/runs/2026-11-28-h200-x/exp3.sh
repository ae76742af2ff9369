#!/usr/bin/env bash
# experiment (not committed): conversion grid cap in the upload path, paired in-process
set -uo pipefail
steps="x"
source tools/gpu-env.sh
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1 cap=$2; shift 2
  HOIST_EXP_CVT_BLOCKS=$cap "$hoist" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "A-A" 0 --compare-dtype f32 "$dir/flux-f32"
pair "bf16 full" 0 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 cap264" 264 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 cap66" 66 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 cap16" 16 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 cap4" 4 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 full again" 0 --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp3.jsonl" | python3 /tmp/pp.py
HOIST_EXP_CVT_BLOCKS=16 "$hoist" bench load -vv --device cuda:0 --repeat 2 --dtype bf16 "$dir/flux-f32" 2>&1 | grep -E "transformer: [0-9]+ bytes"
echo done
