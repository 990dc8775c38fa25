"""tools/paper_comparison.py: the claims table and the dwell_ucb verdicts equal hand computations on
run folders whose metrics.csv holds known numbers (the statistics only; no training here)."""
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

SEEDS = [1, 2, 3]
# per strategy: per-seed (final accuracy of both tasks, round latency of both rounds, lost updates per task-round)
RUNS = {"homolora": ([0.70, 0.72, 0.68], [10.0, 12.0, 11.0], [2, 3, 2]),
        "hetlora": ([0.69, 0.70, 0.66], [9.0, 11.0, 12.0], [2, 2, 3]),
        "ucb_dual": ([0.73, 0.74, 0.71], [8.0, 9.0, 9.5], [3, 3, 4]),
        "dwell_ucb": ([0.72, 0.745, 0.70], [7.0, 8.5, 8.0], [1, 1, 2])}


def load_tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "paper_comparison.py"
    spec = importlib.util.spec_from_file_location("paper_comparison", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def out(tmp_path):
    plan = {"identity": {"kind": "compare", "config": str(tmp_path / "sumo_scenarios" / "paper.yaml"),
                         "set": {"fl.rounds": 2}}, "runs": {}}
    for g, (acc, lat, lost) in RUNS.items():
        for i, s in enumerate(SEEDS):
            d = tmp_path / g / f"seed-{s}"
            d.mkdir(parents=True)
            plan["runs"][f"{g}/seed-{s}"] = {"group": g, "seed": s, "overrides": {}}
            (d / "summary.json").write_text(json.dumps({"finished": True}))
            with open(d / "metrics.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["round", "task", "accuracy", "energy_j", "lost_updates", "round_latency_s"])
                for r in (1, 2):  # both rounds and both tasks: the same numbers, so the means are those numbers
                    for t in ("a", "b"):
                        w.writerow([r, t, acc[i], 10.0, lost[i], lat[i]])
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return tmp_path


def cells(text: str, section: str) -> dict[str, list[str]]:
    part = text.split(section)[1].split("\n## ")[0]
    rows = [ln for ln in part.splitlines() if ln.startswith("|")][2:]
    return {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")[1:]] for r in rows}


def test_claims_table_is_the_paired_difference_on_the_same_seeds(out):
    text = load_tool().report(out)
    claims = cells(text, "## The paper's claims")
    u, h, het = (np.array(RUNS[g][1]) for g in ("ucb_dual", "homolora", "hetlora"))
    rel = 100 * (u / h - 1)
    lo, hi = stats.t.interval(0.95, 2, loc=rel.mean(), scale=stats.sem(rel))
    lat = claims["round latency [%]"]
    assert lat[0] == "-24"
    assert lat[1] == f"{rel.mean():.4g} [{lo:.4g}, {hi:.4g}]"
    assert lat[2].startswith(f"{(100 * (u / het - 1)).mean():.4g} [")
    ua, ha = 100 * np.array(RUNS["ucb_dual"][0]), 100 * np.array(RUNS["homolora"][0])
    res = stats.ttest_rel(ua, ha)
    acc = claims["final accuracy, mean of tasks [points]"]
    assert acc[0] == "+2.5" and acc[1].startswith(f"+{(ua - ha).mean():.4g} [")
    assert f"p {res.pvalue:.2g}" in acc[1]


def test_dwell_verdicts_read_the_intervals(out):
    goals = cells(load_tool().report(out), "## dwell_ucb against ucb_dual")
    # lost updates: 1,1,2 against 3,3,4 per task-round -> always 8 fewer per run: met
    assert goals["lost updates"][2].startswith("-8") and goals["lost updates"][3] == "met"
    lat = np.array(RUNS["dwell_ucb"][1]) - np.array(RUNS["ucb_dual"][1])
    lo, hi = stats.ttest_rel(RUNS["dwell_ucb"][1], RUNS["ucb_dual"][1]).confidence_interval(0.95)
    assert goals["mean round latency [s]"][3] == ("met" if hi < 0 else "not shown (the interval includes 0)")
    assert goals["mean round latency [s]"][2].startswith(f"{lat.mean():.4g} [")
    # accuracy 0.7217 on average, inside ucb_dual's interval around 0.7267: not worse
    assert goals["final accuracy, mean of tasks"][3] == "met"


def test_figure_bars_are_the_paired_differences_against_homolora(out, tmp_path):
    tool = load_tool()
    panels = tool.paired_panels(out)
    bars = {g: (m, lo, hi) for g, m, lo, hi in panels["Δ round latency [s]"]}
    assert set(bars) == {"hetlora", "ucb_dual", "dwell_ucb"}  # the baseline has no difference to draw
    for g in bars:
        d = np.array(RUNS[g][1]) - np.array(RUNS["homolora"][1])
        lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        assert bars[g] == pytest.approx((d.mean(), lo, hi))
    acc = {g: m for g, m, _, _ in panels["Δ final accuracy, mean of tasks"]}
    assert acc["ucb_dual"] == pytest.approx(np.mean(np.array(RUNS["ucb_dual"][0]) - np.array(RUNS["homolora"][0])))
    png = tool.fig_seeds_bars(panels, tmp_path / "paired.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_round_time_reads_the_slowest_participant_of_each_round(tmp_path):
    tool = load_tool()
    cols = ["round", "vehicle", "rank", "download_time_s", "compute_time_s", "upload_time_s", "latency_s", "status"]
    rows = [[1, "a", 8, 1.0, 2.0, 2.0, 5.0, "ok"],
            [1, "b", 16, 60.0, 0.0, 0.0, 60.0, "lost_deadline"],   # held round 1 to the deadline
            [2, "a", 8, 1.0, 1.0, 2.0, 4.0, "ok"],                 # round 2's slowest
            [2, "b", 16, 0.5, 0.5, 1.0, 2.0, "migrated"],
            [2, "c", 4, 0.1, 0.1, 0.1, float("nan"), "lost_left"]]  # no latency: never the slowest
    for seed, extra in ((1, 0.0), (2, 2.0)):
        d = tmp_path / f"seed-{seed}"
        d.mkdir()
        with open(d / "vehicles.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows([r[:3] + [r[3] + extra] + r[4:] for r in rows])
    got = tool.round_time(tmp_path / "seed-1")
    assert got == pytest.approx({"rank": 52 / 5, "deadline_rounds": 1, "slowest_rank": 12.0, "slowest_download_s": 30.5,
                                 "slowest_compute_s": 0.5, "slowest_upload_s": 1.0, "migrated": 1, "early": 0})
    recs = [{"group": "g", "status": "finished", "run_dir": str(tmp_path / f"seed-{s}")} for s in (1, 2)]
    (row,) = tool.round_time_rows(recs, ["g"])
    dl = np.array([30.5, 32.5])
    lo, hi = stats.t.interval(0.95, 1, loc=dl.mean(), scale=stats.sem(dl))
    assert row[:2] == ["g", "2"] and row[2 + 3] == f"{dl.mean():.4g} [{lo:.4g}, {hi:.4g}]"


def test_dwell_verdicts_need_an_interval(out):
    """With one finished dwell_ucb seed there is no interval, so no goal is called met."""
    for s in SEEDS[1:]:
        (out / "dwell_ucb" / f"seed-{s}" / "summary.json").write_text(json.dumps({"finished": False}))
    goals = cells(load_tool().report(out), "## dwell_ucb against ucb_dual")
    assert {g[3] for g in goals.values()} == {"not shown (one seed: no interval)"}
