#!/usr/bin/env bash
# experiment: deferred conversion; the scratch split over all 12 readers
# (HOIST_EXP_ALL_READERS=1: smaller slots) against as many 4 MiB slot pairs
# as fit (8 readers at 64M), paired against plain loads in one process.
set -uo pipefail
export HOIST_CONV_STEPS="pairs" HOIST_CONV_PAIRS=1
bash bench/convert_load.sh > /dev/null 2>&1   # writes the pipelines
source tools/gpu-env.sh >/dev/null
dir=/tmp/hoist-bench
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1 all=$2; shift 2
  if [ "$all" = 1 ]; then export HOIST_EXP_ALL_READERS=1; else unset HOIST_EXP_ALL_READERS; fi
  "$hoist" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "A-A" 0 --compare-dtype f32 "$dir/flux-f32"
pair "bf16 64M all" 1 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 64M fit" 0 --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 96M" 0 --scratch 96M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 48M all" 1 --scratch 48M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 32M all" 1 --scratch 32M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 16M all" 1 --scratch 16M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 64M all" 1 --compare-dtype bf16 "$dir/flux-f32"
pair "f16 64M all" 1 --compare-dtype f16 "$dir/flux-f32"
pair "bf16->f32 64M all" 1 --compare-dtype f32 "$dir/flux-bf16"
pair "bf16->f32 96M" 0 --scratch 96M --compare-dtype f32 "$dir/flux-bf16"
} 2>&1 | tee "$out/exp-readers.jsonl" | python3 /tmp/pp.py
echo done
