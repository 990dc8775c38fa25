"""Arguments the CLI must refuse in one line rather than ignore.

Nothing here trains or starts SUMO: each refusal comes before a config, model or scenario is built."""
import pytest

from conftest import iovsim


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
