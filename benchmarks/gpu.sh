#!/usr/bin/env bash
# Throughput on a lent GPU machine, from a source checkout: no ../shared, no internet, a few minutes.
#
#   bash benchmarks/gpu.sh              # on the GPU machine (torch + CUDA, torchvision, OpenCV preinstalled)
#   bash benchmarks/gpu.sh --cpu-smoke  # the same steps, tiny and on the CPU: checks the script itself
#                                       # (--smoke is the same; benchmarks/gpu_flow.sh gets --smoke)
#
# Makes its own synthetic cache (64 videos of 320x240, DIS flow; trainlist entries are links to them),
# then prints one table:
#   1. model only: early_fusion train step at 224, bf16, channels_last, batch 25 (benchmarks/train.py);
#   2. loader clips/s per variant, per worker and in total, handed over by the workers and network-ready
#      on the GPU (benchmarks/loader.py, 16 workers);
#   3. `dualstream train` clips/s, early fusion at 224 with the paper's recipe (bf16), device pipeline,
#      from the JPEG cache (nvJPEG where torchvision imports) and from the packed store;
#   4. multi-view `dualstream evaluate` views/s next to the model's forward-only clips/s.
# Then runs benchmarks/gpu_flow.sh (optical flow on the GPU, about 3 minutes) when that file exists;
# this part takes about 3 minutes on a 16-core GPU machine (not measured yet: no GPU was lent).
# Results: $OUT (the device tool's folder), else $GPU_BENCH_OUT, else a temporary folder: *.json, *.log.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
FLOW_ARGS=("$@")
if [[ "${1:-}" == "--cpu-smoke" || "${1:-}" == "--smoke" ]]; then
  SMOKE=1
  FLOW_ARGS=(--smoke "${@:2}")
fi
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
RES=${OUT:-${GPU_BENCH_OUT:-$(mktemp -d /tmp/dualstream-gpu-XXXXXX)}}
mkdir -p "$RES"
WORK=$(mktemp -d /tmp/dualstream-gpu-work-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)
stamp() { echo "[gpu.sh +$(( $(date +%s) - T0 ))s] $*" >&2; }
FAILED=()
step() {  # NAME SECONDS CMD...: a failed or timed-out step is reported, the others still run
  local name=$1 limit=$2
  shift 2
  stamp "$name"
  if ! timeout "$(( limit * SLOW ))" "$@" 2>&1 | tee "$RES/$name.log"; then
    stamp "FAILED: $name (see $RES/$name.log)"
    FAILED+=("$name")
  fi
}

if ! $PY -c "import torch, numpy, cv2, yaml, tqdm, safetensors, matplotlib"; then
  echo "gpu.sh: a Python package the project needs is missing (see above)" >&2
  exit 1
fi

if (( SMOKE )); then
  DEVICE=cpu; WORKERS=1; VIDEOS=4; SIZE=160x120
  COPIES=(--train-copies 2 --test-copies 2)
  MODEL_ARGS=(--models early_fusion_small --sizes 112 --batch 2 --seconds 1 --warmup 1 --min-steps 1)
  LOADER_ARGS=(--batch 4 --batches 2 --seconds 1 --variants baseline workers-packed device-packed)
  SLOW=4  # time limits x4: this is a check of the script, on whatever CPU runs it
  TRAIN_SETS=(--set model.name=early_fusion_small --set data.input_size=64 --set train.device=cpu
              --set train.epochs=2 --set data.num_workers=1 --set train.batch_size=4)
  EVAL_ARGS=(--clips 2 --crops 3 --flip)
else
  DEVICE=cuda; WORKERS=16; VIDEOS=64; SIZE=320x240
  COPIES=(--train-copies 16 --test-copies 8)
  MODEL_ARGS=(--models early_fusion --sizes 224 --batch 25 --seconds 6)
  variants=(baseline workers workers-packed device device-packed)
  if $PY -c "import torch, torchvision.io as io; assert torch.cuda.is_available(); io.decode_jpeg" 2>/dev/null; then
    variants+=(device-nvjpeg)
  fi
  LOADER_ARGS=(--batch 25 --batches 400 --seconds 2 --variants "${variants[@]}")
  SLOW=1
  TRAIN_SETS=(--set train.device=cuda --set train.epochs=3 --set data.num_workers=-1)
  EVAL_ARGS=(--clips 10 --crops 3 --flip)
fi

step data 90 $PY benchmarks/gpu_data.py "$WORK/data" --videos "$VIDEOS" --size "$SIZE" "${COPIES[@]}"
cp -r "$WORK/data/cache" "$WORK/packed"  # the links are copied as links
step pack 60 $PY -m dualstream -q pack "$WORK/packed" --drop-jpeg
step model 90 $PY benchmarks/train.py --device "$DEVICE" "${MODEL_ARGS[@]}" --json "$RES/model.json"
step loader 120 $PY benchmarks/loader.py --cache "$WORK/data/cache" --device "$DEVICE" --workers "$WORKERS" \
  --no-train-step "${LOADER_ARGS[@]}" --json "$RES/loader.json"

RECIPE=src/dualstream/configs/early_fusion_ucf101_split1.yaml
for run in device-jpeg device-packed; do
  cache="$WORK/data/cache"
  [[ $run == device-packed ]] && cache="$WORK/packed"
  step "train-$run" 100 $PY -m dualstream -q train --config "$RECIPE" --out "$WORK/run-$run" \
    --set data.cache="$cache" --set data.splits="$WORK/data/splits" --set data.eval_clips=1 \
    --set data.pipeline=device "${TRAIN_SETS[@]}"
  cp "$WORK/run-$run/metrics.jsonl" "$RES/train-$run.jsonl" 2>/dev/null
  cp "$WORK/run-$run/run.json" "$RES/train-$run-run.json" 2>/dev/null
done

step evaluate 90 $PY benchmarks/gpu_evaluate.py "$WORK/run-device-packed" --json "$RES/evaluate.json" "${EVAL_ARGS[@]}"
$PY benchmarks/gpu_table.py "$RES" | tee "$RES/table.txt"
stamp "done in $(( $(date +%s) - T0 )) s; results in $RES${FAILED[*]:+; FAILED: ${FAILED[*]}}"

if [[ -f benchmarks/gpu_flow.sh ]]; then
  stamp "optical flow (benchmarks/gpu_flow.sh)"
  bash benchmarks/gpu_flow.sh ${FLOW_ARGS[@]+"${FLOW_ARGS[@]}"}
fi
