"""The markdown of tools/bench_memory.py: per run, per phase, the pass sweep; one marked section per config.

tools/results/bench_memory.md holds one section per measured config (the default MiniLM run, the
causal LM's llm_default.yaml, ...), each between `<!-- bench_memory: NAME -->` and
`<!-- /bench_memory: NAME -->`: a new measurement of a config replaces its own section and leaves the
others (and any text outside the markers) as they are.
"""
from __future__ import annotations

import csv
import os
import platform
import re
import statistics
from pathlib import Path

MiB = 2**20


def _mib(b) -> str:
    return f"{b / MiB:.0f}"


def write_section(path: Path, name: str, text: str) -> None:
    """Put `text` between the markers of section `name` in `path` (appended when the file lacks them)."""
    begin, end = f"<!-- bench_memory: {name} -->", f"<!-- /bench_memory: {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = old + ("\n" if old and not old.endswith("\n\n") else "") + block
    path.write_text(new)


def metrics_diff(before_dir: str, after_dir: str) -> str:
    """Largest absolute difference of accuracy and loss between two runs' metrics.csv."""

    def rows(d):
        with open(Path(d) / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))

    worst = {"accuracy": 0.0, "loss": 0.0}
    b, c = rows(before_dir), rows(after_dir)
    if len(b) != len(c):
        return f"different row counts ({len(b)} vs {len(c)})"
    for x, y in zip(b, c):
        for k in worst:
            if x[k] and y[k]:
                worst[k] = max(worst[k], abs(float(x[k]) - float(y[k])))
    return f"largest absolute difference: accuracy {worst['accuracy']:.2g}, loss {worst['loss']:.2g}"


def command_line(a) -> str:
    parts = ["nice python tools/bench_memory.py", f"--before {a.before_rev}"]
    if a.config:
        parts.append(f"--config {a.config}")
    if a.threads:
        parts.append(f"--threads {a.threads}")
    parts.append(f"--rounds {a.rounds}")
    if a.full:
        parts.append("--full")
    parts.append(f"--participants {' '.join(map(str, a.participants))}")
    return " ".join(parts)


def markdown(a, kinds, results, passes, load0, load1) -> str:
    import torch

    what = a.config or "the default experiment (sumo_scenarios/default.yaml)"
    label = {"short": f"{a.name}, {a.rounds} rounds", "full": f"{a.name}, in full"}
    lines = [f"# Peak memory of a run, before and after (tools/bench_memory.py): {what}", "",
             f"Command: `{command_line(a)}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python "
             f"{platform.python_version()}; load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load0)}, "
             f"after {', '.join(f'{x:.2f}' for x in load1)} (a shared machine: memory does not depend on load, times do).  ",
             f"Before = iovsim at `{a.before_rev}`; after = this checkout. Peak = the largest RSS high-water mark of any "
             "phase (VmHWM, reset at every phase boundary), the run process's own (SUMO runs inside it, libsumo).", "",
             "## Peak RSS per run", "",
             "| run | participations | peak before [MiB] | peak after [MiB] | after / before | training CPU s before / after | results |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for kind in kinds:
        b, c = results[f"{kind}-before"], results[f"{kind}-after"]
        name = label.get(kind, f"{kind} participants per round, 1 round, 1 local step")
        tb, tc = b["phases"]["round: training"]["cpu_s"], c["phases"]["round: training"]["cpu_s"]
        parts = f"{b['participants']}" + ("" if b["participants"] == c["participants"] else f" / {c['participants']}")
        lines.append(f"| {name} | {parts} | {_mib(b['peak'])} ({b['peak'] / 1e9:.2f} GB) | {_mib(c['peak'])} "
                     f"({c['peak'] / 1e9:.2f} GB) | {c['peak'] / b['peak']:.2f} | {tb:.0f} / {tc:.0f} | "
                     f"{metrics_diff(b['run_dir'], c['run_dir'])} |")
    lines += ["", "Participations: participants summed over the rounds (metrics.csv). The training CPU seconds "
              "are measured on a shared machine (ratios only).", ""]
    for kind in kinds:
        lines += phase_lines(label.get(kind, f"{kind} participants per round"), results[f"{kind}-before"],
                             results[f"{kind}-after"])
    if passes:
        lines += pass_lines(passes)
    return "\n".join(lines) + "\n"


def phase_lines(title: str, b: dict, c: dict) -> list[str]:
    """Per phase of either run (in the order they first ran), RSS at entry and peak, before / after."""
    lines = [f"## Per phase: {title}", "",
             "| phase | calls | RSS at entry before / after [MiB] | peak before / after [MiB] |", "|---|---:|---:|---:|"]
    empty = {"rss_in": 0, "peak": 0, "count": 0}
    for name in list(b["phases"]) + [n for n in c["phases"] if n not in b["phases"]]:
        p, q = b["phases"].get(name, empty), c["phases"].get(name, empty)
        calls = f"{p['count']}" if p["count"] == q["count"] else f"{p['count']} / {q['count']}"
        lines.append(f"| {name} | {calls} | {_mib(p['rss_in'])} / {_mib(q['rss_in'])} | "
                     f"{_mib(p['peak'])} / {_mib(q['peak'])} |")
    return lines + [""]


def pass_lines(passes: dict) -> list[str]:
    sizes = passes["sizes"]
    ref = max(sizes, key=int)
    lines = ["## Tokens per pass (batched executor, the default round's training: 8 jobs x 5 steps x batch 16, "
             "two tasks)", "",
             f"One process, glibc mmap threshold fixed (fl/heap.py); RSS before training "
             f"{_mib(passes['rss_before_train'])} MiB; the sizes ran alternately; median CPU s.", "",
             "| max tokens per pass | peak RSS [MiB] | training's own [MiB] | CPU s | CPU vs largest | probe loss after, largest difference vs the largest pass |",
             "|---:|---:|---:|---:|---:|---:|"]
    ref_cpu = statistics.median(sizes[ref]["cpu_s"])
    for s, v in sizes.items():
        cpu = statistics.median(v["cpu_s"])
        diff = max(abs(x - y) for x, y in zip(v["loss_after"], sizes[ref]["loss_after"]))
        lines.append(f"| {s} | {_mib(v['peak'])} | {_mib(v['peak'] - passes['rss_before_train'])} | {cpu:.1f} | "
                     f"{cpu / ref_cpu:.2f} | {diff:.1g} |")
    return lines + [""]
