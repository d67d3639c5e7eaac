#!/usr/bin/env bash
# Benchmarks for a lent GPU machine: source checkout, no internet, no ../shared (each part makes its own data).
# Minimal version (issue 12): runs the optical-flow part, benchmarks/gpu_flow.sh; other parts may be added here.
#   bash benchmarks/gpu.sh [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f benchmarks/gpu_flow.sh ]; then
  bash benchmarks/gpu_flow.sh "$@"
fi
