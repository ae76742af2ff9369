#!/usr/bin/env bash
# manifest_load.sh — runs on the GPU machine, from the root of a checkout that
# holds a build folder made by tools/gpu-prepare.sh (bench/README.md): what
# holding a load to a content manifest costs.  It writes a FLUX.1-dev-shaped
# pipeline at full size (HOIST_MANIFEST_SCALE, default 1: 33.7 GB of BF16;
# kept for later runs) unless it is there, then:
#   make   `hoist manifest` of it, timed: every file's SHA-256 (several files
#          at a time) with the header and piece hashes of the same pass
#   pairs  `hoist bench load --compare-manifest FILE --repeat HOIST_MANIFEST_PAIRS`
#          (default 10) on cuda:0, warm: a plain and a checked load per pair,
#          in one process and alternating order, so the drift between
#          processes does not enter the ratio; the median paired speed ratio
#          is the cost (the target: at most 10 % slower, a ratio >= 0.909)
#   check  `hoist check` of the pipeline against the manifest, timed
# Logs and JSON go to $OUT.
#   HOIST_MANIFEST_STEPS  default "make pairs check"
#   HOIST_BENCH_DIR       where the pipeline is written (default /tmp/hoist-bench)
#   HOIST_BUILD           the build folder (default build-gpu)
set -uo pipefail
steps=${HOIST_MANIFEST_STEPS:-"make pairs check"}
scale=${HOIST_MANIFEST_SCALE:-1}
pairs=${HOIST_MANIFEST_PAIRS:-10}
dir=${HOIST_BENCH_DIR:-/tmp/hoist-bench}

source tools/gpu-env.sh

pipe=$dir/flux-$scale
manifest=$dir/flux-$scale.manifest.json
if [ ! -f "$pipe/model_index.json" ]; then
  rm -rf "$pipe" && mkdir -p "$dir"
  "$hoist" make-pipeline --preset flux1-dev --scale "$scale" --seed 1 "$pipe" | tail -n 1
fi

if has make || [ ! -f "$manifest" ]; then
  "$hoist" manifest --json "$pipe" -o "$manifest" | tee "$out/manifest-make.json" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print("manifest: %d files, %.2f GB hashed in %.2f s (%.2f GB/s)" % (len(d["files"]), d["bytes"] / 1e9, d["seconds"], d["GBps"]))'
fi

if has pairs; then
  "$hoist" bench load --json --device cuda:0 --repeat "$pairs" --compare-manifest "$manifest" "$pipe" \
    >"$out/manifest-pairs.json" 2>"$out/manifest-pairs.log"
  echo "bench load --compare-manifest: exit $?"
  cat "$out/manifest-pairs.log"
  python3 - "$out/manifest-pairs.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
pair = run["compare"]
ratio = pair["ratio_median"]
verdict = "within" if ratio >= 1 / 1.1 else "ABOVE"
print(f"plain {run['median_GBps']:.2f} GB/s, --manifest {pair['median_GBps']:.2f} GB/s "
      f"(pinned limit {run['h2d_pinned_GBps']:.2f}); paired speed ratio median {ratio:.3f} "
      f"(min {pair['ratio_min']:.3f}, max {pair['ratio_max']:.3f}) over {run['runs']} pairs: "
      f"{(1 / ratio - 1) * 100:+.1f} % time, {verdict} the 10 % target")
PY
fi

if has check; then
  /usr/bin/time -f "check: %e s" "$hoist" check --json --manifest "$manifest" "$pipe" \
    >"$out/manifest-check.json"
  echo "check: exit $?"
fi
echo "manifest_load: done"
