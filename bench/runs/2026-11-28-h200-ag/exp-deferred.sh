#!/usr/bin/env bash
# experiment: deferred conversion (copy stream holds copies only, two scratch
# slots per reader); gpu tests, then paired loads at several scratch sizes.
set -uo pipefail
export HOIST_CONV_STEPS="tests pairs" HOIST_CONV_PAIRS=${PAIRS:-20}
bash bench/convert_load.sh
source tools/gpu-env.sh >/dev/null
dir=/tmp/hoist-bench
sed -n "/python3 -c '/,/^fi/p" bench/convert_load.sh | sed '1d' | sed '$d' | sed '$s/.$//' > /tmp/pp.py
pair() { local label=$1; shift
  "$hoist" bench load --json --device cuda:0 --repeat ${PAIRS:-20} "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
{
pair "bf16 scratch 96M" --scratch 96M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 scratch 32M" --scratch 32M --compare-dtype bf16 "$dir/flux-f32"
pair "A-A threads 8" --threads 8 --compare-dtype f32 "$dir/flux-f32"
pair "bf16 threads 8" --threads 8 --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp-scratch.jsonl" | python3 /tmp/pp.py
"$hoist" load --device cuda:0 --dtype bf16 --verify "$dir/flux-f32" > /dev/null; echo "load --dtype bf16 --verify: exit $?"
"$hoist" bench load -vv --device cuda:0 --repeat 1 --dtype bf16 "$dir/flux-f32" 2>&1 | grep -E "transfers|GB/s" | head -8
echo done
