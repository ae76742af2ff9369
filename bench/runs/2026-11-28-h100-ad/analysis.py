"""Per-load figures from trace_load's --csv (run AD was traced with the first
version of trace_load, whose summary lacked the copy durations and link
gaps; this computes them from the records).  Usage: analysis.py trace.csv.gz"""
import bisect, csv, gzip, statistics, sys
from collections import defaultdict

loads = defaultdict(list)
for r in csv.DictReader(gzip.open(sys.argv[1], "rt")):
    loads[(r["load"], int(r["index"]))].append(
        (r["kind"], int(r["stream"]), int(r["start_ns"]), int(r["end_ns"]), int(r["bytes"])))
for key in sorted(loads, key=lambda k: (k[1], k[0])):
    recs = loads[key]
    copies = sorted([x for x in recs if x[0] == "h2d"], key=lambda x: x[2])
    kern = sorted([x for x in recs if x[0] == "kernel"], key=lambda x: x[2])
    gaps = [max(0, copies[i + 1][2] - copies[i][3]) for i in range(len(copies) - 1)]
    overlapping = sum(copies[i + 1][2] < copies[i][3] for i in range(len(copies) - 1))
    full = [c for c in copies if c[4] == 4194304]
    starts = [k[2] for k in kern]

    def kernel_overlap(c):
        total, i = 0, bisect.bisect_left(starts, c[2] - 200000)
        while i < len(kern) and kern[i][2] < c[3]:
            total += max(0, min(c[3], kern[i][3]) - max(c[2], kern[i][2]))
            i += 1
        return total

    dur = [c[3] - c[2] for c in full]
    ov = [kernel_overlap(c) for c in full]
    with_k = [d for d, o in zip(dur, ov) if o > 0]
    without = [d for d, o in zip(dur, ov) if o == 0]
    kd = [k[3] - k[2] for k in kern]
    med = lambda v: statistics.median(v) / 1e3 if v else 0.0
    print(f"{key[0]} {key[1]}: {len(copies)} copies, {overlapping} overlapping the next; link idle "
          f"{sum(gaps) / 1e6:.2f} ms (median {med(gaps):.2f} us); 4 MiB copies {med(dur):.1f} us "
          f"(with a kernel beside {med(with_k):.1f} us, n={len(with_k)}; without {med(without):.1f} us, "
          f"n={len(without)}); {len(kern)} kernels, median {med(kd):.1f} us, {sum(kd) / 1e6:.2f} ms in all")
