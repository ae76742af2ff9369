#!/usr/bin/env bash
# experiment (not committed): scratch ring size (L2-resident or not), paired in-process
set -uo pipefail
steps="x"
source tools/gpu-env.sh
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1; shift
  "$hoist" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "bf16 s64" --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s12" --scratch 12M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s24" --scratch 24M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s6" --scratch 6M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s64" --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s12" --scratch 12M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 s24" --scratch 24M --compare-dtype bf16 "$dir/flux-f32"
pair "A-A" --compare-dtype f32 "$dir/flux-f32"
} 2>&1 | tee "$out/exp5.jsonl" | python3 /tmp/pp.py
for s in 12M 64M; do "$hoist" bench load -vv --device cuda:0 --repeat 1 --scratch $s --dtype bf16 "$dir/flux-f32" 2>&1 | grep -E "transformer: [0-9]+ bytes"; done
echo done
