#!/usr/bin/env python3
"""attach_python.py — what `hoist serve` saves a Python inference worker.

    bench/attach_python.py [--build BUILD] [--device cuda:0] [--repeat 20]
        [--restarts 5] [--socket SOCK] PIPELINE

Starts `hoist serve --device DEVICE` on PIPELINE (or uses a running server
given with --socket) and measures, each in fresh processes:

  attach          in one worker whose CUDA context already exists (torch
                  initialised before the clock starts): hoist.attach(socket)
                  until every tensor is a torch.Tensor in a dict
                  ({component: {name: tensor}}, torch.from_dlpack of each),
                  --repeat times (median, min, max ms), then detach
  restart_*       a worker's whole restart, process start to every tensor
                  usable as a torch.Tensor on the device (python, import
                  torch and hoist, CUDA context, weights, synchronized),
                  --restarts times each, by
                    restart_attach       hoist.attach + torch.from_dlpack
                    restart_hoist_load   hoist.torch.load_pipeline
                    restart_safetensors  safetensors.torch.load_file per file

Output: one JSON line per measurement, then a table.  hoist is imported
from BUILD/python (--build, $HOIST_BUILD, else build-gpu or build).
--device cpu runs the same on the host backend (memfd arenas) to check
the script without a GPU.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pybench  # noqa: E402

MEASURES = ["attach", "restart_attach", "restart_hoist_load", "restart_safetensors"]


# ---------------------------------------------------------------------------
# Workers

def w_attach(args):
    import hoist
    import torch

    device = torch.device(args["device"])
    if device.type == "cuda":  # the context exists before the clock starts
        torch.cuda.init()
        torch.empty(1, device=device)
        torch.cuda.synchronize(device)
    ms, attach_ms, tensors, nbytes = [], [], 0, 0
    for _ in range(args["warmup"] + args["repeat"]):
        t0 = time.perf_counter()
        att = hoist.attach(args["socket"])
        t1 = time.perf_counter()
        state = {c: {n: torch.from_dlpack(t) for n, t in sd.items()} for c, sd in att.items()}
        t2 = time.perf_counter()
        ms.append((t2 - t0) * 1e3)
        attach_ms.append((t1 - t0) * 1e3)
        tensors = sum(len(sd) for sd in state.values())
        nbytes = sum(t.numel() * t.element_size() for sd in state.values() for t in sd.values())
        where = next(t for sd in state.values() for t in sd.values()).device
        if device.type == "cuda" and where != device:
            raise RuntimeError(f"attached tensors are on {where}, not on {device}")
        # Every tensor dropped before the detach: a live one would keep the
        # arenas mapped, and the next attach would find them open.
        del state
        att.detach()
    ms, attach_ms = ms[args["warmup"]:], attach_ms[args["warmup"]:]
    return {"tensors": tensors, "bytes": nbytes, "ms": ms, "median_ms": pybench.median(ms),
            "min_ms": min(ms), "max_ms": max(ms),
            "attach_call_median_ms": pybench.median(attach_ms)}


def _usable(torch, device, state):
    """Synchronizes, so every tensor of state is complete on device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return sum(len(sd) for sd in state.values())


def w_restart_attach(args):
    import torch

    import hoist

    device = torch.device(args["device"])
    att = hoist.attach(args["socket"])
    state = {c: {n: torch.from_dlpack(t) for n, t in sd.items()} for c, sd in att.items()}
    n = _usable(torch, device, state)
    return {"usable_at": time.time(), "tensors": n}


def w_restart_hoist_load(args):
    import torch

    import hoist.torch as ht

    device = torch.device(args["device"])
    state = ht.load_pipeline(args["pipeline"], args["device"])
    n = _usable(torch, device, state)
    return {"usable_at": time.time(), "tensors": n}


def w_restart_safetensors(args):
    import torch
    from safetensors.torch import load_file

    device = torch.device(args["device"])
    state = {f: load_file(f, device=args["device"])
             for fs in pybench.safetensors_files(args["pipeline"]).values() for f in fs}
    n = _usable(torch, device, state)
    return {"usable_at": time.time(), "tensors": n}


WORKERS = {"attach": w_attach, "restart_attach": w_restart_attach,
           "restart_hoist_load": w_restart_hoist_load,
           "restart_safetensors": w_restart_safetensors}


# ---------------------------------------------------------------------------
# The parent

class Serve:
    """hoist serve on PIPELINE with --json events; ready() waits for the load."""

    def __init__(self, build, device, pipeline):
        self.dir = tempfile.mkdtemp(prefix="hoist-attach.", dir="/tmp")
        self.socket = os.path.join(self.dir, "s.sock")
        dev = "host" if device == "cpu" else device
        self.proc = subprocess.Popen([os.path.join(build, "hoist"), "serve", "--json", "--device",
                                      dev, "--unix", self.socket, "--listen", "none", pipeline],
                                     stdout=subprocess.PIPE, text=True)

    def ready(self, timeout):
        import json
        import select

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"hoist serve exited ({self.proc.wait()}) before it was ready")
            ev = json.loads(line)
            if ev["event"] == "ready":
                return ev
            if ev["event"] == "failed":
                raise RuntimeError(f"hoist serve failed: {ev}")
        raise RuntimeError(f"hoist serve not ready after {timeout:.0f} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                code = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        else:
            code = self.proc.returncode
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


def restart(script, name, common, timeout):
    """One restart: the process starts now; the worker says when its last
    tensor was usable."""
    t0 = time.time()
    rec = pybench.run_worker(script, name, common, timeout)
    if "error" in rec:
        return rec
    return {"seconds": rec["usable_at"] - t0, "tensors": rec["tensors"]}


def main():
    if pybench.worker_main(WORKERS):
        return
    ap = pybench.argument_parser(__doc__)
    ap.add_argument("--socket", help="a running hoist serve of PIPELINE (default: start one)")
    ap.add_argument("--repeat", type=int, default=20, help="timed attaches (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed attaches first (default 2)")
    ap.add_argument("--restarts", type=int, default=5, help="restarts per way (default 5)")
    ap.add_argument("--measures", default=",".join(MEASURES),
                    help=f"comma list of {','.join(MEASURES)} (default all)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per process and for "
                                                               "the server's load (default 900)")
    args = ap.parse_args()
    measures = [m for m in args.measures.split(",") if m]
    bad = [m for m in measures if m not in MEASURES]
    if bad:
        ap.error(f"unknown measure(s) {', '.join(bad)}; measures: {', '.join(MEASURES)}")
    if args.repeat < 1 or args.restarts < 1 or args.warmup < 0:
        ap.error("--repeat and --restarts must be >= 1, --warmup >= 0")
    pybench.check_common(ap, args)
    build = pybench.build_dir(args.build)
    hoist = pybench.import_hoist(build)
    script = os.path.abspath(__file__)
    pipeline = os.path.abspath(args.pipeline)
    server = None
    if args.socket is None:
        server = Serve(build, args.device, pipeline)
    try:
        if server is not None:
            ev = server.ready(args.timeout)
            pybench.emit({"step": "serve_ready", "seconds": ev.get("seconds"),
                          "bytes": ev.get("bytes"), "GBps": ev.get("GBps")})
        socket = args.socket or server.socket
        print(f"attach_python: hoist {hoist.library_version} from {build}/python, {pipeline} "
              f"served on {args.device} at {socket}", file=sys.stderr)
        common = {"build": build, "pipeline": pipeline, "device": args.device, "socket": socket,
                  "repeat": args.repeat, "warmup": args.warmup}
        rows = []
        if "attach" in measures:
            rec = pybench.run_worker(script, "attach", common, args.timeout)
            pybench.emit({"step": "attach", **rec})
            rows.append({"what": "attach to a dict of torch tensors (context made)",
                         "ms": rec.get("median_ms"), "range": "" if "error" in rec else
                         f"{rec['min_ms']:.1f}-{rec['max_ms']:.1f} ms, {rec['tensors']} tensors",
                         "note": rec.get("error", "")})
        for way in [m for m in measures if m.startswith("restart_")]:
            runs = [restart(script, way, common, args.timeout) for _ in range(args.restarts)]
            errors = [r["error"] for r in runs if "error" in r]
            secs = [r["seconds"] for r in runs if "error" not in r]
            rec = {"seconds": secs, "median_seconds": pybench.median(secs),
                   "tensors": next((r["tensors"] for r in runs if "tensors" in r), None)}
            if errors:
                rec["error"] = errors[0]
            pybench.emit({"step": way, **rec})
            rows.append({"what": way.replace("_", " ", 1).replace("_", " "),
                         "ms": None if rec["median_seconds"] is None else
                         rec["median_seconds"] * 1e3,
                         "range": f"{min(secs):.3f}-{max(secs):.3f} s" if secs else "",
                         "note": rec.get("error", "")})
    finally:
        if server is not None:
            code = server.stop()
            print(f"attach_python: hoist serve exit {code}", file=sys.stderr)
    print()
    pybench.table(rows, [("what", "measure"), ("ms", "median ms"), ("range", "range"),
                         ("note", "")])


if __name__ == "__main__":
    main()
