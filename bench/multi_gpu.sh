#!/usr/bin/env bash
# multi_gpu.sh — runs on a machine of several GPUs, from the root of a
# checkout holding a build folder made by tools/gpu-prepare.sh
# (bench/README.md, "Several GPUs"): loads with ranks against the naive way
# and against InstantTensor, on the same files in the same run.
#   tests       the GPU suites, the gpu-multi one included
#   replicated  FLUX.1-dev at full size (make-pipeline, HOIST_MULTI_SCALE,
#               default 1: 33.7 GB) on W cards for each W of
#               HOIST_MULTI_WORLDS the machine has (default "1 2 4 8"):
#                 hoist    `hoist load --devices cuda:0..W-1 --repeat N`: each
#                          byte read once across the cards, NCCL broadcasts
#                          complete every card (W = 1: a plain load)
#                 naive    W `hoist bench load --device cuda:i --repeat N`
#                          processes started at once, each loading everything
#                 peer     InstantTensor with a process group
#                          (bench/instanttensor_multi.py under torchrun), when
#                          instanttensor is importable
#   fsdp        `hoist load --devices .. --fsdp transformer --repeat N`: each
#               card's bytes and seconds for the transformer, beside W = 1
# Every figure is the time until every card holds the pipeline (the slowest
# rank), median of HOIST_MULTI_REPEAT (default 3) warm loads after a
# warm-up.  JSON lines go to $OUT/multi-*.jsonl, the summary to
# $OUT/multi-summary.txt.
#   HOIST_MULTI_STEPS  default "tests replicated fsdp"
#   HOIST_BENCH_DIR    where the pipeline is written (default /tmp/hoist-bench)
#   HOIST_BUILD        the build folder (default build-gpu)
set -uo pipefail
steps=${HOIST_MULTI_STEPS:-"tests replicated fsdp"}
scale=${HOIST_MULTI_SCALE:-1}
worlds=${HOIST_MULTI_WORLDS:-"1 2 4 8"}
repeat=${HOIST_MULTI_REPEAT:-3}
dir=${HOIST_BENCH_DIR:-/tmp/hoist-bench}

source tools/gpu-env.sh

ngpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
echo "$ngpu GPUs; NCCL: ${HOIST_NCCL_LIBRARY:-searched (nccl_lib.h)}" | tee -a "$out/gpu.txt"
if [ "$ngpu" -lt 2 ]; then
  echo "SKIP: $ngpu GPU; the multi-GPU benchmark needs at least 2" | tee "$out/multi-summary.txt"
fi

if has tests; then
  gpu_tests 2>&1 | tee "$out/multi-tests.log"
fi

pipe="$dir/flux-multi-$scale"
if (has replicated || has fsdp) && [ ! -f "$pipe/model_index.json" ]; then
  rm -rf "$pipe" && mkdir -p "$dir"
  "$hoist" make-pipeline --preset flux1-dev --scale "$scale" --seed 1 "$pipe" | tail -n 1
fi
# Warm: every file read once, so every variant finds them in the page cache.
(has replicated || has fsdp) && cat $(find "$pipe" -name '*.safetensors') >/dev/null

devices() { # W -> cuda:0,..,cuda:W-1
  local w=$1 i list=""
  for ((i = 0; i < w; i++)); do list+="${list:+,}cuda:$i"; done
  echo "$list"
}

summarize() { # jsonl file: one line per measurement
  python3 - "$1" <<'PY'
import json, statistics, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if "error" in d:
        print(f"{d['label']:>12} W={d.get('W')}: {d['error']}")
        continue
    print(f"{d['label']:>12} W={d['W']}: every card holds it in {d['median_s']:.3f} s "
          f"(runs {', '.join(f'{r:.3f}' for r in d['runs'])})" + d.get("note", ""))
PY
}

if has replicated; then
  res="$out/multi-replicated.jsonl"
  : >"$res"
  for w in $worlds; do
    [ "$w" -le "$ngpu" ] || continue
    # hoist: one process, one rank per card.
    "$hoist" load --json --devices "$(devices "$w")" --repeat "$repeat" "$pipe" >"$out/multi-hoist-$w.json"
    python3 - "$out/multi-hoist-$w.json" "$w" >>"$res" <<'PY'
import json, statistics, sys
d = json.load(open(sys.argv[1]))
runs = d["all_ranks_seconds"]
print(json.dumps({"label": "hoist", "W": int(sys.argv[2]), "runs": runs,
                  "median_s": statistics.median(runs),
                  "bytes_per_card": d["ranks"][0]["total_bytes"]}))
PY
    # naive: W independent loads at once, each reading every byte.
    pids=()
    for ((i = 0; i < w; i++)); do
      "$hoist" bench load --json --device "cuda:$i" --repeat "$repeat" "$pipe" >"$out/multi-naive-$w-$i.json" &
      pids+=($!)
    done
    wait "${pids[@]}"
    python3 - "$out" "$w" >>"$res" <<'PY'
import json, sys
out, w = sys.argv[1], int(sys.argv[2])
ds = [json.load(open(f"{out}/multi-naive-{w}-{i}.json")) for i in range(w)]
slowest = max(d["bytes"] / (d["median_GBps"] * 1e9) for d in ds)
print(json.dumps({"label": "naive", "W": w, "runs": [slowest], "median_s": slowest,
                  "note": f" (slowest of {w} processes' median; "
                          f"h2d {ds[0]['h2d_pinned_GBps']:.1f} GB/s)"}))
PY
    # InstantTensor 0.2.2 with a process group.
    if python3 -c "import instanttensor" 2>/dev/null; then
      torchrun --standalone --nproc-per-node "$w" bench/instanttensor_multi.py "$pipe" \
        --repeat "$repeat" 2>"$out/multi-instanttensor-$w.log" |
        python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['label']='instanttensor'; d['W']=$w; print(json.dumps(d))" >>"$res"
    else
      echo "{\"label\": \"instanttensor\", \"W\": $w, \"error\": \"instanttensor is not importable (pip install instanttensor==0.2.2)\"}" >>"$res"
    fi
  done
  summarize "$res" | tee -a "$out/multi-summary.txt"
fi

if has fsdp; then
  res="$out/multi-fsdp.jsonl"
  : >"$res"
  for w in $worlds; do
    [ "$w" -le "$ngpu" ] || continue
    "$hoist" load --json --devices "$(devices "$w")" --fsdp transformer --repeat "$repeat" \
      "$pipe" >"$out/multi-fsdp-$w.json"
    python3 - "$out/multi-fsdp-$w.json" "$w" >>"$res" <<'PY'
import json, statistics, sys
d = json.load(open(sys.argv[1]))
tr = [next(c for c in r["components"] if c["name"] == "transformer") for r in d["ranks"]]
print(json.dumps({"label": "fsdp", "W": int(sys.argv[2]),
                  "runs": d["all_ranks_seconds"], "median_s": statistics.median(d["all_ranks_seconds"]),
                  "transformer_device_bytes": [c["device_bytes"] for c in tr],
                  "transformer_seconds": [c["seconds"] for c in tr],
                  "note": f" (transformer per card: {max(c['device_bytes'] for c in tr) / 1e9:.2f} GB, "
                          f"{max(c['seconds'] for c in tr):.3f} s)"}))
PY
  done
  summarize "$res" | tee -a "$out/multi-summary.txt"
fi
