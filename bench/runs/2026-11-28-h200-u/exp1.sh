#!/usr/bin/env bash
# experiment (not committed): old (HEAD 1d6d953) vs new (scratch pool + conversion stream)
set -uo pipefail
steps="x"
source tools/gpu-env.sh
old=$root/.gpu/hoist-old
dir=/tmp/hoist-bench
(cd build-gpu && ctest -R 'test_gpu_(convert_load|load|kernels)' -V) > "$out/gpu-tests.log" 2>&1
grep -E "tests passed|Failed|SKIP" "$out/gpu-tests.log" | tail -5
t0=$(date +%s)
"$hoist" make-pipeline --preset flux1-dev --scale 0.15 --seed 1 --dtype f32 "$dir/flux-f32" | tail -n 1
echo "make-pipeline $(( $(date +%s) - t0 )) s"
run() { local label=$1 bin=$2; shift 2
  "$bin" bench load --json --device cuda:0 --repeat 5 "$@" | sed "s/^{/{\"variant\":\"$label\",/"; }
for r in $(seq ${ROUNDS:-4}); do
  if [ $((r % 2)) = 1 ]; then
    run "new plain" "$hoist" "$dir/flux-f32"; run "new bf16" "$hoist" --dtype bf16 "$dir/flux-f32"
    run "old bf16" "$old" --dtype bf16 "$dir/flux-f32"; run "old plain" "$old" "$dir/flux-f32"
  else
    run "old plain" "$old" "$dir/flux-f32"; run "old bf16" "$old" --dtype bf16 "$dir/flux-f32"
    run "new bf16" "$hoist" --dtype bf16 "$dir/flux-f32"; run "new plain" "$hoist" "$dir/flux-f32"
  fi
done 2>&1 | tee "$out/ab.jsonl" | cut -c1-160
for args in "" "--dtype bf16" "--dtype bf16 --verify"; do
  echo "== new $args"
  "$hoist" bench load -vv --device cuda:0 --repeat 2 $args "$dir/flux-f32" 2>&1 | grep -v '^ *run '
done > "$out/breakdown.log" 2>&1
grep -E "transformer: [0-9]+ bytes" "$out/breakdown.log"
echo "exp done"
