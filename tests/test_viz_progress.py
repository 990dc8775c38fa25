"""Progress facade: quiet prints nothing, json mode prints one JSON object per line, rich mode shows the table."""
from __future__ import annotations

import json
import math

import numpy as np

from iovsim.viz.progress import Progress

ROW = {"round": 1, "sumo_time_s": 360.0, "acc_tweets": 0.41, "acc_bbc": 0.62, "participants": 6,
       "lost_updates": 1, "round_latency_s": 12.5, "energy_j": 88.0}


def _work(p: Progress):
    with p.task("SUMO warm-up", total=10) as t:
        for _ in range(10):
            t.advance(1)
    with p.task("Rounds", total=2) as rounds:
        for r in (1, 2):
            with p.task(f"Round {r}: local training", total=3) as t:
                t.advance(3)
            p.round_table([{**ROW, "round": r}])
            p.event("round", round=r, tasks={"tweets": {"accuracy": np.float32(0.5), "loss": float("nan")}},
                    participants=np.int64(6))
            rounds.advance(1)
    p.message("done")


def test_quiet_prints_nothing(capsys):
    _work(Progress(quiet=True))
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_quiet_wins_over_json(capsys):
    _work(Progress(quiet=True, json_mode=True))
    assert capsys.readouterr().out == ""


def test_json_mode_one_object_per_line(capsys):
    _work(Progress(json_mode=True))
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    objs = [json.loads(l) for l in lines]  # every line parses on its own
    kinds = [o["event"] for o in objs]
    rounds = [o for o in objs if o["event"] == "round"]
    assert [o["round"] for o in rounds] == [1, 2]
    assert rounds[0]["participants"] == 6
    assert math.isclose(rounds[0]["tasks"]["tweets"]["accuracy"], 0.5)
    assert rounds[0]["tasks"]["tweets"]["loss"] is None  # NaN becomes null, the line stays valid JSON
    assert "task_start" in kinds and "task_end" in kinds
    assert {"event": "message", "text": "done"} in objs
    rows = [o for o in objs if o["event"] == "round_row"]
    assert rows[1]["acc_bbc"] == 0.62


def test_rich_mode_prints_table_and_messages(capsys):
    _work(Progress())
    out = capsys.readouterr().out
    assert "done" in out
    assert "0.410" in out and "0.620" in out  # per-task accuracy in the round table
    assert "SUMO warm-up" in out
    assert "latency" in out and "[s]" in out and "[J]" in out  # units in brackets are not eaten as rich markup
    assert "{" not in out.replace("{task", "")  # no JSON in human mode
