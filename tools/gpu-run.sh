#!/usr/bin/env bash
# gpu-run.sh — runs on the GPU machine, from the root of a checkout that
# holds a build folder made by tools/gpu-prepare.sh (bench/README.md): the
# GPU suites, then the load benchmark on a FLUX.1-dev-shaped pipeline of
# about 10 GB next to the hardware limit and the peer loaders measured in
# the same run, the kernel bandwidths and the OOM thresholds on the card.
# Logs and JSON go to $OUT (default /tmp/hoist-out).
#   HOIST_GPU_STEPS    steps to run (default "tests warm cold peer verify kernels oom attach";
#                      also python-tests, python, attach-py: the Python package's GPU tests and
#                      benchmarks on a full-size FLUX.1-dev, scale 1, 33.7 GB in $HOIST_BENCH_DIR)
#   HOIST_BENCH_SCALE  make-pipeline scale (default 0.3: 10.12 GB)
#   HOIST_BENCH_DIR    where the pipelines are written (default /tmp/hoist-bench)
#   HOIST_VARIANTS     0: only the default configuration in warm and cold
#   HOIST_BUILD        the build folder (default build-gpu)
set -uo pipefail
steps=${HOIST_GPU_STEPS:-"tests warm cold peer verify kernels oom attach"}
scale=${HOIST_BENCH_SCALE:-0.3}
bench=${HOIST_BENCH_DIR:-/tmp/hoist-bench}

source tools/gpu-env.sh

if has tests; then
  gpu_tests 2>&1 | tee "$out/gpu-tests.log"
  # The CLI's device contract on a real card.
  "$hoist" load --json --device cuda:0 --verify "$build/vectors/pipe" >"$out/load-vectors.json" 2>&1
  echo "load vectors: exit $?"
fi

if has warm || has cold || has peer || has verify || has attach; then
  if [ ! -f "$bench/flux-$scale/model_index.json" ]; then
    rm -rf "$bench/flux-$scale"
    mkdir -p "$bench"
    /usr/bin/time -f "make-pipeline: %e s" "$hoist" make-pipeline --preset flux1-dev --scale "$scale" \
      --seed 1 "$bench/flux-$scale" 2>&1 | tail -n 3
  fi
  "$hoist" plan "$bench/flux-$scale" | tee "$out/plan.txt"
fi

if has warm; then
  {
    "$hoist" bench load --json --device cuda:0 --repeat 5 "$bench/flux-$scale"
    [ "${HOIST_VARIANTS:-1}" = 0 ] || for mode in mmap pread register; do
      "$hoist" bench load --json --device cuda:0 --repeat 3 --read "$mode" "$bench/flux-$scale" | sed "s/^{/{\"variant\":\"read=$mode\",/"
    done
    [ "${HOIST_VARIANTS:-1}" = 0 ] || for cfg in "--threads 10" "--chunk 2M" "--chunk 8M"; do
      "$hoist" bench load --json --device cuda:0 --repeat 3 $cfg "$bench/flux-$scale" | sed "s/^{/{\"variant\":\"$cfg\",/"
    done
  } 2>&1 | tee "$out/bench-warm.jsonl"
fi

if has cold; then
  cfgs=("" "--read pread" "--chunk 8M")
  [ "${HOIST_VARIANTS:-1}" = 0 ] && cfgs=("")
  for cfg in "${cfgs[@]}"; do
    "$hoist" bench load --json --device cuda:0 --cold --repeat 3 $cfg "$bench/flux-$scale" | sed "s/^{/{\"variant\":\"$cfg\",/"
  done 2>&1 | tee "$out/bench-cold.jsonl"
fi

if has peer; then
  timeout 300 python3 "$root/bench/peer_loaders.py" "$bench/flux-$scale" --repeat 3 2>&1 | tee "$out/peer.json"
fi

if has verify; then
  /usr/bin/time -f "load --verify: %e s wall" "$hoist" load --json --device cuda:0 --verify "$bench/flux-$scale" \
    2>&1 | tee "$out/load-verify.json"
fi

if has kernels; then
  "$build/bench_kernels" --runs 30 --no-variants 2>&1 | tee "$out/bench-kernels.log"
fi
if has oom; then
  # OOM thresholds on the card itself for two presets at scale 0.02 (674 MB
  # and 1.38 GB): a ballast per trial, planned vs smallest-first, with and
  # without the cast transient, each next to its simulation.
  for preset in flux1-dev wan2.2-t2v-a14b; do
    if [ ! -f "$bench/oom-$preset-0.02/model_index.json" ]; then
      "$hoist" make-pipeline --preset "$preset" --scale 0.02 --seed 2 "$bench/oom-$preset-0.02" | tail -n 1
    fi
    case $preset in flux1-dev) pol=text_encoder_2 ;; *) pol=text_encoder ;; esac
    for t in none cast; do
      "$hoist" bench oom --device cuda:0 --orders planned,reverse --transient "$t" \
        --policy resident --policy "offload:$pol" "$bench/oom-$preset-0.02"
      "$hoist" bench oom --simulate --device cuda:0 --orders planned,reverse --transient "$t" \
        --policy resident --policy "offload:$pol" "$bench/oom-$preset-0.02"
    done
  done 2>&1 | tee "$out/bench-oom-cuda.log"
fi
if has attach; then
  # hoist serve keeps the pipeline on the card; attach latency with the
  # worker's CUDA context already made, then a worker's restart (process
  # start to every tensor usable) by attach and by hoist load.
  sock="$bench/serve.sock"
  "$hoist" serve --json --device cuda:0 --unix "$sock" --listen none "$bench/flux-$scale" \
    >"$out/serve-events.jsonl" 2>"$out/serve.log" &
  serve_pid=$!
  for _ in $(seq 600); do
    grep -q '"event":"ready"' "$out/serve-events.jsonl" && break
    sleep 0.5
  done
  "$hoist" bench attach --json --device cuda:0 --repeat 50 "$sock" | tee "$out/bench-attach.json"
  "$hoist" bench attach --restart --json --device cuda:0 --repeat 5 "$sock" "$bench/flux-$scale" \
    | tee "$out/bench-restart.json"
  kill -TERM "$serve_pid"
  wait "$serve_pid"
  echo "serve: exit $?"
  # 200 clients polling /v1/status at 10 Hz during the load, paired with quiet loads.
  python3 bench/serve_poll.py --hoist "$hoist" --device cuda:0 --pairs 10 "$bench/flux-$scale" \
    2>"$out/serve-poll.log" | tee "$out/serve-poll.json"
fi
# The Python package (BUILD/python, built here by gpu-prepare.sh for CPython 3.9+) on the card:
# its GPU tests, then the Python benchmarks on a full-size FLUX.1-dev (scale 1, the scale whose
# configs match the tensors, so diffusers builds and runs it).
if has python-tests || has python || has attach-py; then
  if [ ! -f "$build/python/hoist/__init__.py" ]; then
    echo "no $build/python: gpu-prepare.sh builds it where python3-dev and libdlpack-dev are" >&2
    exit 1
  fi
  export PYTHONPATH=$build/python${PYTHONPATH:+:$PYTHONPATH}
  if [ ! -f "$bench/flux-1/model_index.json" ]; then
    rm -rf "$bench/flux-1"
    mkdir -p "$bench"
    /usr/bin/time -f "make-pipeline: %e s" "$hoist" make-pipeline --preset flux1-dev --scale 1 \
      --seed 1 "$bench/flux-1" 2>&1 | tail -n 3
  fi
fi
if has python-tests; then
  # Every Python test; the torch, diffusers and attach GPU ones run here (HOIST_TEST_FLUX_DIR:
  # the full-size FLUX.1-dev for the diffusers ones).
  HOIST_CLI=$hoist HOIST_TEST_FLUX_DIR=$bench/flux-1 timeout 1800 python3 -m pytest -q -rs \
    -p no:cacheprovider "$root/python/tests" 2>&1 | tee "$out/python-tests.log"
fi
if has python; then
  # hoist.torch.load_pipeline against hoist bench load, InstantTensor, safetensors; load_into into
  # preallocated parameters; hoist.diffusers against diffusers' own loading, with one step each.
  timeout 3000 python3 "$root/bench/python_loaders.py" --build "$build" --device cuda:0 \
    --repeat 3 --out "$out/python-loaders" "$bench/flux-1" 2>"$out/python-loaders.log" |
    tee "$out/python-loaders.jsonl"
fi
if has attach-py; then
  # Attach to a dict of torch tensors in Python, and a worker's restart by attach, hoist load
  # and safetensors, against hoist serve of the same pipeline.
  timeout 1800 python3 "$root/bench/attach_python.py" --build "$build" --device cuda:0 \
    --repeat 20 --restarts 5 "$bench/flux-1" 2>"$out/attach-python.log" |
    tee "$out/attach-python.jsonl"
fi
echo "gpu-run: done"
