#!/usr/bin/env bash
# experiment (not committed): current (one stream per reader) vs pool (scratch pool + conversion stream), paired in-process
set -uo pipefail
steps="x"
source tools/gpu-env.sh
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pool=$root/.gpu/hoist-pool
pair() { local label=$1 bin=$2; shift 2
  "$bin" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "cur A-A" "$hoist" --compare-dtype f32 "$dir/flux-f32"
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "pool bf16" "$pool" --compare-dtype bf16 "$dir/flux-f32"
pair "pool bf16 s96" "$pool" --scratch 96M --compare-dtype bf16 "$dir/flux-f32"
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "pool bf16" "$pool" --compare-dtype bf16 "$dir/flux-f32"
pair "pool bf16 s96" "$pool" --scratch 96M --compare-dtype bf16 "$dir/flux-f32"
pair "cur bf16 s96" "$hoist" --chunk 8M --scratch 96M --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp4.jsonl" | python3 /tmp/pp.py
echo done
