#!/usr/bin/env bash
# The GPU benchmark in one device call (at most 8 minutes): writes tools/results/bench_gpu.md.
#
#   bash tools/stage_gpu.sh join && bash tools/bench_gpu.sh        # on the device, after staging
#   BENCH_GPU_DRY=1 bash tools/bench_gpu.sh                          # here: the same steps on CPU, tiny sizes
#   BENCH_GPU_CAUSAL=PATH bash tools/bench_gpu.sh                    # also a causal LM folder (needs fl's
#                                                                    # model-family seam; its error is reported)
#
# The device has PyTorch with CUDA, transformers and peft, but no network, no SUMO and no model or data
# wheels: the model and the tweets come from .gpu_stage/ (tools/stage_gpu.sh says how to carry them).
# Without SUMO there is no default run and no paper-config run here: only the training benchmark
# (tools/bench_train.py) at 8, 32 and 128 clients, batched vs sequential vs naive, fp32 and bf16, with
# peak GPU memory. Without CUDA (and without BENCH_GPU_DRY=1) it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY=${BENCH_GPU_DRY:-0}
RESULT=${BENCH_GPU_RESULT:-tools/results/bench_gpu$([ "$DRY" = 1 ] && echo _dry).md}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # the device has no network: never try it

if [ "$DRY" != 1 ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "tools/bench_gpu.sh needs CUDA (torch.cuda.is_available() is false here, or torch is missing); nothing run"
  exit 0
fi

MODEL=.gpu_stage/minilm
DATA=csv:.gpu_stage/tweets.csv
if [ ! -f "$MODEL/model.safetensors" ]; then
  bash tools/stage_gpu.sh join || { echo "tools/bench_gpu.sh: no staged model in .gpu_stage/ (see tools/stage_gpu.sh)"; exit 1; }
fi
if [ "$DRY" = 1 ]; then
  ARGS=(--device cpu --clients 2 --reps 1 --loop-cap 1 --threads 2 --precisions fp32)
  LIMIT=900
else
  ARGS=(--device cuda --clients 8 32 128 --reps 2 --loop-cap 8 --threads 8 --precisions fp32 bf16)
  LIMIT=420                                   # one call is at most 8 minutes: MiniLM alone gets 7
  [ -n "${BENCH_GPU_CAUSAL:-}" ] && LIMIT=210   # ... or half of it each with the causal LM
fi
TMP=$(mktemp -d)
{
  echo "# GPU benchmark (tools/bench_gpu.sh)"
  echo
  echo "Command: \`bash tools/stage_gpu.sh join && bash tools/bench_gpu.sh\`$([ "$DRY" = 1 ] && echo ' with BENCH_GPU_DRY=1 (a CPU dry run at tiny sizes: not GPU figures)')  "
  echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); $("$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" 2>&1)  "
  echo "Model: all-MiniLM-L6-v2 staged in $MODEL; data: the tweet corpus staged as $DATA."
  echo
  echo "Not run here: the default run and the 5-round paper-config run (\`fl.device: cuda\`) need SUMO, which the"
  echo "device machine does not have; only the training-only parts ran."
  echo
} > "$TMP/head.md"

status=0
echo "== MiniLM: ${ARGS[*]}"
if timeout "$LIMIT" "$PY" tools/bench_train.py "${ARGS[@]}" --model "$MODEL" --dataset "$DATA" --rss-jobs \
    --out "$TMP/minilm.md" > "$TMP/minilm.log" 2>&1; then
  sed 's/^# Local training throughput (tools\/bench_train.py)/## MiniLM: local training throughput (tools\/bench_train.py)/' "$TMP/minilm.md" > "$TMP/minilm_body.md"
else
  status=$?
  { echo "## MiniLM: failed (exit $status)"; echo; echo '```'; tail -30 "$TMP/minilm.log"; echo '```'; } > "$TMP/minilm_body.md"
fi
tail -5 "$TMP/minilm.log"

if [ -n "${BENCH_GPU_CAUSAL:-}" ]; then
  echo "== causal LM: $BENCH_GPU_CAUSAL"
  if timeout "$LIMIT" "$PY" tools/bench_train.py "${ARGS[@]}" --model "$BENCH_GPU_CAUSAL" --dataset "$DATA" --rss-jobs \
      --out "$TMP/causal.md" > "$TMP/causal.log" 2>&1; then
    sed 's/^# Local training throughput (tools\/bench_train.py)/## Causal LM: local training throughput/' "$TMP/causal.md" > "$TMP/causal_body.md"
  else
    { echo "## Causal LM ($BENCH_GPU_CAUSAL): failed (exit $?)"; echo; echo '```'; tail -30 "$TMP/causal.log"; echo '```'; } > "$TMP/causal_body.md"
  fi
fi

cat "$TMP/head.md" "$TMP"/*_body.md > "$RESULT"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then   # the device tool brings back what is under $OUT
  cp "$RESULT" "$TMP"/*.log "$OUT"/
fi
echo "wrote $RESULT"
exit $status
