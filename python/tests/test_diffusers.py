"""hoist.diffusers on a FLUX.1-dev folder: model components built on meta
and filled zero-copy with hoist's tensors, the pipeline running a step
with the outputs of diffusers' own loading, offloaded components wired to
prepare/release.  Needs torch, diffusers, transformers, accelerate, a GPU
and HOIST_TEST_FLUX_DIR: a FLUX.1-dev folder, downloaded or written by
`hoist make-pipeline --preset flux1-dev --scale 1` (its configs match its
tensors at scale 1 and its tokenizers load).  test_diffusers_cpu.py runs
the same comparisons on a CPU-sized FLUX."""

import gc
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="SKIP: torch is not installed")
diffusers = pytest.importorskip("diffusers", reason="SKIP: diffusers is not installed")
pytest.importorskip("transformers", reason="SKIP: transformers is not installed")
pytest.importorskip("accelerate", reason="SKIP: accelerate is not installed")
from safetensors.torch import load_file as st_load_file  # noqa: E402

import hoist.diffusers as hd  # noqa: E402
from conftest import component_files  # noqa: E402


@pytest.fixture(scope="module")
def flux_dir():
    if not torch.cuda.is_available():
        pytest.skip("SKIP: no usable GPU")
    path = os.environ.get("HOIST_TEST_FLUX_DIR")
    if not path:
        pytest.skip("SKIP: HOIST_TEST_FLUX_DIR is not set (a FLUX.1-dev folder: make-pipeline "
                    "--preset flux1-dev --scale 1)")
    return Path(path)


def test_components_are_hoist_memory_and_bit_identical(flux_dir):
    models, loaded = hd.load_components(flux_dir, "cuda:0", progress=False)
    try:
        assert set(models) == set(loaded)
        for name, model in models.items():
            want = {}
            for f in component_files(flux_dir / name):
                want.update(st_load_file(str(f), device="cuda:0"))
            params = dict(model.named_parameters())
            # The model's names for the checkpoint's tensors (transformers 5
            # drops CLIP's "text_model." prefix, for one).
            names = hd._checkpoint_names(model, want.keys())
            for key, w in want.items():
                if names[key] not in params:
                    continue  # tied or ignored by the model
                p = params[names[key]]
                assert p.data_ptr() == loaded[name][key].device_ptr, f"{name}/{key}: a copy"
                assert torch.equal(p.view(torch.uint8), w.view(torch.uint8)), f"{name}/{key}"
    finally:
        models.clear()
        loaded.close()


def run_step(pipe):
    generator = torch.Generator("cuda").manual_seed(0)
    return pipe("a red cube", height=256, width=256, num_inference_steps=1,
                guidance_scale=3.5, generator=generator, output_type="pt").images


def test_from_pretrained_matches_diffusers(flux_dir):
    ref = diffusers.DiffusionPipeline.from_pretrained(flux_dir, torch_dtype=torch.bfloat16)
    want = run_step(ref.to("cuda:0"))
    del ref
    gc.collect()
    torch.cuda.empty_cache()
    pipe = hd.from_pretrained(flux_dir, "cuda:0", progress=False)
    got = run_step(pipe)
    assert torch.equal(got, want)


def test_offloaded_component_is_prepared_and_released(flux_dir):
    pipe = hd.from_pretrained(flux_dir, "cuda:0", offload="text_encoder_2", progress=False)
    info = {c["name"]: c for c in pipe._hoist_loaded.components}
    assert info["text_encoder_2"]["residency"] == "offload"
    run_step(pipe)
    info = {c["name"]: c for c in pipe._hoist_loaded.components}
    assert info["text_encoder_2"]["device_bytes"] == 0  # released after its call
    assert info["text_encoder_2"]["exported"] == 0
