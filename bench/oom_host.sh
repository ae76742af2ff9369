#!/usr/bin/env bash
# oom_host.sh — the OOM-threshold tables of bench/RESULTS.md that need no
# GPU: run from the repository root after a build (BUILD, default build).
#   simulated  `hoist bench oom --simulate --preset` at scale 1 for FLUX.1-dev
#              and Wan2.2-T2V-A14B (orders x policies, transients none and
#              cast), and the least offload per card size for all four presets
#   measured   real load + unload trials on the host backend for pipelines
#              written at scale 0.02 (each row shows its simulation too),
#              and the same with a co-tenant taking 64 MiB halfway
#   plot       bench/oom-flux1-dev.svg, the chart the README shows
# Logs go to $OUT (default /tmp/hoist-out); the pipelines to HOIST_BENCH_DIR
# (default /tmp/hoist-bench).  The measured step takes a few minutes.
#   HOIST_OOM_STEPS  default "simulated measured plot"
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
hoist=$build/hoist
out=${OUT:-/tmp/hoist-out}
bench=${HOIST_BENCH_DIR:-/tmp/hoist-bench}
steps=${HOIST_OOM_STEPS:-"simulated measured plot"}
has() { [[ " $steps " == *" $1 "* ]]; }
mkdir -p "$out" "$bench"

# The policies each preset is measured with: resident, one offloaded
# encoder, and one offloaded expert or DiT.
policies() {
  case $1 in
    flux1-dev) echo "--policy resident --policy offload:text_encoder_2 --policy offload:transformer --policy on-oom=offload" ;;
    wan2.2-t2v-a14b) echo "--policy resident --policy offload:text_encoder --policy offload:transformer_2 --policy offload:dit" ;;
  esac
}

if has simulated; then
  for preset in flux1-dev wan2.2-t2v-a14b; do
    for t in none cast; do
      # shellcheck disable=SC2046
      "$hoist" bench oom --simulate --preset "$preset" --transient "$t" \
        --orders planned,index,reverse,random:4 $(policies "$preset")
    done
  done 2>&1 | tee "$out/oom-simulated.log"
  for preset in flux1-dev wan2.2-t2v-a14b qwen-image sd3.5-large; do
    for t in none cast; do
      "$hoist" bench oom --simulate --preset "$preset" --transient "$t"
    done
  done 2>&1 | tee "$out/oom-what-fits.log"
fi

if has measured; then
  for preset in flux1-dev wan2.2-t2v-a14b; do
    dir=$bench/oom-$preset-0.02
    [ -f "$dir/model_index.json" ] ||
      "$hoist" make-pipeline --preset "$preset" --scale 0.02 --seed 2 "$dir" | tail -n 1
  done
  # Each measured row carries its simulation in the same table.
  {
    for t in none cast; do
      "$hoist" bench oom --transient "$t" --orders planned,index,reverse,random:2 \
        --policy resident --policy offload:text_encoder_2 --policy on-oom=offload \
        "$bench/oom-flux1-dev-0.02"
      "$hoist" bench oom --transient "$t" --orders planned,index,reverse \
        --policy resident --policy offload:text_encoder --policy offload:transformer_2 \
        "$bench/oom-wan2.2-t2v-a14b-0.02"
    done
    "$hoist" bench oom --co-tenant 64M@0.5 --orders planned,reverse \
      --policy resident --policy on-oom=offload "$bench/oom-flux1-dev-0.02"
  } 2>&1 | tee "$out/oom-measured.log"
fi

if has plot; then
  "$hoist" bench oom --simulate --preset flux1-dev --transient cast --orders planned,index,reverse \
    --policy resident --policy offload:text_encoder_2 --policy offload:transformer \
    --plot bench/oom-flux1-dev.svg >/dev/null
fi
