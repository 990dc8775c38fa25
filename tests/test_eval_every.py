"""fl.eval_every: rounds between evaluations leave accuracy empty, evaluated rounds score exactly what an
every-round run scores (evaluation does not touch training), and the summaries use the last evaluated round."""
import pytest

from iovsim.config import config_from_dict
from iovsim.experiment import Experiment
from iovsim.runs.stats import run_values
from iovsim.strategies.ucb_core import task_difficulty
from iovsim.viz.report import summary_rows

from conftest import csv_rows, tiny_config

pytestmark = pytest.mark.slow


def _run(tmp_path, name, **over):
    cfg = config_from_dict(tiny_config(**{"fl.rounds": 3, **over}), base_dir=tmp_path)
    Experiment(cfg, tmp_path / name).run()
    return csv_rows(tmp_path / name / "metrics.csv")


def test_evaluated_rounds_match_an_every_round_run(tmp_path):
    every = _run(tmp_path, "every")
    sparse = _run(tmp_path, "sparse", **{"fl.eval_every": 2})
    assert len(sparse) == len(every) == 3 * 2
    for a, b in zip(every, sparse):
        if b["round"] == "1":  # not a multiple of 2 and not the last round
            assert b["accuracy"] == b["loss"] == b["accuracy_se"] == "" and b["test_samples"] == "0"
            assert a["accuracy"] != ""
        else:
            assert b["accuracy"] == a["accuracy"] and b["loss"] == a["loss"], b["round"]
        # what the round did does not depend on whether it was evaluated
        for k in ("participants", "completed", "round_latency_s", "energy_j", "mean_rank"):
            assert a[k] == b[k], (b["round"], k)
    last = {r["task"]: float(r["accuracy"]) for r in sparse if r["round"] == "3"}
    assert {r["task"]: r["final_accuracy"] for r in summary_rows(sparse)} == pytest.approx(last)
    vals = run_values(tmp_path / "sparse")
    finals = vals[vals.metric == "final_accuracy"].set_index("task")["value"]
    assert finals[list(last)].to_dict() == pytest.approx(last)
    means = vals[vals.metric == "mean_accuracy"].set_index("task")["value"]
    for t in last:  # the mean over the evaluated rounds 2 and 3 only
        scored = [float(r["accuracy"]) for r in sparse if r["task"] == t and r["accuracy"] != ""]
        assert means[t] == pytest.approx(sum(scored) / 2)


def test_difficulty_keeps_its_value_when_accuracy_was_not_measured():
    h = task_difficulty([2.0, 3.0], [50.0, 50.0], [80.0, float("nan")], 0.9)
    assert h[0] == pytest.approx(0.9 * 2.0 + 0.1 * 50.0 / 80.0)
    assert h[1] == 3.0


def test_env_reward_of_an_unevaluated_round_is_no_gain():
    from iovsim.env.reward import reward_terms

    row = {"accuracy": "", "round_latency_s": 4.0, "energy_j": 10.0, "lost_updates": 1}
    terms = reward_terms([row, dict(row)], 0.6)
    assert terms["accuracy"] == 0.6 and terms["accuracy_gain"] == 0.0
    assert terms["energy_j"] == 20.0 and terms["lost_updates"] == 2.0
    scored = reward_terms([dict(row, accuracy="0.7"), dict(row, accuracy="0.8")], 0.6)
    assert scored["accuracy_gain"] == pytest.approx(0.15)


def test_resume_after_an_unevaluated_round_continues_byte_identical(tmp_path):
    """A run stopped after round 1 (not evaluated) resumes: summary.json keeps the last evaluated
    accuracy, and the resumed run's files equal an uninterrupted run's."""
    import json
    import shutil

    cfg = {"fl.rounds": 3, "fl.eval_every": 2, "output.checkpoint_every": 1}
    _run(tmp_path, "whole", **cfg)
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "whole", part)
    for r in ("round_0002", "round_0003"):
        shutil.rmtree(part / "checkpoints" / r)
    summary = Experiment.resume(part).run()
    assert summary["finished"] and summary["rounds"] == 3
    for name in ("metrics.csv", "vehicles.csv"):
        assert (part / name).read_text() == (tmp_path / "whole" / name).read_text(), name
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["final_accuracy"] == whole["final_accuracy"] != {}
