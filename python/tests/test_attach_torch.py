"""hoist.attach with torch, on the CPU (host backend: memfd arenas) and, where
a GPU is usable, on cuda:0 (CUDA IPC arenas of `hoist serve --device
cuda:0`, opened by this second process): every tensor of a FLUX.1-dev-shaped
pipeline, as a torch.Tensor from torch.from_dlpack, is bit-identical to
safetensors.torch.load_file and is the server's memory; a model call
through the shared weights in this process gives the outputs of a process
that loaded the pipeline itself.  Skipped with a visible line without
torch (and the cuda cases without a GPU; the model call without
diffusers)."""

import gc
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="SKIP: torch is not installed")
from safetensors.torch import load_file as st_load_file  # noqa: E402

import hoist  # noqa: E402
import hoist.torch as ht  # noqa: E402
from conftest import component_files, make_pipeline  # noqa: E402
from serving import Server  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda:0", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="SKIP: no usable GPU"))]


def serve_device(device):
    return "host" if device == "cpu" else device


@pytest.fixture(scope="module")
def flux(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline at scale 0.01 (338 MB, every tensor name,
    dtype and shard layout of the real one)."""
    return make_pipeline(hoist_cli, tmp_path_factory.mktemp("flux-attach"), scale="0.01")


@pytest.mark.parametrize("device", DEVICES)
def test_attached_tensors_bit_identical(hoist_cli, flux, device):
    s = Server(hoist_cli, flux, "--device", serve_device(device))
    try:
        with hoist.attach(s.sock, timeout=120) as att:
            assert att.device == serve_device(device)
            count = 0
            for component, sd in att.items():
                want = {}
                for f in component_files(flux / component):
                    want.update(st_load_file(str(f), device=device))
                assert set(sd) == set(want)
                for name in sd:
                    t = sd[name]
                    x = ht.to_torch(t)
                    w = want[name]
                    assert x.dtype == w.dtype and x.shape == w.shape
                    assert str(x.device) == str(w.device)
                    assert torch.equal(x.reshape(-1).view(torch.uint8),
                                       w.reshape(-1).view(torch.uint8)), f"{component}/{name}"
                    if t.nbytes:
                        assert x.data_ptr() == t.device_ptr  # the server's arena
                    count += 1
            assert count == 1819
    finally:
        s.kill()


# The loading process: builds the pipeline on its own load and saves one step.
OWN_LOAD = """
import sys, torch, hoist.diffusers as hd
path, device, out = sys.argv[1:4]
pipe = hd.from_pretrained(path, device, progress=False)
g = torch.Generator(device).manual_seed(0)
image = pipe("a red cube on a table", height=64, width=64, num_inference_steps=1,
             guidance_scale=3.5, generator=g, output_type="pt").images
torch.save(image.cpu(), out)
"""


@pytest.mark.parametrize("device", DEVICES)
def test_model_call_through_shared_weights(hoist_cli, device, tmp_path_factory):
    for m in ("diffusers", "transformers", "accelerate"):
        pytest.importorskip(m, reason=f"SKIP: {m} is not installed")
    import hoist.diffusers as hd
    from tiny_flux import write_tiny_flux

    tiny = write_tiny_flux(hoist_cli, tmp_path_factory.mktemp("tiny-shared"))
    out = tiny / "own.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", OWN_LOAD, str(tiny), device, str(out)], check=True,
                   env=env, timeout=600)
    own = torch.load(out)
    s = Server(hoist_cli, tiny, "--device", serve_device(device))
    try:
        pipe = hd.from_pretrained(tiny, device, attach=s.sock)
        g = torch.Generator(device).manual_seed(0)
        image = pipe("a red cube on a table", height=64, width=64, num_inference_steps=1,
                     guidance_scale=3.5, generator=g, output_type="pt").images
        assert torch.isfinite(image).all()
        assert torch.equal(image.cpu(), own)
        del pipe, image
        gc.collect()
        s.wait_clients(0)
    finally:
        s.kill()
