#!/usr/bin/env bash
# Final run of the stop on the committed code: conversion pairs and bench
# (convert_load.sh), then gpu-run.sh's tests, warm bench, peers, --verify
# and kernels; all logs tarred into $OUT/all.tgz (8 files at most come back).
set -uo pipefail
final=$OUT
res=/tmp/res && mkdir -p $res/c $res/g
OUT=$res/c HOIST_CONV_STEPS="pairs bench" HOIST_CONV_PAIRS=${PAIRS:-24} HOIST_CONV_ROUNDS=1 \
  timeout 300 bash bench/convert_load.sh > $res/c/convert_load.log 2>&1
grep -E "ratio|convert_load" $res/c/convert_load.log
OUT=$res/g HOIST_GPU_STEPS="tests warm peer verify kernels" HOIST_VARIANTS=0 \
  timeout 330 bash tools/gpu-run.sh > $res/g/gpu-run.log 2>&1
grep -E "tests passed|Failed|exit|wall|gpu-run" $res/g/gpu-run.log | head
tar czf $final/all.tgz -C $res .
