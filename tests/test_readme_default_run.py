"""tools/readme_default_run.py: the markdown's per-round table and quoted figures equal what the run
folder holds — on a folder written by the real logging code with hand-checked numbers, and on a
real tiny run (SUMO, model, data) whose cells are recomputed here from its CSVs."""
import csv
import importlib.util
import json
from pathlib import Path

import pytest

from iovsim.config import config_from_dict
from iovsim.engine.logs import RunLogs, accuracy_se
from iovsim.engine.rundir import write_summary

from conftest import tiny_config


def load_tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "readme_default_run.py"
    spec = importlib.util.spec_from_file_location("readme_default_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def table_rows(text: str) -> list[list[str]]:
    """The cells of the markdown's first table's body."""
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("| round |"))
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return body


def metric(rnd, task, acc, n, parts, lost, lost_ho, lat, energy):
    return {"round": rnd, "time_s": 120.0 + 18.5 * (rnd - 1), "task": task, "accuracy": acc,
            "accuracy_se": accuracy_se(acc, n), "test_samples": n, "participants": parts, "lost_updates": lost,
            "lost_handover": lost_ho, "lost_left": lost - lost_ho, "lost_deadline": 0, "round_latency_s": lat,
            "energy_j": energy}


@pytest.fixture()
def hand_run(tmp_path):
    """Two rounds, two tasks, written by RunLogs and write_summary as a run writes them."""
    logs = RunLogs.open(tmp_path)
    logs.metrics.write([metric(1, "tweets", 0.5, 100, 3, 1, 1, 8.64, 100.4), metric(1, "bbc", 0.8, 100, 5, 1, 0, 8.64, 110.3),
                        metric(2, "tweets", 0.6, 100, 4, 0, 0, 12.25, 90.0), metric(2, "bbc", 0.9, 100, 4, 2, 2, 12.25, 95.6)])
    logs.vehicles.write([{"round": 1, "vehicle": v} for v in ("a", "b", "c", "d", "e", "f", "g", "h")]
                        + [{"round": 2, "vehicle": v} for v in ("a", "b", "i", "j", "k", "l", "m", "n")])
    write_summary(tmp_path, {"seed": 42, "rounds": 2, "finished": True, "wall_time_s": 159.4,
                             "peak_rss_bytes": 3 * 2**30, "final_accuracy": {"tweets": 0.6, "bbc": 0.9},
                             "fl_vehicles_enrolled": 30, "handovers": 17, "ping_pong_handovers": 2,
                             "dwell_prediction": {"count": 5, "finite_predictions": 4, "median_abs_error_s": 3.25}})
    return tmp_path


def test_table_and_figures_by_hand(hand_run):
    text = load_tool().markdown(hand_run)
    assert table_rows(text) == [
        # s.e. sqrt(0.5 * 0.5 / 100) = 0.05, sqrt(0.8 * 0.2 / 100) = 0.04; 3 + 5 participants; 1 + 1 lost;
        # 100.4 + 110.3 = 210.7 J
        ["1", "120", "0.500 ± 0.050", "0.800 ± 0.040", "8", "2", "8.6", "211"],
        # sqrt(0.6 * 0.4 / 100) = 0.049, sqrt(0.9 * 0.1 / 100) = 0.03; 90.0 + 95.6 = 185.6 J
        ["2", "138", "0.600 ± 0.049", "0.900 ± 0.030", "8", "2", "12.2", "186"]]
    assert "| round | SUMO time [s] | acc tweets ± s.e. | acc bbc ± s.e. | participants |" in text
    assert "wall time: 159 s (2 min 39 s;" in text
    assert "peak RSS: 3.00 GiB = 3.22 GB" in text  # 3 * 1024^3 bytes
    assert "14 distinct (16 participations; 30 federated vehicles enrolled" in text
    assert "handovers: 17 (2 ping-pongs)" in text
    assert "lost updates: 4 (to a handover 3, vehicle left 1, deadline 0)" in text
    # 3.25 rounds half to even; the median is over the finite predictions
    assert "median absolute error 3.2 s over the 4 dwells that ended in a handover and had a finite prediction (of 5" in text
    assert "tweets participants per round: 3 to 4" in text
    assert "final accuracy: tweets 0.600, bbc 0.900" in text


def test_context_lines(hand_run):
    tool = load_tool()
    ctx = {"machine": tool.machine(), "command": "python tools/readme_default_run.py", "runs": "iovsim run --out x",
           "load_before": (2.0, 1.5, 1.25), "load_after": (3.0, 2.5, 2.0), "command_wall_s": 170.2,
           "child_peak_rss_bytes": 2**31}
    text = tool.markdown(hand_run, ctx)
    assert "Command: `python tools/readme_default_run.py`, which runs `iovsim run --out x`" in text
    assert "before the run: 2.00, 1.50, 1.25; after: 3.00, 2.50, 2.00" in text
    assert "the whole command: 170 s wall time" in text and "peak RSS 2.00 GiB" in text
    assert f"torch {ctx['machine']['torch']}" in text


@pytest.mark.slow
def test_a_real_tiny_run(tmp_path):
    from iovsim.experiment import Experiment

    run = tmp_path / "run"
    Experiment(config_from_dict(tiny_config(), base_dir=tmp_path), run).run()
    text = load_tool().markdown(run)
    with open(run / "metrics.csv", newline="") as f:
        metrics = list(csv.DictReader(f))
    summary = json.loads((run / "summary.json").read_text())
    rows = table_rows(text)
    assert [r[0] for r in rows] == ["1", "2"]
    for r in rows:
        mine = [m for m in metrics if m["round"] == r[0]]
        assert [m["task"] for m in mine] == ["tweets", "bbc"]
        assert r[1] == f"{float(mine[0]['time_s']):.0f}"
        for cell, m in zip(r[2:4], mine):
            assert cell == f"{float(m['accuracy']):.3f} ± {float(m['accuracy_se']):.3f}"
        assert r[4] == str(int(mine[0]["participants"]) + int(mine[1]["participants"]))
        assert r[5] == str(int(mine[0]["lost_updates"]) + int(mine[1]["lost_updates"]))
        assert r[6] == f"{float(mine[0]['round_latency_s']):.1f}"
        assert r[7] == f"{float(mine[0]['energy_j']) + float(mine[1]['energy_j']):.0f}"
    assert f"peak RSS: {summary['peak_rss_bytes'] / 2**30:.2f} GiB" in text
    assert f"handovers: {summary['handovers']} ({summary['ping_pong_handovers']} ping-pongs)" in text
    dwell = summary["dwell_prediction"]
    assert f"over the {dwell['finite_predictions']} dwells that ended in a handover and had a finite prediction (of {dwell['count']} " in text
