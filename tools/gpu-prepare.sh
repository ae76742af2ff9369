#!/usr/bin/env bash
# gpu-prepare.sh — run HERE (no GPU) before a device run: builds build-gpu/
# for sm_90 with the CUDA toolkit, and fills .gpu/ (ignored by git) with what
# the bare GPU machine lacks: the shared libraries the binaries link
# (libcjson, libuv, libsubunit), the peer benchmark script and the shared
# vectors.  Then call the device with carry [build-gpu, .gpu, .whl] and the
# command `bash tools/gpu-run.sh` (tools/gpu-run.sh says what it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build-gpu -DHOIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DHOIST_WERROR=ON >/dev/null
cmake --build build-gpu -j"$(nproc)"
rm -rf .gpu && mkdir -p .gpu/lib .gpu/shared
for lib in libcjson.so.1 libuv.so.1 libsubunit.so.0; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" .gpu/lib/
done
# bench/trace_load links CUPTI from the toolkit here; the GPU machine may
# keep it elsewhere or not at all.
if [ -x build-gpu/trace_load ]; then
  cupti=$(ldd build-gpu/trace_load | awk '/libcupti/ {print $3}')
  [ -n "$cupti" ] && cp -L "$cupti" .gpu/lib/
fi
cp ../shared/bench/peer_safetensors.py .gpu/
cp -r ../shared/vectors .gpu/shared/
if ! ls .whl/fastsafetensors-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl fastsafetensors
fi
du -sh build-gpu .gpu .whl
