#!/usr/bin/env bash
# Optical flow on a lent GPU machine, from a source checkout, no internet, no ../shared needed (~3 minutes):
# the flow table (EPE on generated pairs with known flow, + Middlebury if ../shared/data is there; pairs/s at
# batch 1 and batch 256; PyTorch reference vs Triton kernels) and `prepare --flow tvl1 --device cuda` frames/s
# on 320x240 videos.
#   bash benchmarks/gpu_flow.sh            # on the GPU machine (benchmarks/gpu.sh calls this)
#   bash benchmarks/gpu_flow.sh --smoke    # anywhere: the same code paths at tiny sizes (CPU: Triton interpreted)
# PYTHON selects the interpreter (default: python3); extra arguments go to benchmarks/gpu_flow.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_flow.py "$@"
