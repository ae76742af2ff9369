# gpu-env.sh — sourced by the scripts that run ON the GPU machine
# (tools/gpu-run.sh, bench/convert_load.sh) from the repository root: makes
# the build configured here at /work/main (with ../shared beside it) valid
# there, puts the carried libraries on the loader path, installs carried
# wheels, records the card in $out/gpu.txt, and defines $hoist, $out and
# has STEP (is STEP in $steps).
root=$PWD
out=${OUT:-/tmp/hoist-out}
mkdir -p "$out" /work
[ -e /work/main ] || ln -s "$root" /work/main
[ -e /work/shared ] || ln -s "$root/.gpu/shared" /work/shared
export LD_LIBRARY_PATH="$root/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
if ls "$root"/.whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$root"/.whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current \
  --format=csv | tee "$out/gpu.txt"
hoist=/work/main/build-gpu/hoist
has() { [[ " $steps " == *" $1 "* ]]; }
