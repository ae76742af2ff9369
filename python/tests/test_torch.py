"""hoist.torch: every tensor bit-identical to safetensors.torch.load_file,
zero-copy, on the CPU (host backend) and, where a GPU is usable, on
cuda:0; weights_iterator feeding a model's load_weights.  Skipped with a
visible line where torch is not installed."""

import pytest

torch = pytest.importorskip("torch", reason="SKIP: torch is not installed")
from safetensors.torch import load_file as st_load_file  # noqa: E402

import hoist  # noqa: E402
import hoist.torch as ht  # noqa: E402
from conftest import component_files, make_pipeline, read_header  # noqa: E402

DEVICES = ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def flux(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline at scale 0.01 (323 MB, every tensor name,
    dtype and shard layout of the real one)."""
    return make_pipeline(hoist_cli, tmp_path_factory.mktemp("flux-torch"), scale="0.01")


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device and torch.equal(
        a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def reference(folder, device):
    want = {}
    for f in component_files(folder):
        want.update(st_load_file(str(f), device=device))
    return want


@pytest.mark.parametrize("device", DEVICES)
def test_load_pipeline_bit_identical(flux, device):
    tensors = ht.load_pipeline(flux, device)
    # Load order: largest first (the CLIP encoder, 2.5 MB here, before the VAE's 1.7 MB).
    assert list(tensors) == ["transformer", "text_encoder_2", "text_encoder", "vae"]
    for component, sd in tensors.items():
        want = reference(flux / component, device)
        assert sd.keys() == want.keys()
        for name, t in sd.items():
            assert same_bytes(t, want[name]), f"{component}/{name}"


@pytest.mark.parametrize("device", DEVICES)
def test_tensors_share_hoist_memory(flux, device):
    with hoist.Runtime(device) as rt, rt.load(flux, progress=False) as loaded:
        sd = loaded["vae"]
        for name in sd:
            t = sd[name]
            x = ht.to_torch(t)
            if t.nbytes:
                assert x.data_ptr() == t.device_ptr, name
        exported = {c["name"]: c["exported"] for c in loaded.components}
        assert exported["vae"] == 1  # the last x
        del x
        exported = {c["name"]: c["exported"] for c in loaded.components}
        assert exported["vae"] == 0


def model_for(folder, device):
    """A module with one parameter per tensor of folder's headers (names,
    shapes, dtypes), and the load_weights(iterable) of vLLM/SGLang."""
    _TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.by_name = {}
            for f in component_files(folder):
                _, header = read_header(f)
                for name, e in header.items():
                    p = torch.nn.Parameter(torch.empty(e["shape"], dtype=_TORCH[e["dtype"]],
                                                       device=device), requires_grad=False)
                    self.register_parameter(name.replace(".", "__"), p)
                    self.by_name[name] = p

        def load_weights(self, weights):
            loaded = set()
            for name, w in weights:
                self.by_name[name].data.copy_(w)
                loaded.add(name)
            return loaded

    return Model()


@pytest.mark.parametrize("device", DEVICES)
def test_weights_iterator_into_load_weights(flux, device):
    folder = flux / "text_encoder_2"
    want = reference(folder, device)
    for source in (folder, [str(f) for f in component_files(folder)]):
        model = model_for(folder, device)
        assert model.load_weights(ht.weights_iterator(source, device)) == set(want)
        for name, p in model.by_name.items():
            assert same_bytes(p.data, want[name]), name


def test_weights_iterator_over_a_pipeline_prefixes_components(flux):
    names = [name for name, _ in ht.weights_iterator(flux, "cpu")]
    assert names[0].startswith("transformer.")
    assert {n.split(".", 1)[0] for n in names} == {"transformer", "text_encoder_2", "vae",
                                                     "text_encoder"}


@pytest.mark.parametrize("device", DEVICES)
def test_load_file_matches_safetensors(flux, device):
    for f in component_files(flux / "vae") + component_files(flux / "transformer")[:1]:
        for backend in ("mmap", "pread"):
            got = ht.load_file(f, device=device, backend=backend)
            want = st_load_file(str(f), device=device, backend=backend)
            assert list(got) == list(want)  # the same order too
            for name in want:
                assert same_bytes(got[name], want[name]), name
    with pytest.raises(ValueError, match="backend takes"):
        ht.load_file(f, device=device, backend="telepathy")


def test_weights_iterator_reads_only_the_filtered_weights(flux):
    folder = flux / "text_encoder_2"
    files = [str(f) for f in component_files(folder)]
    want = reference(folder, "cpu")
    for source in (folder, files[:1]):
        names = [n for n, _ in ht.weights_iterator(source, "cpu", tensors="*.layer.0.*")]
        assert names and all(".layer.0." in n for n in names)
        if source is folder:
            assert sorted(names) == sorted(n for n in want if ".layer.0." in n)
    skip_head = [n for n, _ in ht.weights_iterator(folder, "cpu",
                                                   tensors=lambda c, n: "block" not in n)]
    assert sorted(skip_head) == sorted(n for n in want if "block" not in n)
    with pytest.raises(hoist.InvalidArgument, match="matches no tensor"):
        list(ht.weights_iterator(files, "cpu", tensors=["*.layer.0.*", "nothing*"]))
    # Two of the transformer's three shards, loaded one by one: a glob need
    # only match in one of them, and one that matches in neither is refused.
    shards = [str(f) for f in component_files(flux / "transformer")][:2]
    first = {n for n, _ in ht.weights_iterator(shards[:1], "cpu")}
    second = {n for n, _ in ht.weights_iterator(shards[1:], "cpu")}
    only_first, only_second = sorted(first)[0], sorted(second)[0]
    names = [n for n, _ in ht.weights_iterator(shards, "cpu", tensors=[only_first, only_second])]
    assert names == [only_first, only_second]
    with pytest.raises(hoist.InvalidArgument, match="'nothing' matches no tensor of the files"):
        list(ht.weights_iterator(shards, "cpu", tensors=[only_first, "nothing"]))


def test_adapters_share_one_runtime_per_device(flux):
    """load_pipeline and load_file load with the process's runtime for the
    device (made once, its pinned ring reused); release_runtimes closes it
    without touching the tensors already handed out."""
    from hoist import _shared

    hoist.release_runtimes()
    first = ht.load_pipeline(flux / "vae", "cpu")
    rt = _shared.shared_runtime("host")
    second = ht.load_file(component_files(flux / "vae")[0], "cpu")
    assert _shared.shared_runtime("host") is rt and not rt.closed
    assert _shared.shared_runtime("host", threads=2) is not rt  # other options, another one
    hoist.release_runtimes()
    assert rt.closed
    want = reference(flux / "vae", "cpu")
    for name, t in first["vae"].items():
        assert same_bytes(t, want[name]) and same_bytes(second[name], want[name]), name
    third = ht.load_pipeline(flux / "vae", "cpu")  # a new runtime after the release
    assert _shared.shared_runtime("host") is not rt
    assert third["vae"].keys() == want.keys()
