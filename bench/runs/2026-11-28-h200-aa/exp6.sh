#!/usr/bin/env bash
# experiment (not committed): three pinned slots per reader (deeper queue per stream)
set -uo pipefail
steps="x"
source tools/gpu-env.sh
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1 bin=$2; shift 2
  "$bin" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
d3=$root/.gpu/hoist-d3
{
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "d3 bf16" "$d3" --compare-dtype bf16 "$dir/flux-f32"
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "d3 bf16" "$d3" --compare-dtype bf16 "$dir/flux-f32"
pair "d3 f16" "$d3" --compare-dtype f16 "$dir/flux-f32"
pair "cur f16" "$hoist" --compare-dtype f16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp6.jsonl" | python3 /tmp/pp.py
echo done
