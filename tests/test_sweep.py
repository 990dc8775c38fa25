"""`iovsim sweep`: one run per grid point and seed on the compare machinery, one table."""
import json

import pytest
import yaml

from conftest import csv_rows, iovsim, tiny_config


def test_bad_grid_value_is_one_line_and_runs_nothing(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config()))
    out = iovsim("sweep", tmp_path / "tiny.yaml", "--grid", "fl.lora_rank=4,0", "--out", tmp_path / "sw", "--quiet")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "lora_rank" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "sw").exists()


@pytest.mark.slow
def test_sweep_over_lora_rank(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(**{"fl.rounds": 1})))
    out = iovsim("sweep", tmp_path / "tiny.yaml", "--grid", "fl.lora_rank=4,8", "--seeds", "7,", "--jobs", "2",
                 "--out", tmp_path / "sw", "--quiet", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    table = csv_rows(tmp_path / "sw" / "sweep.csv")
    for rank in (4, 8):
        rd = tmp_path / "sw" / f"fl.lora_rank={rank}" / "seed-7"
        assert yaml.safe_load((rd / "config.yaml").read_text())["fl"]["lora_rank"] == rank
        assert {int(v["rank"]) for v in csv_rows(rd / "vehicles.csv")} == {rank}  # homolora trains at fl.lora_rank
        assert json.loads((rd / "summary.json").read_text())["seed"] == 7
        acc = {r["task"]: float(r["accuracy"]) for r in csv_rows(rd / "metrics.csv")}
        row = next(r for r in table if r["point"] == f"fl.lora_rank={rank}" and r["task"] == "tweets"
                   and r["metric"] == "final_accuracy")
        assert row["n"] == "1" and float(row["mean"]) == acc["tweets"]
    paired = next(r for r in table if r["point"] == "fl.lora_rank=8" and r["task"] == "all"
                  and r["metric"] == "final_accuracy")
    base = next(r for r in table if r["point"] == "fl.lora_rank=4" and r["task"] == "all"
                and r["metric"] == "final_accuracy")
    assert float(paired["diff_mean"]) == pytest.approx(float(paired["mean"]) - float(base["mean"]), abs=1e-12)
