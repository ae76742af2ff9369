import sys, json
for l in sys.stdin:
    try:
        d = json.loads(l)
        print("%-16s %.2f  limit %.2f" % (d["variant"], d["median_GBps"], d["median_GBps"] / d["ratio_to_limit"]))
    except Exception:
        print(l.rstrip())
