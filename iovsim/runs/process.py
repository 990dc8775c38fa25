"""One run of a plan as one `iovsim run` child process, and the record its folder keeps.

The child is a fresh interpreter (`python -m iovsim.runs.child run ...`), so its peak memory,
torch threads, SUMO session and faults are its own. The parent reaps it with `os.wait4`, whose
rusage is that child's alone, and appends each attempt to `<run>/process.json`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from iovsim.runs.plan import RunSpec, run_state

PROCESS_FILE = "process.json"
LOG_FILE = "process.log"


def child_argv(spec: RunSpec, config_path: Path, sets: dict, threads: int, state: str,
               gpu_fraction: float = 0.0) -> list[str]:
    """`iovsim run` for a fresh run (config + overrides + seed + threads, and the run's share of the GPU
    where one is given) or `--resume` for an interrupted one."""
    base = [sys.executable, "-m", "iovsim.runs.child", "run"]
    if state == "resume":
        return base + ["--resume", str(spec.run_dir), "--quiet"]
    fields = {**sets, **spec.overrides, "seed": spec.seed, "fl.threads": threads}
    if gpu_fraction:
        fields["fl.gpu_memory_fraction"] = gpu_fraction
    args = [str(Path(config_path).resolve())]
    for key, value in fields.items():
        args += ["--set", f"{key}={json.dumps(value)}"]  # JSON is YAML: the child reads the same value
    return base + args + ["--out", str(spec.run_dir), "--quiet"]


def execute(spec: RunSpec, config_path: Path, sets: dict, threads: int, gpu_fraction: float = 0.0) -> dict:
    """Bring one run to its end: keep it if finished, resume it from its checkpoint, else start it over."""
    state = run_state(spec.run_dir)
    if state == "finished":
        return run_record(spec)
    if state == "fresh" and spec.run_dir.exists():
        shutil.rmtree(spec.run_dir)  # no checkpoint: nothing in it can be continued
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    argv = child_argv(spec, config_path, sets, threads, state, gpu_fraction)
    attempt = _spawn_and_reap(argv, spec.run_dir / LOG_FILE)
    attempt.update(state=state, threads=threads)
    _append_attempt(spec.run_dir, attempt)
    return run_record(spec)


def _spawn_and_reap(argv: list[str], log_path: Path) -> dict:
    env = dict(os.environ, IOVSIM_PARENT_PID=str(os.getpid()))
    t0 = time.time()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        peak = cpu = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            # Linux reports kilobytes, macOS bytes
            peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            # CPU seconds beside the wall seconds: on a shared machine a run's wall time counts the
            # time it waited for a core, its CPU time only the work
            cpu = usage.ru_utime + usage.ru_stime
        else:
            proc.wait()
    rc = proc.returncode
    return {"pid": proc.pid, "host": socket.gethostname(), "argv": argv[1:], "returncode": rc,
            "peak_rss_bytes": peak, "wall_time_s": time.time() - t0, "cpu_time_s": cpu, "started": t0,
            "error": "" if rc == 0 else _error_line(log_path, rc)}


def _error_line(log_path: Path, rc: int) -> str:
    """The child's one-line error (`iovsim: error: ...`), else its traceback's last line, else the signal."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    mine = [ln for ln in lines if ln.startswith("iovsim: error:")]
    if mine:
        return mine[-1].removeprefix("iovsim: error:").strip()
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name}"
    return lines[-1] if lines else f"exit status {rc}"


def _append_attempt(run_dir: Path, attempt: dict) -> None:
    path = run_dir / PROCESS_FILE
    attempts = json.loads(path.read_text()) if path.exists() else []
    attempts.append(attempt)
    path.write_text(json.dumps(attempts, indent=2) + "\n")


def run_record(spec: RunSpec) -> dict:
    """What the tables say about one run, read from its folder (summary.json, process.json)."""
    rec = {"group": spec.group, "seed": spec.seed, "run_dir": str(spec.run_dir), "status": "not run", "error": "",
           "attempts": 0, "peak_rss_bytes": None, "wall_time_s": None}
    attempts = []
    if (spec.run_dir / PROCESS_FILE).exists():
        attempts = json.loads((spec.run_dir / PROCESS_FILE).read_text())
    summary = {}
    if (spec.run_dir / "summary.json").exists():
        try:
            summary = json.loads((spec.run_dir / "summary.json").read_text())
        except ValueError:
            summary = {}
    peaks = [a["peak_rss_bytes"] for a in attempts if a.get("peak_rss_bytes")]
    rec["attempts"] = len(attempts)
    rec["peak_rss_bytes"] = max(peaks) if peaks else summary.get("peak_rss_bytes")
    rec["wall_time_s"] = sum(a["wall_time_s"] for a in attempts) if attempts else summary.get("wall_time_s")
    if summary.get("finished") is True:
        rec["status"] = "finished"
    elif attempts:
        rec["status"], rec["error"] = "failed", attempts[-1]["error"] or f"exit status {attempts[-1]['returncode']}"
    return rec
