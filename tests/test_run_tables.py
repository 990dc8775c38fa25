"""compare.md's headline: one row per strategy for task `all`, each cell the mean and 95 % interval that
scipy gives for the seeds' values, and the paired difference against the baseline (no training here)."""
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from iovsim.runs.stats import summarize
from iovsim.runs.table import HEADLINE, headline, write_tables

SEEDS = [1, 2, 3, 4]
VALUES = {  # group -> metric -> per-seed values
    "homolora": {"final_accuracy": [0.70, 0.72, 0.69, 0.71], "mean_round_latency_s": [10.0, 12.0, 11.0, 13.0]},
    "ucb_dual": {"final_accuracy": [0.73, 0.74, 0.70, 0.75], "mean_round_latency_s": [8.0, 9.5, 9.0, 10.0]},
}


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell)]


@pytest.fixture()
def md(tmp_path):
    rows = [(g, s, "all", m, v[i]) for g, per in VALUES.items() for m, v in per.items() for i, s in enumerate(SEEDS)]
    values = pd.DataFrame(rows, columns=["group", "seed", "task", "metric", "value"])
    table = summarize(values, list(VALUES), "homolora")
    records = [{"group": g, "seed": s, "status": "finished", "attempts": 1, "run_dir": str(tmp_path / g / str(s))}
               for g in VALUES for s in SEEDS]
    write_tables(tmp_path, "compare", "strategy", table, records, "homolora", SEEDS)
    return (tmp_path / "compare.md").read_text()


def headline_rows(md: str) -> dict[str, dict[str, str]]:
    part = md.split("## Across tasks")[1].split("## Every task")[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(head, cells)) for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:])}


def test_headline_cells_are_scipys_mean_interval_and_paired_difference(md):
    rows = headline_rows(md)
    assert set(rows) == {"homolora", "ucb_dual"} and rows["ucb_dual"]["seeds"] == "4"
    titles = dict((m, t) for t, m in HEADLINE)
    for metric in ("final_accuracy", "mean_round_latency_s"):
        x, base = np.array(VALUES["ucb_dual"][metric]), np.array(VALUES["homolora"][metric])
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert numbers(rows["ucb_dual"][titles[metric]]) == pytest.approx([x.mean(), lo, hi], rel=1e-3)
        res = stats.ttest_rel(x, base)
        ci = res.confidence_interval(0.95)
        d = (x - base).mean()
        got = numbers(rows["ucb_dual"]["Δ " + titles[metric]])
        assert got == pytest.approx([d, ci.low, ci.high, 100 * d / base.mean(), res.pvalue], rel=2e-2)
        assert rows["homolora"]["Δ " + titles[metric]] == "baseline"
    # a metric with no values in any run reads "-", not "nan"
    assert rows["ucb_dual"]["energy [J]"] == "-" and "nan" not in md.lower()


def test_latency_reduction_reads_negative_with_its_percentage(md):
    cell = headline_rows(md)["ucb_dual"]["Δ round latency [s]"]
    assert cell.startswith("-2.375 [") and "-20.7 %" in cell


def test_report_html_leads_with_the_same_headline(tmp_path, md):
    from iovsim.viz.report import write_seeds_report

    rows = [(g, s, "all", m, v[i]) for g, per in VALUES.items() for m, v in per.items() for i, s in enumerate(SEEDS)]
    table = summarize(pd.DataFrame(rows, columns=["group", "seed", "task", "metric", "value"]), list(VALUES), "homolora")
    records = [{"group": g, "seed": s, "status": "finished", "attempts": 1} for g in VALUES for s in SEEDS]
    text = write_seeds_report(tmp_path / "rep", "compare", "strategy", table, records, {}, "homolora").read_text()
    cell = headline_rows(md)["ucb_dual"]["Δ final accuracy"]
    assert f"<td class=\"\">{cell}</td>" in text
    assert text.index(cell) < text.index("Every task and metric")


def test_relative_difference_uses_the_baselines_mean_on_the_same_seeds():
    """A strategy with fewer finished seeds than the baseline: Δ % divides by the baseline's mean on
    those seeds, not on all of its own (which would mix two different seed sets)."""
    rows = [("homolora", s, "all", "final_accuracy", v) for s, v in zip([1, 2, 3, 4], [0.60, 0.62, 0.80, 0.82])]
    rows += [("ucb_dual", s, "all", "final_accuracy", v) for s, v in zip([1, 2], [0.63, 0.66])]
    table = summarize(pd.DataFrame(rows, columns=["group", "seed", "task", "metric", "value"]),
                      ["homolora", "ucb_dual"], "homolora").set_index("group")
    assert table.loc["ucb_dual", "diff_mean"] == pytest.approx(0.035)
    assert table.loc["ucb_dual", "diff_rel_pct"] == pytest.approx(100 * 0.035 / 0.61)  # not / 0.71
    header, cells = headline(table.reset_index(), "group", "homolora")
    assert dict(zip(header, cells[1]))["Δ final accuracy"].split("], ")[1].startswith("+5.7 %, p ")


def test_headline_carries_uplink_and_downlink_megabytes(tmp_path):
    """FlowerTune ranks communication: both directions' MB are headline columns (summary.json["traffic"])."""
    mb = {"uplink_mb": [12.0, 14.0], "downlink_mb": [30.0, 34.0]}
    rows = [("homolora", s, "all", m, v[i]) for m, v in mb.items() for i, s in enumerate([1, 2])]
    table = summarize(pd.DataFrame(rows, columns=["group", "seed", "task", "metric", "value"]), ["homolora"], None)
    header, cells = headline(table.rename(columns={"group": "strategy"}), "strategy", None)
    row = dict(zip(header, cells[0]))
    assert numbers(row["uplink [MB]"])[0] == pytest.approx(13.0)
    assert numbers(row["downlink [MB]"])[0] == pytest.approx(32.0)
