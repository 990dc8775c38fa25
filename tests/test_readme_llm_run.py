"""tools/readme_llm_run.py: the per-round table (MB up / down, lost updates by cause, wall time) and the
adapter-against-dwell table equal hand computations on a run folder written by the real logging code."""
import importlib.util
import os
from pathlib import Path

import pytest

from iovsim.engine.logs import RunLogs, accuracy_se
from iovsim.engine.rundir import write_summary

from test_readme_default_run import table_rows

MB = 8e6  # bits


def load_tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "readme_llm_run.py"
    spec = importlib.util.spec_from_file_location("readme_llm_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def metric(rnd, task, acc, parts, lost_ho, lost_left, lost_dl, up_mb, down_mb, lat):
    return {"round": rnd, "time_s": 121.0 + 70.0 * (rnd - 1), "task": task, "accuracy": acc,
            "accuracy_se": accuracy_se(acc, 30), "test_samples": 30, "participants": parts,
            "lost_updates": lost_ho + lost_left + lost_dl, "lost_handover": lost_ho, "lost_left": lost_left,
            "lost_deadline": lost_dl, "round_latency_s": lat, "energy_j": 50.0, "uplink_bits": up_mb * MB,
            "downlink_bits": down_mb * MB}


@pytest.fixture()
def hand_run(tmp_path):
    logs = RunLogs.open(tmp_path)
    logs.metrics.write([metric(1, "tweets", 0.5, 3, 1, 1, 0, 29.5, 58.5, 36.25),
                        metric(1, "bbc", 0.4, 1, 0, 1, 0, 0.0, 19.5, 36.25),
                        metric(2, "tweets", 0.6, 2, 0, 0, 1, 39.0, 39.0, 60.0),
                        metric(2, "bbc", 0.7, 2, 0, 0, 0, 39.0, 39.0, 60.0)])
    # 1e7 bits in 2 s and 3e7 in 4 s (a lost update's partial upload counts too): 4e7 / 6 s = 6.67 Mbit/s
    logs.vehicles.write([{"round": 1, "vehicle": "a", "bits_up": 1e7, "upload_time_s": 2.0},
                         {"round": 1, "vehicle": "b", "bits_up": 3e7, "upload_time_s": 4.0},
                         {"round": 2, "vehicle": "c", "bits_up": 0, "upload_time_s": 0}])
    logs.dwell.write([{"round": 1, "vehicle": v, "rsu": 0, "start_s": 121, "predicted_s": 5, "actual_s": s, "end": e}
                      for v, s, e in (("a", 2, "handover"), ("b", 10, "left"), ("c", 6, "handover"),
                                      ("d", 4, "handover"), ("e", 8, "left"))])
    write_summary(tmp_path, {"seed": 135, "rounds": 2, "finished": True, "wall_time_s": 200.0,
                             "peak_rss_bytes": 3 * 2**30, "final_accuracy": {"tweets": 0.6, "bbc": 0.7},
                             "fl_vehicles_enrolled": 24, "handovers": 17, "ping_pong_handovers": 0,
                             "dwell_prediction": {"count": 3, "finite_predictions": 3, "median_abs_error_s": 2.0},
                             "traffic": {"uplink_mb": 107.5, "downlink_mb": 156.0, "delivered_mb": 97.5}})
    (tmp_path / "config.yaml").write_text("name: x\n")
    t0 = 1_000_000.0
    os.utime(tmp_path / "config.yaml", (t0, t0))
    for r, t in ((1, t0 + 70), (2, t0 + 130)):   # 70 s, then 60 s
        d = tmp_path / "checkpoints" / f"round_{r:04d}"
        d.mkdir(parents=True)
        (d / "state.json").write_text("{}")
        os.utime(d / "state.json", (t, t))
    return tmp_path


def test_round_table_by_hand(hand_run):
    text = load_tool().markdown(hand_run)
    assert "| round | SUMO time [s] | acc tweets ± s.e. | acc bbc ± s.e. | participants | MB up | MB down | " \
           "lost (handover / left / deadline) | round latency [s] | wall time [s] |" in text
    assert table_rows(text) == [
        # s.e. sqrt(0.5 * 0.5 / 30) = 0.091, sqrt(0.4 * 0.6 / 30) = 0.089; 29.5 + 0 MB up, 58.5 + 19.5 down
        ["1", "121", "0.500 ± 0.091", "0.400 ± 0.089", "4", "29.5", "78.0", "3 (1 / 2 / 0)", "36.2", "70"],
        ["2", "191", "0.600 ± 0.089", "0.700 ± 0.084", "4", "78.0", "78.0", "1 (0 / 0 / 1)", "60.0", "60"]]
    assert "A round costs 65 s of wall time on this CPU on average (60 to 70 s)." in text
    assert "traffic: 107.5 MB up, 156.0 MB down, 97.5 MB of updates delivered" in text
    assert "lost updates: 4 (to a handover 1, vehicle left 2, deadline 1)" in text  # readme_default_run's line


def test_adapter_against_dwell_by_hand(hand_run):
    text = load_tool().markdown(hand_run)
    # dwell 2, 4, 6, 8, 10 s: median 6, 10th percentile 2 + 0.4 x 2 = 2.8, 90th 8 + 0.6 x 2 = 9.2
    assert "(dwell.csv, 5 stays: 3 handover, 2 left): median 6.0 s, 10th percentile 2.8 s, 90th percentile 9.2 s" in text
    assert "Mean uplink rate: 6.67 Mbit/s" in text
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("| LoRA rank |"))
    rows = [[c.strip() for c in x.strip("|").split("|")] for x in lines[start + 2:start + 7]]
    # rank 16: 305,280 x 16 x 32 bits = 156,303,360 bits = 19.54 MB; / 6.667e6 bit/s = 23.4 s; / 6 s = 3.91
    # bf16: half of it, 11.7 s, 1.95
    assert rows[2] == ["16", "19.54", "9.77", "23.4 / 11.7", "3.91 / 1.95"]
    assert [r[0] for r in rows] == ["4", "8", "16", "32", "64"] and rows[0][1] == "4.88" and rows[4][1] == "78.15"
