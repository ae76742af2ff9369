"""Fixtures of the hoist package's tests: the hoist CLI (to write
pipelines with make-pipeline and to compare messages and exit codes), the
shared vectors when present, and helpers that read tensors independently
of hoist."""

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

import hoist

ROOT = Path(__file__).resolve().parents[2]


def _cli():
    return Path(os.environ.get("HOIST_CLI", ROOT / "build" / "hoist"))


@pytest.fixture(scope="session")
def hoist_cli():
    cli = _cli()
    if not cli.exists():
        pytest.fail(f"the hoist CLI is not built at {cli} (set HOIST_CLI)")
    return cli


def make_pipeline(cli, out, preset="flux1-dev", scale="0.001", seed="1"):
    subprocess.run([str(cli), "make-pipeline", "--preset", preset, "--scale", scale, "--seed",
                    seed, "--force", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="session")
def flux_tiny(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline, 33 MB."""
    return make_pipeline(hoist_cli, tmp_path_factory.mktemp("flux-tiny"))


@pytest.fixture(scope="session")
def flux_small(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline at scale 0.0002, a few MB (cycles)."""
    return make_pipeline(hoist_cli, tmp_path_factory.mktemp("flux-small"), scale="0.0002")


@pytest.fixture(scope="session")
def shared_vectors():
    shared = Path(os.environ.get("HOIST_SHARED_DIR", ROOT.parent / "shared")) / "vectors"
    if not (shared / "expect.json").exists():
        pytest.skip(f"SKIP: no shared vectors at {shared}")
    return shared


def free_bytes(rt):
    """The device's free bytes as admission sees them."""
    free, total = rt.mem_info()
    assert free <= total
    return free


def read_header(path):
    """(data offset, {name: entry}) of a safetensors file, parsed here."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def raw_tensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file, read here."""
    start, header = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, e in header.items():
            b, end = e["data_offsets"]
            f.seek(start + b)
            out[name] = (e["dtype"], tuple(e["shape"]), f.read(end - b))
    return out


def component_files(folder):
    """The .safetensors files of a component folder."""
    return sorted(p for p in Path(folder).iterdir() if p.name.endswith(".safetensors"))


@pytest.fixture
def np_pipeline(tmp_path):
    """A two-component pipeline of dtypes numpy holds (random contents):
    transformer (4 tensors, ~2 MB) and text_encoder (3 tensors, ~1 MB)."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    root = tmp_path / "np-pipe"
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "FluxPipeline",
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "text_encoder": ["transformers", "CLIPTextModel"]}))
    parts = {
        "transformer": {"a.weight": rng.standard_normal((256, 1024), dtype=np.float32),
                        "a.bias": rng.standard_normal(1024, dtype=np.float32),
                        "b.weight": rng.standard_normal((64, 1024), dtype=np.float32),
                        "steps": rng.integers(0, 1 << 40, 100, dtype=np.int64)},
        "text_encoder": {"emb": rng.standard_normal((128, 1024), dtype=np.float32),
                         "mask": rng.integers(0, 2, 77).astype(bool),
                         "ids": rng.integers(0, 255, 4096, dtype=np.uint8)},
    }
    for comp, tensors in parts.items():
        (root / comp).mkdir()
        save_file(tensors, str(root / comp / "model.safetensors"))
    return root
