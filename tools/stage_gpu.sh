#!/usr/bin/env bash
# Carrying what tools/bench_gpu.sh needs to a lent GPU machine, which has no network, no SUMO, no model or
# data wheels and no ../shared, and takes at most 64 MiB of files per call (the checkout, ~6 MiB, included).
#
#   bash tools/stage_gpu.sh prepare [--dry-wheels]  # here, once (35 min, mostly xz -9 on 2 busy cores): .gpu_stage/
#   bash tools/stage_gpu.sh check                   # there: the machine, and which parts arrived intact
#   bash tools/stage_gpu.sh join                    # there: the parts -> .gpu_stage/ (bench_gpu.sh does it)
#
# prepare (tools/gpu_stage.py) packs 496 MB into one .tar.xz of 227.0 MiB: wheels for Python 3.12 of libsumo,
# sumolib, traci, pyproj, rtree and gguf (unpacked: xz takes libsumo's 86 MB wheel to 51 MiB; join zips
# them again), 13 Debian .debs of the GL/X11 libraries libsumo links (1.5 MB; used only where the image
# lacks them), all-MiniLM-L6-v2 (87 MiB), SmolLM2-135M-Instruct's Q4_1 GGUF (94 MiB), the tweets and BBC
# News as csv: files, GLUE SST-2/QNLI from ../shared/data/glue, and the A10KW net, routes and SUMO's XML
# schemas under a SUMO_HOME. It splits the archive into parts that each fit one call beside the checkout
# (.gpu_stage/parts/stage.tar.xz.part-NN, MANIFEST.json with their sha256) and prints the calls.
#
# The device calls (the run tool). With today's sizes (2026-12-05): 5 parts of 45.4 MiB (47,610,084 bytes),
# each call 51.6 MiB with the checkout (6.2 MiB counted in 4 KiB blocks); 4 parts would need 62.9 MiB a call,
# too close to the 64 MiB limit. prepare prints the count and each call's MiB; MANIFEST.json keeps them.
# A carried path stays on the machine for the next call while it is warm, which it is for only 30 s after a
# call ends: make the calls back to back. Where `check` then finds an earlier part missing, the machine was
# given back: start again at call 1. Device time, estimated: start 1-2 min, each staging call ~20-40 s, the
# benchmark 8 min: 11-13 of the 15 minutes.
#   call 1  carry [".gpu_stage/parts/MANIFEST.json", ".gpu_stage/parts/stage.tar.xz.part-00"]
#           command: bash tools/stage_gpu.sh check                                          timeout_s 150
#   call 2  carry [".gpu_stage/parts/MANIFEST.json", ".gpu_stage/parts/stage.tar.xz.part-01"]
#           command: bash tools/stage_gpu.sh check                                          timeout_s 60
#   call 3  the same with part-02, call 4 with part-03
#   call 5  carry [".gpu_stage/parts/MANIFEST.json", ".gpu_stage/parts/stage.tar.xz.part-04"]
#           command: bash tools/bench_gpu.sh                                                timeout_s 540
#           (joins, installs, runs everything under 8 minutes; $OUT gets bench_gpu.md and bench_gpu_logs.tar.gz:
#           copy bench_gpu.md to tools/results/bench_gpu.md and commit it)
# Every part carries its own sha256: `check` says which arrived intact, `join` refuses a missing or bad one.
# The parts do not depend on the checkout they were made in (only their size does): a .gpu_stage/ prepared
# in another worktree of this repository can be copied into the one the device session starts from.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}   # prepare: a Python with the model and data wheels (the project's .venv)
if [ -z "${PYTHON:-}" ] && [ "${1:-}" = prepare ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

case "${1:-}" in
  prepare) shift; exec "$PY" tools/gpu_stage.py prepare "$@" ;;
  check|join) exec "$PY" tools/gpu_stage.py "$1" ;;
  *) echo "usage: bash tools/stage_gpu.sh prepare [--dry-wheels] | check | join" >&2; exit 2 ;;
esac
