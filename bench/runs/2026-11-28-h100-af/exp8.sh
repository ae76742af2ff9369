#!/usr/bin/env bash
# experiment (not committed): discard the scratch's L2 lines after conversion (HOIST_EXP_DISCARD=1)
set -uo pipefail
steps="x"
source tools/gpu-env.sh >/dev/null
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
d=$root/.gpu/hoist-discard
pair() { local label=$1 disc=$2; shift 2
  HOIST_EXP_DISCARD=$disc "$d" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "bf16" 0 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 discard" 1 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16" 0 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 discard" 1 --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp8.jsonl" | python3 /tmp/pp.py
HOIST_EXP_DISCARD=1 "$d" load --device cuda:0 --dtype bf16 --verify "$dir/flux-f32" > /dev/null 2>&1; echo "discard load --verify: exit $?"
echo done
