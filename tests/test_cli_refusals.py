"""Arguments the CLI must refuse in one line rather than ignore, and what a missing built scenario says.

Nothing here trains or starts SUMO."""
import shutil
from pathlib import Path

import pytest

from conftest import REPO, iovsim


@pytest.mark.parametrize("extra, given", [
    (["{cfg}"], "CONFIG"),
    (["--set", "fl.rounds=5"], "--set"),
    (["--out", "{tmp}/elsewhere"], "--out"),
    (["{cfg}", "--set", "fl.rounds=5", "--out", "{tmp}/elsewhere"], "CONFIG, --set, --out"),
])
def test_resume_refuses_config_set_and_out(tmp_path, extra, given):
    # neither RUN_DIR nor CONFIG exists: the refusal must come before either is read
    args = [a.format(cfg=tmp_path / "nowhere.yaml", tmp=tmp_path) for a in extra]
    out = iovsim("run", "--resume", tmp_path / "no-run", *args, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "--resume" in lines[0] and "own config.yaml" in lines[0] and f"(given: {given};" in lines[0]
    assert "--set fl.rounds=N" in lines[0]
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("config", ["sf_traces.yaml", "sf_traces_exact.yaml"])
def test_unbuilt_sf_traces_names_the_command_that_builds_it(tmp_path, config):
    """A fresh clone has the scenario YAMLs but not sumo_scenarios/sf_traces/build/ (made from the shared
    data): the one line must say which command makes it."""
    scen = REPO / "sumo_scenarios"
    shutil.copytree(scen / "sf_traces", tmp_path / "sf_traces", ignore=shutil.ignore_patterns("build"))
    shutil.copy(scen / config, tmp_path / config)
    out = iovsim("check", tmp_path / config, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "file not found" in lines[0] and str(Path("sf_traces") / "build") in lines[0]
    assert "python tools/make_sf_traces.py" in lines[0]
