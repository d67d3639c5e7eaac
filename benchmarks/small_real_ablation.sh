#!/usr/bin/env bash
# The small_real recipe, unchanged, on both real sets (issue 18): egogest10 (10 hand gestures, recording-
# disjoint folds) and weizmann3 (3 body actions, person-disjoint folds); `dualstream ablation` per set.
#
#   bash benchmarks/small_real_ablation.sh                      # every model, 3 folds x 3 seeds (hours on 2 cores)
#   MODELS=early_fusion_small SEEDS=0 bash benchmarks/small_real_ablation.sh
#
# Each set is prepared once (frames at the recipe's 64 px, flow bound 3) under $WORK/<set>/cache; the runs go
# to $WORK/<set>/ablation (an interrupted ablation reuses its finished runs), the table to ablation.md there.
# Two processes at once (PARALLEL=2, each one torch thread, a part of the models each) use 2 cores best;
# the last pass, with every model, only reuses the finished runs and writes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/dualstream_small_real_ablation}
SETS=${SETS:-egogest10 weizmann3}
MODELS=${MODELS:-early_fusion_small,late_fusion_small,flow_only_small,rgb_only_small}
FOLDS=${FOLDS:-1,2,3}
SEEDS=${SEEDS:-0,1,2}
PARALLEL=${PARALLEL:-2}
for set in $SETS; do
  if [[ ! -d "$SHARED/$set" ]]; then echo "skipped $set: $SHARED/$set not found"; continue; fi
  cache="$WORK/$set/cache"
  $PY -m dualstream -q prepare --videos "$SHARED/$set/videos" --out "$cache" --short-side 64 --flow-bound 3 --workers 2
  args=(--config configs/small_real.yaml --folds "$FOLDS" --seeds "$SEEDS" --out "$WORK/$set/ablation"
        --set "data.cache=$cache" --set "data.splits=$SHARED/$set/ucfTrainTestlist")
  IFS=, read -r -a models <<< "$MODELS"
  pids=()
  for ((p = 0; p < PARALLEL; p++)); do
    part=$(for ((i = p; i < ${#models[@]}; i += PARALLEL)); do echo -n "${models[i]},"; done)
    [[ -z "$part" ]] && continue
    OMP_NUM_THREADS=1 $PY -m dualstream -q ablation --models "${part%,}" "${args[@]}" > "$WORK/$set.part$p.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  $PY -m dualstream -q ablation --models "$MODELS" "${args[@]}"
done
