"""pybench.py — what the Python benchmark scripts of bench/ share: importing
hoist from a build folder (never another installed copy), running each
measurement in its own child process under a time limit, JSON lines and a
short table, medians, and the device memory sampled while something runs.

A measurement is a function of the calling script, run as
`SCRIPT --worker NAME --args JSON` in a fresh interpreter, so a crash, a
hang or leaked device memory of one loader never touches the next; the
child prints one JSON object as its last stdout line.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_dir(given=None):
    """The build folder: --build, else $HOIST_BUILD, else build-gpu, else build."""
    for cand in (given, os.environ.get("HOIST_BUILD"), os.path.join(ROOT, "build-gpu"),
                 os.path.join(ROOT, "build")):
        if cand and os.path.isdir(cand):
            return os.path.abspath(cand)
    sys.exit("no build folder: pass --build BUILD (tools/gpu-prepare.sh makes build-gpu)")


def import_hoist(build):
    """hoist from BUILD/python, or exit with what to do.  The child processes
    get the same path through PYTHONPATH."""
    pkg = os.path.join(build, "python")
    if not os.path.isfile(os.path.join(pkg, "hoist", "__init__.py")):
        sys.exit(f"no hoist package in {pkg}: configure the build with -DHOIST_PYTHON=ON "
                 f"(needs python3-dev and libdlpack-dev) and build it")
    sys.path.insert(0, pkg)
    os.environ["PYTHONPATH"] = pkg + os.pathsep + os.environ.get("PYTHONPATH", "")
    try:
        import hoist
    except ImportError as e:
        sys.exit(f"cannot import hoist from {pkg}: {e}")
    where = os.path.realpath(hoist.__file__)
    if not where.startswith(os.path.realpath(pkg) + os.sep):
        sys.exit(f"hoist was imported from {where}, not from {pkg}")
    return hoist


def argument_parser(doc):
    """The scripts' parser: their docstring as help, PIPELINE, --build and
    --device (cuda:N or cpu); check_common() validates the latter two."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=doc.split("\n\n", 1)[1])
    ap.add_argument("pipeline")
    ap.add_argument("--build", help="build folder with hoist and python/ (default $HOIST_BUILD, "
                                    "build-gpu, build)")
    ap.add_argument("--device", default="cuda:0", help="cuda:N or cpu (default cuda:0)")
    return ap


def check_common(ap, args):
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        ap.error("--device takes cuda:N or cpu")
    if not os.path.isfile(os.path.join(args.pipeline, "model_index.json")):
        ap.error(f"{args.pipeline}: not a pipeline folder (no model_index.json)")


def emit(record):
    """One JSON line on stdout, flushed."""
    print(json.dumps(record), flush=True)


def run_worker(script, name, args, timeout, extra_env=None):
    """Runs `script --worker name --args JSON` and returns its last JSON line
    as a dict, or {"error": ...} when it failed, timed out or printed none.
    The child's stderr goes to ours."""
    cmd = [sys.executable, script, "--worker", name, "--args", json.dumps(args)]
    env = dict(os.environ, **(extra_env or {}))
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
    if proc.returncode != 0 or result is None:
        why = (result or {}).get("error") or f"exit {proc.returncode}, no result line"
        return {"error": why, "seconds_in_child": round(time.monotonic() - t0, 3)}
    return result


def worker_main(workers):
    """The child side: `--worker NAME --args JSON` runs workers[NAME](args) and
    prints its dict; an exception becomes {"error": ...} and exit 1."""
    if "--worker" not in sys.argv:
        return False
    name = sys.argv[sys.argv.index("--worker") + 1]
    args = json.loads(sys.argv[sys.argv.index("--args") + 1])
    import_hoist(args["build"])
    try:
        out = workers[name](args)
    except Exception as e:  # reported to the parent, which goes on
        import traceback

        traceback.print_exc()
        emit({"error": f"{type(e).__name__}: {str(e)[:400]}"})
        sys.exit(1)
    emit(out)
    sys.exit(0)


def median(values):
    return statistics.median(values) if values else None


def timed_runs(fn, repeat, warmup):
    """Seconds of `repeat` calls of fn after `warmup` unmeasured ones; fn
    returns after its work is complete (synchronized)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class DevicePeak:
    """Device memory in use, sampled every millisecond by a thread while a
    `with` block runs: .before (used at entry), .peak (highest seen) and
    .after (used at exit), in bytes.  torch's mem_get_info counts every
    allocation on the card (cudaMalloc, not only torch's).  On the host
    device everything is None."""

    def __init__(self, torch, device):
        self.torch = torch
        self.cuda = str(device).startswith("cuda")
        self.device = device
        self.before = self.peak = self.after = None

    def _used(self):
        free, total = self.torch.cuda.mem_get_info(self.device)
        return total - free

    def __enter__(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.before = self.peak = self._used()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._used())

    def __exit__(self, *exc):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self._stop.set()
            self._thread.join()
            self.after = self._used()
            self.peak = max(self.peak, self.after)

    def record(self, prefix=""):
        if not self.cuda:
            return {}
        return {f"{prefix}device_before_bytes": self.before,
                f"{prefix}device_peak_above_bytes": self.peak - self.before,
                f"{prefix}device_after_above_bytes": self.after - self.before}


def table(rows, columns):
    """A plain text table (stdout) of dict rows, with the given (key, title)
    columns; numbers to 3 significant decimals."""
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [[title for _, title in columns]] + [[cell(r.get(k)) for k, _ in columns]
                                                for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for n, c in enumerate(cells):
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                        enumerate(zip(c, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def safetensors_files(path):
    """Every .safetensors file under path (a file, or a folder searched
    recursively), sorted; {component: [files]} by first-level folder."""
    if os.path.isfile(path):
        return {"": [path]}
    out = {}
    for dirpath, _, names in sorted(os.walk(path)):
        for n in sorted(names):
            if n.endswith(".safetensors"):
                comp = os.path.relpath(dirpath, path).split(os.sep)[0]
                out.setdefault("" if comp == "." else comp, []).append(os.path.join(dirpath, n))
    return out


def headers(files):
    """{tensor name: header entry} of safetensors files."""
    out = {}
    for f in files:
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        out.update(header)
    return out


def tensor_bytes(files):
    """Bytes of tensor data in safetensors files, from their headers."""
    return sum(e["data_offsets"][1] - e["data_offsets"][0] for e in headers(files).values())


def warm_page_cache(files):
    """Reads every file once, so warm measurements start from the page cache."""
    buf = bytearray(64 << 20)
    view = memoryview(buf)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(view) > 0:
                pass
