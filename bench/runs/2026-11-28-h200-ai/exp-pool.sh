#!/usr/bin/env bash
# experiment: deferred conversion through a scratch pool shared by the 12
# readers (16 slots of 4 MiB at the default 64M); gpu tests, the pairs step,
# then bf16 pairs at other scratch sizes, a --verify load and a -vv load.
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
pair "bf16 scratch 48M" --scratch 48M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 scratch 32M" --scratch 32M --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 64M again" --compare-dtype bf16 "$dir/flux-f32"
pair "bf16 64M --verify" --verify --compare-dtype bf16 "$dir/flux-f32"
} 2>&1 | tee "$out/exp-scratch.jsonl" | python3 /tmp/pp.py
"$hoist" load --device cuda:0 --dtype bf16 --verify "$dir/flux-f32" > /dev/null; echo "load --dtype bf16 --verify: exit $?"
"$hoist" bench load -vv --device cuda:0 --repeat 1 --dtype bf16 "$dir/flux-f32" 2>&1 | grep -E "transfers|GB/s" | head -4
echo done
