#!/usr/bin/env bash
# experiment (not committed): hardware work queues (CUDA_DEVICE_MAX_CONNECTIONS) and threads
set -uo pipefail
steps="x"
source tools/gpu-env.sh
old=$root/.gpu/hoist-old
dir=/tmp/hoist-bench
[ -f "$dir/flux-f32/model_index.json" ] || { rm -rf "$dir/flux-f32"; mkdir -p $dir; "$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1; }
run() { local label=$1 conn=$2 bin=$3; shift 3
  if [ "$conn" = - ]; then "$bin" bench load --json --device cuda:0 --repeat 5 "$@"
  else CUDA_DEVICE_MAX_CONNECTIONS=$conn "$bin" bench load --json --device cuda:0 --repeat 5 "$@"; fi |
    sed "s/^{/{\"variant\":\"$label\",/"; }
for r in $(seq ${ROUNDS:-3}); do
  run "old plain" - "$old" "$dir/flux-f32"
  run "old bf16" - "$old" --dtype bf16 "$dir/flux-f32"
  run "old plain c32" 32 "$old" "$dir/flux-f32"
  run "old bf16 c32" 32 "$old" --dtype bf16 "$dir/flux-f32"
  run "new plain c32" 32 "$hoist" "$dir/flux-f32"
  run "new bf16 c32" 32 "$hoist" --dtype bf16 "$dir/flux-f32"
  run "old plain t8" - "$old" --threads 8 "$dir/flux-f32"
  run "old bf16 t8" - "$old" --threads 8 --dtype bf16 "$dir/flux-f32"
done 2>&1 | tee "$out/ab2.jsonl" | python3 .gpu/show.py
echo "exp2 done"
