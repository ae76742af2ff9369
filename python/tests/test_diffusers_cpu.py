"""hoist.diffusers on the CPU (host backend), on a FLUX pipeline small
enough to run there (tiny_flux.py: diffusers' and transformers' classes
with tiny configs, make-pipeline's tokenizers and scheduler): the
pipeline built on hoist's tensors gives the same 64x64 step as diffusers'
own loading of the folder, loaded or attached from `hoist serve` (with an
offloaded text encoder prepared and released through the server).  Skips
with a visible line without torch, diffusers, transformers or
accelerate."""

import gc

import pytest

torch = pytest.importorskip("torch", reason="SKIP: torch is not installed")
diffusers = pytest.importorskip("diffusers", reason="SKIP: diffusers is not installed")
pytest.importorskip("transformers", reason="SKIP: transformers is not installed")
pytest.importorskip("accelerate", reason="SKIP: accelerate is not installed")

import hoist  # noqa: E402
import hoist.diffusers as hd  # noqa: E402
from serving import Server  # noqa: E402
from tiny_flux import write_tiny_flux  # noqa: E402


@pytest.fixture(scope="module")
def tiny(hoist_cli, tmp_path_factory):
    return write_tiny_flux(hoist_cli, tmp_path_factory.mktemp("tiny-flux"))


def step(pipe):
    generator = torch.Generator("cpu").manual_seed(0)
    return pipe("a red cube on a table", height=64, width=64, num_inference_steps=1,
                guidance_scale=3.5, generator=generator, output_type="pt").images


@pytest.fixture(scope="module")
def reference(tiny):
    ref = diffusers.DiffusionPipeline.from_pretrained(tiny, torch_dtype=torch.bfloat16)
    out = step(ref)
    assert torch.isfinite(out).all()
    return out


def test_loaded_pipeline_matches_diffusers(tiny, reference):
    pipe = hd.from_pretrained(tiny, "cpu", progress=False)
    assert type(pipe).__name__ == "FluxPipeline"
    weight = pipe.transformer.x_embedder.weight
    assert weight.data_ptr() == pipe._hoist_loaded["transformer"]["x_embedder.weight"].device_ptr
    assert torch.equal(step(pipe), reference)


def test_attached_pipeline_matches_diffusers(hoist_cli, tiny, reference):
    s = Server(hoist_cli, tiny, "--device", "host", "--offload", "text_encoder_2")
    try:
        pipe = hd.from_pretrained(tiny, attach=s.sock)
        weights = pipe._hoist_loaded
        assert isinstance(weights, hoist.Attached) and weights.device == "host"
        assert torch.equal(step(pipe), reference)
        info = {c["name"]: c for c in weights.components}
        assert info["text_encoder_2"]["residency"] == "offload"
        assert info["text_encoder_2"]["device_bytes"] == 0  # released after its call
        assert info["text_encoder_2"]["exported"] == 0
        assert s.clients() == 1
        del pipe, weights, info
        gc.collect()
        s.wait_clients(0)  # the last parameter gone, the attachment detached
    finally:
        s.kill()


def test_attach_arguments(hoist_cli, tiny):
    s = Server(hoist_cli, tiny, "--device", "host")
    try:
        with pytest.raises(TypeError, match="hoist serve"):
            hd.load_components(tiny, attach=s.sock, offload="vae")
        with pytest.raises(ValueError, match="on host here, not on cuda:0"):
            hd.load_components(tiny, "cuda:0", attach=s.sock)
        s.wait_clients(0)
        with hoist.attach(s.sock) as weights:  # an Attached of the caller's is used as is
            models, got = hd.load_components(tiny, "cpu", attach=weights)
            assert got is weights and set(models) == set(weights)
            del models
    finally:
        s.kill()


def test_a_model_that_cannot_be_built_leaves_nothing_loaded(tiny, monkeypatch):
    """The models are built on a thread while the weights load: a failure
    there reaches the caller, and the load it ran beside is closed."""
    loads = []
    real_load = hoist.Runtime.load

    def load(self, *args, **kwargs):
        loads.append(real_load(self, *args, **kwargs))
        return loads[-1]

    def broken(library, cls, folder):
        raise RuntimeError(f"cannot build {cls.__name__}")

    monkeypatch.setattr(hoist.Runtime, "load", load)
    monkeypatch.setattr(hd, "_empty_model", broken)
    with pytest.raises(RuntimeError, match="cannot build"):
        hd.from_pretrained(tiny, "cpu", progress=False)
    assert len(loads) == 1 and loads[0].closed
