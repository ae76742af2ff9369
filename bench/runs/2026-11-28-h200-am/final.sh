#!/usr/bin/env bash
# Last run of the stop (after the cleanup commit): gpu-run.sh tests, warm
# bench and peers (g/), then as many conversion pairs as time allows (c/);
# everything tarred into $OUT/all.tgz.
set -uo pipefail
final=$OUT; res=/tmp/res && mkdir -p $res/c $res/g
OUT=$res/g HOIST_GPU_STEPS="tests warm peer" HOIST_VARIANTS=0 timeout 200 bash tools/gpu-run.sh > $res/g/gpu-run.log 2>&1
grep -E "tests passed|Failed|exit|gpu-run" $res/g/gpu-run.log; tail -1 $res/g/peer.json; grep -o '"median_GBps[^,]*,[^,]*,[^,]*,"h2d[^,]*' $res/g/bench-warm.jsonl
tar czf $final/all.tgz -C $res .
OUT=$res/c HOIST_CONV_STEPS="pairs" HOIST_CONV_PAIRS=${PAIRS:-8} HOIST_CONV_SCALE=0.1 timeout 90 bash bench/convert_load.sh > $res/c/convert_load.log 2>&1
grep -E "ratio" $res/c/convert_load.log
tar czf $final/all.tgz -C $res .
