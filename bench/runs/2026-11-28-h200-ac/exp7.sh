#!/usr/bin/env bash
# experiment (not committed): scratch pool + conversion stream whose copy stream
# has no cross-stream waits (host checks the slot's last conversion), paired in-process
set -uo pipefail
steps="x"
source tools/gpu-env.sh
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1 bin=$2; shift 2
  "$bin" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
hw=$root/.gpu/hoist-poolhw
{
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "poolhw bf16" "$hw" --compare-dtype bf16 "$dir/flux-f32"
pair "cur bf16" "$hoist" --compare-dtype bf16 "$dir/flux-f32"
pair "poolhw bf16" "$hw" --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp7.jsonl" | python3 /tmp/pp.py
"$hw" bench load -vv --device cuda:0 --repeat 1 --dtype bf16 "$dir/flux-f32" 2>&1 | grep -E "transformer: [0-9]+ bytes"
echo done
