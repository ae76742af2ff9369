#!/usr/bin/env bash
# install-deps.sh — installs what hoist needs on a Debian 12 machine, only
# what is missing: the Debian packages below (non-interactive apt-get) and a
# local virtual environment (.venv) with the official safetensors + numpy
# from PyPI, which write the test vectors and are the reference reader of
# the differential tests, pytest for the Python package's tests, and
# transformers (with tokenizers; no torch) to check that make-pipeline's
# tokenizer folders load.  The CUDA toolkit is optional and never installed
# here.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libcjson-dev libuv1-dev libhttp-parser-dev libxxhash-dev
          check libsubunit-dev libssl-dev clang libclang-rt-dev python3 python3-venv python3-dev
          libdlpack-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ "${HOIST_NO_VENV:-0}" != 1 ]; then
  if ! .venv/bin/python -c 'import safetensors, numpy, pytest, tokenizers, transformers' \
      >/dev/null 2>&1; then
    echo "install-deps: creating .venv with safetensors, numpy, pytest and transformers"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check 'safetensors==0.8.0' numpy \
      pytest 'transformers==5.17.0'
  fi
fi
