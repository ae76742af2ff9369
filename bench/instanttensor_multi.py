#!/usr/bin/env python3
"""instanttensor_multi.py — the peer for loads on several GPUs: InstantTensor
(pip install instanttensor==0.2.2) with a torch.distributed process group,
every rank ending with every tensor of the pipeline on its own card, as
`hoist load --devices` does.  Run under torchrun, one process per GPU:

    torchrun --nproc-per-node W bench/instanttensor_multi.py PIPELINE [--repeat N]

PIPELINE is a folder (searched recursively for *.safetensors).  After one
warm-up load, N timed loads (default 3): all ranks start together (a
barrier), each times safe_open(files, framework="pt", device=LOCAL_RANK,
process_group=WORLD) until its last tensor is on the card (synchronized),
and a load takes as long as its slowest rank.  Rank 0 prints one JSON
object: loader, version, world_size, bytes, runs (seconds), median_s,
GBps_per_card (bytes / median_s).
"""
import argparse
import glob
import json
import os
import statistics
import time

import torch
import torch.distributed as dist


def files_of(path):
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, "**", "*.safetensors"), recursive=True))


def one_load(safe_open, files, device, group):
    dist.barrier()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    tensors, nbytes = {}, 0
    with safe_open(files, framework="pt", device=device, process_group=group) as f:
        for name, tensor in f.tensors():
            tensors[name] = tensor
            nbytes += tensor.numel() * tensor.element_size()
    torch.cuda.synchronize()
    mine = torch.tensor([time.perf_counter() - t0], device=device, dtype=torch.float64)
    dist.all_reduce(mine, op=dist.ReduceOp.MAX)
    del tensors
    torch.cuda.empty_cache()
    return mine.item(), nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pipeline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl", device_id=torch.device("cuda", local))
    try:
        import instanttensor
        from instanttensor import safe_open
    except ImportError as e:
        if dist.get_rank() == 0:
            print(json.dumps({"loader": "instanttensor", "error": f"not installed: {e}"}))
        dist.destroy_process_group()
        return
    files = files_of(args.pipeline)
    group = dist.GroupMember.WORLD
    one_load(safe_open, files, local, group)  # warm-up: page cache, NCCL channels
    runs, nbytes = [], 0
    for _ in range(args.repeat):
        seconds, nbytes = one_load(safe_open, files, local, group)
        runs.append(seconds)
    if dist.get_rank() == 0:
        median = statistics.median(runs)
        print(json.dumps({"loader": "instanttensor",
                          "version": getattr(instanttensor, "__version__", "unknown"),
                          "world_size": dist.get_world_size(), "bytes": nbytes, "runs": runs,
                          "median_s": median, "GBps_per_card": nbytes / median / 1e9}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
