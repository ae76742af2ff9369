"""Loads with ranks from Python, on the host backend: W processes (forked)
each call Runtime.load with rank/world_size/rendezvous and an FSDP
component and a tensor-parallel plan; every rank's Tensor.shard says which
part it holds, and the parts put together are the file's tensors (the
official reader's numpy arrays).  A plan that differs between ranks raises
InvalidInput on every rank.  With torch installed, the same through a
torch.distributed process group (gloo on CPU): rendezvous by broadcast."""
import multiprocessing
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hoist

PLAN = "text_encoder:q.weight=1,text_encoder:t3=-1"


@pytest.fixture
def pipeline(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "pipe"
    (root / "transformer").mkdir(parents=True)
    (root / "text_encoder").mkdir()
    (root / "model_index.json").write_text(
        '{"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"],'
        ' "text_encoder": ["transformers", "CLIPTextModel"]}')
    save_file({"w": rng.standard_normal((13, 6)).astype(np.float32),
               "b": rng.standard_normal((5,)).astype(np.float16),
               "s": np.array(3.5, dtype=np.float32),
               "big": rng.standard_normal((257, 33)).astype(np.float32)},
              str(root / "transformer" / "model.safetensors"))
    save_file({"q.weight": rng.standard_normal((12, 12)).astype(np.float32),
               "t3": rng.integers(-9, 9, size=(2, 3, 12)).astype(np.int32),
               "ln": rng.standard_normal((12,)).astype(np.float32)},
              str(root / "text_encoder" / "model.safetensors"))
    return root


def _rank(root, rank, world, rendezvous, fsdp, queue):
    try:
        with hoist.Runtime("host", threads=2, chunk=4096) as rt, \
                rt.load(str(root), fsdp=fsdp, shard=PLAN, rank=rank, world_size=world,
                        rendezvous=rendezvous, group_timeout=20, progress=False) as loaded:
            parts = {}
            for comp, sd in loaded.items():
                for name, t in sd.items():
                    parts[(comp, name)] = (tuple(t.shard), t.numpy().copy())
            queue.put((rank, "ok", parts))
    except hoist.Error as e:
        queue.put((rank, type(e).__name__, e.message))


def _run(root, world, fsdp_for):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    rdv = f"file:{root}/rendezvous"
    procs = [ctx.Process(target=_rank, args=(root, r, world, rdv, fsdp_for(r), queue))
             for r in range(world)]
    for p in procs:
        p.start()
    results = dict((r, (kind, data)) for r, kind, data in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(60)
    return results


@pytest.mark.parametrize("world", [2, 3])
def test_parts_put_together_are_the_files(pipeline, world):
    results = _run(pipeline, world, lambda r: "transformer")
    files = {c: load_file(str(pipeline / c / "model.safetensors"))
             for c in ("transformer", "text_encoder")}
    for r in range(world):
        assert results[r][0] == "ok", results[r]
    for comp, tensors in files.items():
        for name, want in tensors.items():
            got, split = np.zeros_like(want), False
            for r in range(world):
                info, part = results[r][1][(comp, name)]
                sharded, rank, wsize, dim, off, length, padded, shape = info
                assert (rank, wsize, shape) == (r, world, want.shape)
                if not sharded:
                    np.testing.assert_array_equal(part, want)
                    continue
                split = True
                index = [slice(None)] * want.ndim
                index[dim] = slice(off, off + length)
                got[tuple(index)] = part
                if comp == "transformer":  # FSDP2: torch.chunk's rows
                    assert padded == -(-want.shape[0] // world)
            if split:
                np.testing.assert_array_equal(got, want)


def test_a_plan_that_differs_fails_every_rank(pipeline):
    results = _run(pipeline, 2, lambda r: "transformer" if r == 0 else None)
    for r in range(2):
        kind, message = results[r]
        assert kind == "InvalidInput", results[r]
        assert "disagree" in message


def _torch_rank(root, rank, world, port, queue):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        with hoist.Runtime("host") as rt, rt.load(str(root), fsdp="transformer",
                                                  process_group=dist.group.WORLD,
                                                  progress=False) as loaded:
            t = loaded["transformer"]["w"]
            queue.put((rank, tuple(t.shard)[:6], t.numpy().copy()))
    finally:
        dist.destroy_process_group()


def test_a_torch_process_group(pipeline):
    pytest.importorskip("torch", reason="torch is not installed: process_group not tried")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_torch_rank, args=(pipeline, r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict((r, (info, part)) for r, info, part in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(60)
    want = load_file(str(pipeline / "transformer" / "model.safetensors"))["w"]
    np.testing.assert_array_equal(np.concatenate([got[0][1], got[1][1]]), want)
    assert got[1][0] == (True, 1, 2, 0, 7, 6)
