"""Relative paths in a config file resolve against the file's folder, whatever the working directory:
fl.model (a folder), fl.tasks[].data_dir, output.runs_dir, as the mobility, RSU, csv: and strategy
paths already did. `--set` values count as the file's; `--out` is the command line's (working
directory). A model name that is no folder there stays a hub id; the run folder's config.yaml holds
absolute paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config
from iovsim.config import load_config
from iovsim.engine.rundir import load_for_resume, write_config


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """cfgs/exp.yaml beside cfgs/models/m and cfgs/glue; the working directory is elsewhere (work/)."""
    cfgs, work = tmp_path / "cfgs", tmp_path / "work"
    (cfgs / "models" / "m").mkdir(parents=True)
    (cfgs / "glue").mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    return cfgs, work


def write(cfgs: Path, fl: dict | None = None, output: dict | None = None) -> Path:
    p = cfgs / "exp.yaml"
    p.write_text(yaml.safe_dump({"fl": fl or {}, "output": output or {}}))
    return p


def test_model_data_dir_and_runs_dir_resolve_against_the_config_folder(layout):
    cfgs, work = layout
    cfg = load_config(write(cfgs, {"model": "models/m", "tasks": [{"name": "s", "dataset": "sst2",
                                                                    "data_dir": "glue"}]}, {"runs_dir": "out"}))
    assert cfg.fl.model == str(cfgs / "models" / "m")
    assert cfg.fl.tasks[0].data_dir == str(cfgs / "glue")
    assert cfg.output.runs_path() == cfgs / "out"


@pytest.mark.parametrize("name", ["minilm", "sentence-transformers/all-MiniLM-L6-v2", "org/name", "bert-base-uncased"])
def test_a_model_name_that_is_no_folder_there_stays_a_hub_id(layout, name):
    cfgs, _ = layout
    assert load_config(write(cfgs, {"model": name})).fl.model == name


def test_a_path_like_model_name_names_the_folder_looked_for(layout):
    cfgs, work = layout
    (work / "models" / "m").mkdir(parents=True)  # the working directory's folder is not the config's
    assert load_config(write(cfgs, {"model": "./models/nope"})).fl.model == str(cfgs / "models" / "nope")


def test_unset_runs_dir_is_runs_in_the_working_directory(layout):
    cfgs, work = layout
    cfg = load_config(write(cfgs))
    assert cfg.output.runs_dir == "" and cfg.output.runs_path() == work / "runs"


def test_set_values_resolve_like_the_files_own(layout):
    """The existing convention (`--set rsu.file=...` names a file beside the config) holds for these too."""
    cfgs, _ = layout
    cfg = load_config(write(cfgs), {"fl.model": "models/m", "output.runs_dir": "out"})
    assert cfg.fl.model == str(cfgs / "models" / "m") and cfg.output.runs_dir == str(cfgs / "out")


def test_run_folder_config_holds_absolute_paths_and_resumes_from_anywhere(layout, tmp_path, monkeypatch):
    cfgs, work = layout
    for name in ("grid.net.xml", "a.rou.xml", "rsus.csv", "d.csv"):
        (cfgs / name).write_text("x")
    p = cfgs / "exp.yaml"
    p.write_text(yaml.safe_dump({
        "mobility": {"net_file": "grid.net.xml", "route_files": ["a.rou.xml", "sumo:tools/game/A10KW/osm.truck.rou.xml"]},
        "rsu": {"placement": "file", "file": "rsus.csv"},
        "fl": {"model": "models/m", "tasks": [{"name": "s", "dataset": "sst2", "data_dir": "glue"},
                                              {"name": "c", "dataset": "csv:d.csv"}]},
        "output": {"runs_dir": "out"}}))
    cfg = load_config(p)
    run = tmp_path / "run"
    run.mkdir()
    write_config(cfg, run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["mobility"]["net_file"] == str(cfgs / "grid.net.xml") and saved["rsu"]["file"] == str(cfgs / "rsus.csv")
    assert saved["mobility"]["route_files"] == [str(cfgs / "a.rou.xml"), "sumo:tools/game/A10KW/osm.truck.rou.xml"]
    assert saved["fl"]["model"] == str(cfgs / "models" / "m") and saved["output"]["runs_dir"] == str(cfgs / "out")
    assert [t.get("data_dir") for t in saved["fl"]["tasks"]] == [str(cfgs / "glue"), ""]
    assert saved["fl"]["tasks"][1]["dataset"] == f"csv:{cfgs / 'd.csv'}"
    monkeypatch.chdir(tmp_path)  # no summary.json (config_source): the saved config alone must do
    again, _ = load_for_resume(run)
    assert again.mobility == cfg.mobility and again.rsu == cfg.rsu and again.fl == cfg.fl


def test_check_builds_a_relative_model_folder_and_glue_dir_from_another_directory(tmp_path, shared_data_dir):
    """The real model and SST-2 reached through folders beside the config, the command run elsewhere."""
    from iovsim.fl.model import resolve_model_path

    cfgs, work = tmp_path / "cfgs", tmp_path / "work"
    (cfgs / "models").mkdir(parents=True)
    work.mkdir()
    try:
        (cfgs / "models" / "mini").symlink_to(resolve_model_path("minilm"), target_is_directory=True)
    except Exception as e:  # noqa: BLE001 - the offline model package absent
        pytest.skip(f"model unavailable: {e}")
    (cfgs / "sst").symlink_to(shared_data_dir / "glue" / "SST-2", target_is_directory=True)
    task = {"name": "sst2", "dataset": "sst2", "data_dir": "sst", "max_samples": 300, "test_samples": 40,
            "max_length": 24}
    cfg = tiny_config(**{"fl.model": "models/mini", "fl.tasks": [task], "mobility.warmup_s": 20})
    (cfgs / "exp.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = iovsim_in(work, env, "check", cfgs / "exp.yaml", "--quiet")
    assert out.returncode == 0, out.stderr


def test_out_stays_relative_to_the_working_directory(layout):
    from iovsim.cli import _out_to_config

    cfgs, work = layout
    cfg = load_config(write(cfgs, output={"runs_dir": "out"}))
    _out_to_config(cfg, "mine/run1")
    assert cfg.output.runs_path() / cfg.output.run_name == work / "mine" / "run1"


def iovsim_in(cwd: Path, env: dict, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "iovsim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)
