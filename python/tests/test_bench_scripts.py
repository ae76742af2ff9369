"""The Python benchmark scripts of bench/ run on the CPU before they cost
GPU time: their argument checks, the steps that need no torch, a peer that
is missing reported as a JSON error line (not a crash), and — where torch
and diffusers are installed — every CPU step on a tiny FLUX pipeline,
including one diffusers step of both loadings with equal outputs, and the
attach and restart measures against `hoist serve --device host`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LOADERS = ROOT / "bench" / "python_loaders.py"
ATTACH = ROOT / "bench" / "attach_python.py"


def build_dir(hoist_cli):
    return Path(hoist_cli).resolve().parent


def run(script, *args, timeout=600):
    r = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    return r, {ln["step"]: ln for ln in lines}


def has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("script", [LOADERS, ATTACH])
def test_usage_errors(script, hoist_cli, tmp_path):
    r, _ = run(script, "--help")
    assert r.returncode == 0 and "usage" in r.stdout
    r, _ = run(script, "--build", build_dir(hoist_cli), tmp_path / "none")
    assert r.returncode == 2 and "none" in r.stderr
    r, _ = run(script, "--build", build_dir(hoist_cli), "--device", "tpu", tmp_path)
    assert r.returncode == 2 and "--device" in r.stderr
    flag = "--steps" if script == LOADERS else "--measures"
    r, _ = run(script, "--build", build_dir(hoist_cli), flag, "nope", tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr


def test_loaders_without_a_hoist_build(tmp_path, flux_small):
    r, _ = run(LOADERS, "--build", tmp_path, "--device", "cpu", "--steps", "hoist_cli", flux_small)
    assert r.returncode == 1 and "HOIST_PYTHON=ON" in r.stderr


def test_loaders_hoist_cli_and_missing_peers(hoist_cli, flux_small):
    r, lines = run(LOADERS, "--build", build_dir(hoist_cli), "--device", "cpu", "--repeat", "1",
                   "--warmup", "0", "--steps", "hoist_cli,instant_all", flux_small)
    assert r.returncode == 0, r.stderr
    assert lines["hoist_cli"]["median_GBps"] > 0 and lines["hoist_cli"]["device"] == "host"
    # InstantTensor loads to CUDA only (and may not be installed): an error line.
    assert "error" in lines["instant_all"]
    assert "GB/s" in r.stdout


@pytest.fixture(scope="module")
def tiny(hoist_cli, tmp_path_factory):
    if not all(has(m) for m in ("torch", "diffusers", "transformers", "accelerate")):
        pytest.skip("SKIP: torch, diffusers, transformers and accelerate are not all installed")
    from tiny_flux import write_tiny_flux

    return write_tiny_flux(hoist_cli, tmp_path_factory.mktemp("tiny-bench"))


def test_loaders_every_cpu_step(hoist_cli, tiny):
    r, lines = run(LOADERS, "--build", build_dir(hoist_cli), "--device", "cpu", "--repeat", "1",
                   "--warmup", "0", "--steps", "hoist_torch,hoist_rt,safetensors,diffusers", tiny)
    assert r.returncode == 0, r.stderr
    for step in ("hoist_torch", "hoist_rt", "safetensors", "diffusers_hoist", "diffusers_ref"):
        assert "error" not in lines[step], (step, lines[step])
        assert lines[step]["bytes"] == lines["hoist_torch"]["bytes"] > 0
    assert lines["diffusers_hoist"]["outputs_finite"]
    cmp = lines["diffusers_compare"]
    assert cmp["equal"] and cmp["compared"] >= 5, cmp


def test_attach_measures_on_the_host(hoist_cli, tiny):
    if not has("torch"):
        pytest.skip("SKIP: torch is not installed")
    r, lines = run(ATTACH, "--build", build_dir(hoist_cli), "--device", "cpu", "--repeat", "2",
                   "--warmup", "0", "--restarts", "1", tiny)
    assert r.returncode == 0, r.stderr
    assert lines["serve_ready"]["bytes"] > 0
    assert lines["attach"]["tensors"] > 0 and lines["attach"]["median_ms"] > 0
    for way in ("restart_attach", "restart_hoist_load", "restart_safetensors"):
        assert "error" not in lines[way] and lines[way]["median_seconds"] > 0, lines[way]
        assert lines[way]["tensors"] == lines["attach"]["tensors"]
