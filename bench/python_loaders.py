#!/usr/bin/env python3
"""python_loaders.py — hoist from Python against the loaders Python programs
use, on the same files, each in its own process, warm (files in the page
cache), medians of --repeat timed runs after --warmup untimed ones.

    bench/python_loaders.py [--build BUILD] [--device cuda:0] [--repeat 3]
        [--steps LIST] [--load-into COMPONENTS] PIPELINE

PIPELINE is a pipeline folder, e.g. `hoist make-pipeline --preset flux1-dev
--scale 1` (full-size FLUX.1-dev; the diffusers steps need scale 1, the
only scale whose configs match the tensors).  Steps (--steps, default all):

  hoist_torch     hoist.torch.load_pipeline(PIPELINE, device): every tensor a
                  torch.Tensor, resident, synchronized (the whole call)
  hoist_rt        the same through one reused hoist.Runtime and rt.load, every
                  tensor exported with hoist.torch.to_torch
  hoist_cli       `hoist bench load --json` of the same folder (its median)
  instant_all     InstantTensor safe_open(all files, backend=BUFFERED), every
                  tensor kept (copy=True)
  instant_comp    the same, one safe_open per component
  safetensors     safetensors.torch.load_file(f, device) of every file
  load_into       rt.load_into(PIPELINE, component, parameters) into a model
                  built on meta and to_empty(device) (transformers or
                  diffusers class of model_index.json), per --load-into
                  component, beside rt.load of the same component (the arena
                  rate) and the device memory above the parameters
  diffusers       hoist.diffusers.from_pretrained to a ready pipeline against
                  DiffusionPipeline.from_pretrained(torch_dtype=bfloat16)
                  .to(device): seconds, device peak of each, then one 256x256
                  step of each with the text encoders', transformer's and VAE
                  decoder's outputs compared bit for bit

Output: one JSON line per step ({"step": ..., ...}; {"step", "error"} when
it failed), then a table with the ratios.  hoist is imported from
BUILD/python (--build, $HOIST_BUILD, else build-gpu or build); the peers
need torch, safetensors, instanttensor, diffusers, transformers and
accelerate where their steps run (a missing one is reported, not fatal).
--device cpu runs what runs without a GPU (hoist on the host backend,
safetensors, diffusers on the CPU) to check the script.
"""
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pybench  # noqa: E402

STEPS = ["hoist_torch", "hoist_rt", "hoist_cli", "instant_all", "instant_comp", "safetensors",
         "load_into", "diffusers"]
PROMPT = "a red cube on a table"
MIB = 1 << 20


# ---------------------------------------------------------------------------
# Workers (each runs in its own process)

def _torch_device(args):
    import torch

    return torch.device(args["device"])


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(torch, device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _fresh_runs(args, torch, device, holder, make, check=None):
    """Seconds of --repeat calls of make() after --warmup ones, each until
    the device is synchronized; the previous result is dropped (and the
    device's cache emptied) before the clock starts, the last one stays in
    holder["last"]."""
    def once():
        holder.clear()
        _release(torch, device)
        t0 = time.perf_counter()
        out = make()
        _sync(torch, device)
        seconds = time.perf_counter() - t0
        if check is not None:
            check(out)
        holder["last"] = out
        return seconds

    for _ in range(args["warmup"]):
        once()
    return [once() for _ in range(args["repeat"])]


def _loader_run(args, load):
    """Times load() -> {name: tensor} (kept until the run ends) and reports
    GB/s over the tensors' bytes."""
    import torch

    device = _torch_device(args)
    files = [f for fs in pybench.safetensors_files(args["pipeline"]).values() for f in fs]
    pybench.warm_page_cache(files)
    nbytes = pybench.tensor_bytes(files)
    held = {}

    def check(out):
        got = sum(t.numel() * t.element_size() for t in out.values())
        if got != nbytes:
            raise RuntimeError(f"loaded {got} bytes of tensors, the files hold {nbytes}")

    with pybench.DevicePeak(torch, device) as peak:
        seconds = _fresh_runs(args, torch, device, held, load, check)
    held.clear()
    _release(torch, device)
    rec = {"bytes": nbytes, "files": len(files), "seconds": seconds,
           "median_seconds": pybench.median(seconds),
           "median_GBps": nbytes / pybench.median(seconds) / 1e9}
    rec.update(peak.record())
    return rec


def w_hoist_torch(args):
    import hoist.torch as ht

    def load():
        out = {}
        for comp, sd in ht.load_pipeline(args["pipeline"], args["device"]).items():
            out.update({f"{comp}/{k}": v for k, v in sd.items()})
        return out

    return _loader_run(args, load)


def w_hoist_rt(args):
    import hoist
    import hoist.torch as ht

    rt = hoist.Runtime("host" if args["device"] == "cpu" else args["device"])

    def load():
        out = {}
        with rt.load(args["pipeline"], progress=False) as loaded:
            for comp, sd in loaded.items():
                out.update({f"{comp}/{k}": ht.to_torch(t) for k, t in sd.items()})
        return out

    return _loader_run(args, load)


def w_safetensors(args):
    from safetensors.torch import load_file

    files = [f for fs in pybench.safetensors_files(args["pipeline"]).values() for f in fs]

    def load():
        out = {}
        for f in files:
            out.update({f"{f}/{k}": v for k, v in load_file(f, device=args["device"]).items()})
        return out

    return _loader_run(args, load)


def _instant(args, groups):
    import torch
    from instanttensor import BackendPolicy, safe_open

    device = torch.device(args["device"])
    if device.type != "cuda":
        raise RuntimeError("InstantTensor loads to CUDA devices only")

    def load():
        out = {}
        for files in groups:
            with safe_open(files, framework="pt", device=device.index or 0,
                           backend=BackendPolicy.BUFFERED) as f:
                for name, t in f.tensors():
                    out[f"{files[0]}/{name}"] = t
        return out

    return _loader_run(args, load)


def w_instant_all(args):
    comps = pybench.safetensors_files(args["pipeline"])
    return _instant(args, [[f for fs in comps.values() for f in fs]])


def w_instant_comp(args):
    return _instant(args, list(pybench.safetensors_files(args["pipeline"]).values()))


def _model_on_device(path, component, device):
    """The model of component (its model_index.json class) built on meta,
    in its checkpoint dtype, then to_empty(device): parameters with no
    contents."""
    import importlib

    import torch
    from accelerate import init_empty_weights

    with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
        library, cls_name = json.load(f)[component]
    cls = getattr(importlib.import_module(library), cls_name)
    folder = os.path.join(path, component)
    with init_empty_weights(include_buffers=False):
        if library == "diffusers":
            model = cls.from_config(cls.load_config(folder))
        else:
            model = cls(cls.config_class.from_pretrained(folder))
    header = pybench.headers(pybench.safetensors_files(folder)[""][:1])
    dtype = {"BF16": torch.bfloat16, "F16": torch.float16,
             "F32": torch.float32}[next(iter(header.values()))["dtype"]]
    # Tied weights (T5's encoder.embed_tokens is shared) are one parameter,
    # as in the checkpoint; to_empty keeps them tied.
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.to(dtype).to_empty(device=device).eval().requires_grad_(False)


def w_load_into(args):
    import hoist
    import torch

    device = _torch_device(args)
    component = args["component"]
    path = args["pipeline"]
    folder = os.path.join(path, component)
    files = pybench.safetensors_files(folder)[""]
    pybench.warm_page_cache(files)
    nbytes = pybench.tensor_bytes(files)
    rt = hoist.Runtime("host" if device.type == "cpu" else str(device))
    if not hasattr(rt, "load_into"):
        raise RuntimeError("this build's hoist.Runtime has no load_into")

    # The arena rate: rt.load of the same component, every tensor resident.
    def arena():
        with rt.load(folder, progress=False):
            pass

    arena_s = pybench.timed_runs(arena, args["repeat"], args["warmup"])
    _release(torch, device)

    model = _model_on_device(path, component, device)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    # The destination of each checkpoint tensor, under its checkpoint name
    # (a tied parameter has several names in the state dict, one in the file).
    state = model.state_dict()
    dest = {name: state[name] for name in pybench.headers(files)}
    _sync(torch, device)

    def into():
        rt.load_into(path, component, dest, strict=True)
        _sync(torch, device)

    with pybench.DevicePeak(torch, device) as peak:
        into_s = pybench.timed_runs(into, args["repeat"], args["warmup"])
    rec = {"component": component, "bytes": nbytes, "parameter_bytes": param_bytes,
           "seconds": into_s, "median_GBps": nbytes / pybench.median(into_s) / 1e9,
           "arena_seconds": arena_s,
           "arena_median_GBps": nbytes / pybench.median(arena_s) / 1e9}
    rec["ratio_to_arena"] = rec["median_GBps"] / rec["arena_median_GBps"]
    rec.update(peak.record())
    if peak.cuda:
        rec["overhead_within_64MiB"] = rec["device_peak_above_bytes"] <= 64 * MIB
    return rec


def _outputs_of(output, prefix, into):
    """Every tensor of a module's output (tensor, tuple, ModelOutput) on the
    CPU, under prefix.N or prefix.key."""
    import torch

    if isinstance(output, torch.Tensor):
        into[prefix] = output.detach().to("cpu", copy=True)
    elif isinstance(output, dict):
        for k, v in output.items():
            _outputs_of(v, f"{prefix}.{k}", into)
    elif isinstance(output, (tuple, list)):
        for i, v in enumerate(output):
            _outputs_of(v, f"{prefix}.{i}", into)


def _one_step(pipe, device, out_file):
    """One 256x256 step; saves the outputs of the text encoders, the
    transformer and the VAE decoder (per call) to out_file."""
    import torch

    got, calls, hooks = {}, {}, []
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        module = module.decoder if name == "vae" else module

        def hook(mod, inputs, output, name=name):
            calls[name] = calls.get(name, 0) + 1
            _outputs_of(output, f"{name}#{calls[name]}", got)

        hooks.append(module.register_forward_hook(hook))
    generator = torch.Generator(device).manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        image = pipe(PROMPT, height=256, width=256, num_inference_steps=1, guidance_scale=3.5,
                     generator=generator, output_type="pt").images
    _sync(torch, device)
    seconds = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    got["image"] = image.detach().to("cpu")
    torch.save(got, out_file)
    finite = all(bool(torch.isfinite(t.float()).all()) for t in got.values()
                 if t.is_floating_point())
    return seconds, sorted(got), finite


def _pipeline_run(args, build):
    import torch

    device = _torch_device(args)
    files = [f for fs in pybench.safetensors_files(args["pipeline"]).values() for f in fs]
    pybench.warm_page_cache(files)
    nbytes = pybench.tensor_bytes(files)
    holder = {}
    with pybench.DevicePeak(torch, device) as peak:
        seconds = _fresh_runs(args, torch, device, holder, build)
    step_s, keys, finite = _one_step(holder["last"], device, args["out"])
    rec = {"bytes": nbytes, "seconds": seconds, "median_seconds": pybench.median(seconds),
           "median_GBps": nbytes / pybench.median(seconds) / 1e9, "step_seconds": step_s,
           "outputs": keys, "outputs_finite": finite, "outputs_file": args["out"]}
    rec.update(peak.record())
    if peak.cuda:
        # The peak counts the last build, whose pipeline is alive at the end.
        rec["device_peak_minus_tensor_bytes"] = rec["device_peak_above_bytes"] - nbytes
    return rec


def w_diffusers_hoist(args):
    import hoist.diffusers as hd

    return _pipeline_run(args, lambda: hd.from_pretrained(args["pipeline"], args["device"],
                                                          progress=False))


def w_diffusers_ref(args):
    import diffusers
    import torch

    def build():
        pipe = diffusers.DiffusionPipeline.from_pretrained(args["pipeline"],
                                                           torch_dtype=torch.bfloat16)
        return pipe.to(args["device"])

    return _pipeline_run(args, build)


WORKERS = {"hoist_torch": w_hoist_torch, "hoist_rt": w_hoist_rt, "safetensors": w_safetensors,
           "instant_all": w_instant_all, "instant_comp": w_instant_comp,
           "load_into": w_load_into, "diffusers_hoist": w_diffusers_hoist,
           "diffusers_ref": w_diffusers_ref}


# ---------------------------------------------------------------------------
# The parent

def hoist_cli(args, build):
    cli = os.path.join(build, "hoist")
    dev = "host" if args.device == "cpu" else args.device
    cmd = [cli, "bench", "load", "--json", "--device", dev, "--repeat", str(args.repeat),
           args.pipeline]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": f"hoist bench load exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["median_seconds"] = out["bytes"] / out["median_GBps"] / 1e9 if out["median_GBps"] else None
    return out


def compare_outputs(a_file, b_file):
    """{"equal": bool, "compared": N, "differ": [..]} of two saved outputs."""
    import torch

    a, b = torch.load(a_file), torch.load(b_file)
    differ = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        same = (x is not None and y is not None and x.dtype == y.dtype and x.shape == y.shape
                and torch.equal(x.view(-1).view(torch.uint8) if x.numel() else x,
                                y.view(-1).view(torch.uint8) if y.numel() else y))
        if not same:
            diff = None
            if x is not None and y is not None and x.shape == y.shape:
                diff = float((x.float() - y.float()).abs().nan_to_num(float("inf")).max())
            differ.append({"output": k, "max_abs_diff": diff})
    return {"equal": not differ, "compared": len(set(a) | set(b)), "differ": differ[:10]}


def main():
    if pybench.worker_main(WORKERS):
        return
    ap = pybench.argument_parser(__doc__)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per step (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    ap.add_argument("--steps", default=",".join(STEPS),
                    help=f"comma list of {','.join(STEPS)} (default all)")
    ap.add_argument("--load-into", default="text_encoder_2,transformer",
                    help="components for the load_into step (default text_encoder_2,transformer)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per step (default 1200)")
    ap.add_argument("--out", help="folder for the diffusers step outputs (default: a temporary "
                                  "one, removed)")
    args = ap.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        ap.error(f"unknown step(s) {', '.join(bad)}; steps: {', '.join(STEPS)}")
    if args.repeat < 3:
        print("python_loaders: note: --repeat below 3 gives no reliable median", file=sys.stderr)
    if args.repeat < 1 or args.warmup < 0:
        ap.error("--repeat must be >= 1 and --warmup >= 0")
    pybench.check_common(ap, args)
    build = pybench.build_dir(args.build)
    hoist = pybench.import_hoist(build)
    script = os.path.abspath(__file__)
    common = {"build": build, "pipeline": os.path.abspath(args.pipeline), "device": args.device,
              "repeat": args.repeat, "warmup": args.warmup}
    tmp = tempfile.mkdtemp(prefix="hoist-pyload.") if args.out is None else args.out
    os.makedirs(tmp, exist_ok=True)
    print(f"python_loaders: hoist {hoist.library_version} from {build}/python, "
          f"{args.pipeline} on {args.device}", file=sys.stderr)

    results = {}
    for step in steps:
        if step == "hoist_cli":
            rec = hoist_cli(args, build)
            results[step] = rec
            pybench.emit({"step": step, **rec})
        elif step == "load_into":
            for comp in [c for c in args.load_into.split(",") if c]:
                rec = pybench.run_worker(script, step, {**common, "component": comp},
                                         args.timeout)
                results[f"load_into:{comp}"] = rec
                pybench.emit({"step": step, "component": comp, **rec})
        elif step == "diffusers":
            for name in ("diffusers_hoist", "diffusers_ref"):
                rec = pybench.run_worker(script, name, {**common, "out": os.path.join(
                    tmp, f"{name}.pt")}, args.timeout)
                results[name] = rec
                pybench.emit({"step": name, **rec})
            h, r = results["diffusers_hoist"], results["diffusers_ref"]
            if "error" not in h and "error" not in r:
                cmp = compare_outputs(h["outputs_file"], r["outputs_file"])
                cmp["speedup"] = r["median_seconds"] / h["median_seconds"]
                results["diffusers_compare"] = cmp
                pybench.emit({"step": "diffusers_compare", **cmp})
        else:
            rec = pybench.run_worker(script, step, common, args.timeout)
            results[step] = rec
            pybench.emit({"step": step, **rec})
    if args.out is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    summarize(results)


def summarize(results):
    base = results.get("hoist_torch", {}).get("median_GBps")
    rows = []
    for name, rec in results.items():
        if name == "diffusers_compare":
            continue
        row = {"step": name, "GBps": rec.get("median_GBps"), "s": rec.get("median_seconds")}
        if "error" in rec:
            row["note"] = "ERROR: " + rec["error"][:60]
        elif name == "hoist_torch":
            row["note"] = "the reference row"
        elif name.startswith("load_into"):
            row["note"] = (f"{rec['ratio_to_arena']:.3f} x arena; +"
                           f"{(rec.get('device_peak_above_bytes') or 0) / MIB:.1f} MiB device")
        elif name in ("hoist_rt", "hoist_cli") and base and rec.get("median_GBps"):
            row["note"] = f"hoist_torch is {base / rec['median_GBps']:.3f} x this"
        elif base and rec.get("median_GBps") and not name.startswith("diffusers"):
            row["note"] = f"hoist_torch is {base / rec['median_GBps']:.2f} x faster"
        if name.startswith("diffusers") and "error" not in rec:
            peak = rec.get("device_peak_minus_tensor_bytes")
            row["note"] = ("" if peak is None else
                           f"device peak = tensors + {peak / MIB:.1f} MiB; ") + \
                f"step {rec['step_seconds']:.2f} s"
        rows.append(row)
    print()
    pybench.table(rows, [("step", "step"), ("GBps", "GB/s"), ("s", "median s"),
                         ("note", "")])
    cmp = results.get("diffusers_compare")
    if cmp:
        print(f"\ndiffusers: hoist.diffusers.from_pretrained is {cmp['speedup']:.2f} x faster; "
              f"{cmp['compared']} outputs of one 256x256 step "
              f"{'all equal' if cmp['equal'] else 'DIFFER: ' + json.dumps(cmp['differ'])}")


if __name__ == "__main__":
    main()
