#!/usr/bin/env bash
# demo.sh — the README's main job: installs what is missing, builds, writes
# a small FLUX.1-dev-shaped example pipeline (example/flux-demo), shows its
# plan and loads it with verification, on the GPU when one is usable, else
# on the host backend.
set -euo pipefail
cd "$(dirname "$0")/.."
HOIST_NO_VENV=1 tools/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target hoist_cli >/dev/null
example=example/flux-demo
if [ ! -f "$example/model_index.json" ]; then
  rm -rf "$example"
  build/hoist make-pipeline --preset flux1-dev --scale 0.005 --seed 1 "$example"
fi
echo "== hoist plan $example"
build/hoist plan "$example"
device=host
if build/hoist load --device cuda:0 --json "$example" >/dev/null 2>&1; then device=cuda:0; fi
echo "== hoist load --device $device --verify $example"
build/hoist load --device "$device" --verify "$example"
