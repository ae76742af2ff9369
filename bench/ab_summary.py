#!/usr/bin/env python3
"""ab_summary.py — summarizes bench/convert_load.sh's A/B/A step.

Reads the JSON lines of `hoist bench load --json` in rounds of three
("f32 plain", "f32 --dtype bf16", "f32 plain again") and prints, per round
and as medians over the rounds: the conversion's speed relative to the mean
of the two plain runs around it (B / mean(A, A')), and the second plain run
relative to the first (A' / A), the noise of the same measurement repeated.
Usage: ab_summary.py conv-ab.jsonl
"""
import json
import statistics
import sys


def main(path):
    runs = [json.loads(line) for line in open(path) if line.startswith("{")]
    if len(runs) % 3 != 0 or not runs:
        sys.exit(f"{path}: expected rounds of 3 runs, found {len(runs)} runs")
    conv, aa = [], []
    print("round  plain   bf16    plain'  bf16/mean(plain)  plain'/plain")
    for r in range(len(runs) // 3):
        a, b, a2 = (runs[3 * r + k] for k in range(3))
        want = ("f32 plain", "f32 --dtype bf16", "f32 plain again")
        if (a["variant"], b["variant"], a2["variant"]) != want:
            sys.exit(f"{path}: round {r + 1} is not {want}")
        ga, gb, ga2 = a["median_GBps"], b["median_GBps"], a2["median_GBps"]
        conv.append(gb / ((ga + ga2) / 2))
        aa.append(ga2 / ga)
        print(f"{r + 1:5d}  {ga:6.2f}  {gb:6.2f}  {ga2:6.2f}  {conv[-1]:16.3f}  {aa[-1]:12.3f}")
    print(f"median over {len(conv)} rounds: bf16/mean(plain) {statistics.median(conv):.3f} "
          f"(min {min(conv):.3f}, max {max(conv):.3f}); plain'/plain "
          f"{statistics.median(aa):.3f} (min {min(aa):.3f}, max {max(aa):.3f})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
