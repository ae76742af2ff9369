#!/usr/bin/env bash
# gpu-prepare.sh — makes a build folder that runs on a GPU machine which has
# only a driver (and, for the peer step, torch and safetensors): run it here,
# where the CUDA toolkit and the Debian packages are installed.
#
#   tools/gpu-prepare.sh [BUILD]          BUILD defaults to build-gpu
#
# It configures BUILD with the CUDA backend for HOIST_CUDA_ARCHS (default 90:
# H100/H200; "80;90" adds A100) and builds it; writes the test vectors into
# BUILD/vectors; copies into BUILD/lib every shared library the binaries load
# that is not the C or C++ runtime (cJSON, libuv, subunit, libcrypto, CUPTI),
# where their $ORIGIN-relative RPATH finds them; and downloads the
# peers' wheels into BUILD/wheels (fastsafetensors, instanttensor 0.2.2,
# diffusers 0.42.1; HOIST_WHEELS=0 skips them; HOIST_WHEEL_PYTHON is the GPU
# machine's Python, default 3.12).  BUILD/python is the hoist package (abi3:
# built with this machine's Python, imported by any CPython >= 3.9).
# Then copy the checkout with BUILD in it to the GPU machine and run
# tools/gpu-run.sh or bench/convert_load.sh from its root (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
tools/install-deps.sh
cmake -S . -B "$build" -DHOIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${HOIST_CUDA_ARCHS:-90}" \
  -DHOIST_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
.venv/bin/python tests/vectors/make_vectors.py "$build/vectors"

# The libraries to carry: whatever ldd resolves outside the C/C++ runtime,
# which every machine with a driver has.
mkdir -p "$build/lib"
own=$(cd "$build" && pwd)
find "$build" -maxdepth 2 -type f -perm -u+x \( -name hoist -o -name 'bench_*' -o -name 'trace_*' \
  -o -name 'test_*' \) -print0 | xargs -0 ldd 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|librt|libpthread|libutil|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
  while read -r lib; do
    case $lib in "$own"/*) continue ;; esac
    cp -L "$lib" "$build/lib/"
  done
ls "$build/lib"

# The peers' wheels for the GPU machine's Python (installed there with --no-deps into a private
# folder by gpu-env.sh): fastsafetensors for peer_loaders.py, InstantTensor 0.2.2 and diffusers
# 0.42.1 (pure Python) for the Python benchmarks and tests, pytest for the tests.
if [ "${HOIST_WHEELS:-1}" != 0 ]; then
  py=${HOIST_WHEEL_PYTHON:-3.12}
  for spec in fastsafetensors instanttensor==0.2.2 diffusers==0.42.1 pytest pluggy iniconfig; do
    name=${spec%%==*}
    ls "$build"/wheels/"$name"-*.whl >/dev/null 2>&1 && continue
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
      -d "$build/wheels" "$spec"
  done
fi
du -sh "$build"
