"""Run lists of compare/sweep without running anything: seeds, grids, folders, resume states, plan.json,
and the child's command line read back by the CLI as the same values."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from iovsim.cli import _parse_set
from iovsim.runs.plan import (PlanError, describe_addition, grid_groups, identity, make_specs, parse_grid, parse_seeds,
                              record_plan, run_state)
from iovsim.runs.process import child_argv
from iovsim.runs.stats import summarize


def test_seeds_count_or_list():
    assert parse_seeds("3", 7) == [7, 8, 9]
    assert parse_seeds("1,5,2", 7) == [1, 5, 2]
    assert parse_seeds("2509,", 7) == [2509] and len(parse_seeds("1000", 7)) == 1000
    with pytest.raises(PlanError, match=r"--seeds 2509: a count of 2509 runs per group .* write --seeds 2509,"):
        parse_seeds("2509", 7)
    assert parse_seeds("4,", 7) == [4]
    assert parse_seeds(None, 7) == [7]
    for bad in ("0", "x", "1,1", "1,a"):
        with pytest.raises(PlanError, match="--seeds"):
            parse_seeds(bad, 7)


def test_grid_is_the_product_of_its_values():
    grid = parse_grid(["fl.lora_rank=4,8", "strategy.name=homolora,hetlora"])
    assert grid == {"fl.lora_rank": [4, 8], "strategy.name": ["homolora", "hetlora"]}
    groups = grid_groups(grid)
    assert [g for g, _ in groups] == ["fl.lora_rank=4,strategy.name=homolora", "fl.lora_rank=4,strategy.name=hetlora",
                                      "fl.lora_rank=8,strategy.name=homolora", "fl.lora_rank=8,strategy.name=hetlora"]
    assert groups[3][1] == {"fl.lora_rank": 8, "strategy.name": "hetlora"}
    with pytest.raises(PlanError, match="--grid fl.lora_rank"):
        parse_grid(["fl.lora_rank"])


def test_folders_and_states(tmp_path):
    specs = make_specs([("homolora", {}), ("my/strat.py:Cls", {})], [1, 2], tmp_path)
    assert [s.run_dir.relative_to(tmp_path).as_posix() for s in specs] == [
        "homolora/seed-1", "homolora/seed-2", "my_strat.py_Cls/seed-1", "my_strat.py_Cls/seed-2"]
    d = specs[0].run_dir
    assert run_state(d) == "fresh"
    (d / "checkpoints" / "round_0001").mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"finished": False}))
    assert run_state(d) == "fresh"  # a checkpoint folder without its state.json was cut short
    (d / "checkpoints" / "round_0001" / "state.json").write_text("{}")
    assert run_state(d) == "resume"
    (d / "summary.json").write_text(json.dumps({"finished": True}))
    assert run_state(d) == "finished"


def test_plan_refuses_another_config_or_other_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: a\n")
    specs = make_specs([("homolora", {"strategy.name": "homolora"})], [1], tmp_path / "out")
    record_plan(tmp_path / "out", identity("compare", cfg, {}), specs)
    record_plan(tmp_path / "out", identity("compare", cfg, {}), specs)  # the same command again: fine
    more = make_specs([("hetlora", {"strategy.name": "hetlora"})], [1, 2], tmp_path / "out")
    record_plan(tmp_path / "out", identity("compare", cfg, {}), more)  # more runs: fine
    assert len(json.loads((tmp_path / "out" / "plan.json").read_text())["runs"]) == 3
    with pytest.raises(PlanError, match="holds a compare with no --set, not --set fl.rounds=3"):
        record_plan(tmp_path / "out", identity("compare", cfg, {"fl.rounds": 3}), specs)
    with pytest.raises(PlanError, match="holds a compare, not a sweep"):
        record_plan(tmp_path / "out", identity("sweep", cfg, {}), specs)
    cfg.write_text("name: b\n")
    with pytest.raises(PlanError, match="earlier version of .*c.yaml"):
        record_plan(tmp_path / "out", identity("compare", cfg, {}), specs)
    (tmp_path / "d.yaml").write_text("name: a\n")  # the same bytes elsewhere: the runs name that path
    with pytest.raises(PlanError, match="of .*c.yaml, not of .*d.yaml"):
        record_plan(tmp_path / "out", identity("compare", tmp_path / "d.yaml", {}), specs)
    cfg.write_text("name: a\n")
    other = make_specs([("homolora", {"strategy.name": "hetlora"})], [1], tmp_path / "out")
    with pytest.raises(PlanError, match="other overrides"):
        record_plan(tmp_path / "out", identity("compare", cfg, {}), other)


def strategies(*names):
    return [(n, {"strategy.name": n}) for n in names]


def test_more_seeds_or_strategies_extend_the_plan_and_say_so(tmp_path):
    """Extending a comparison is allowed and told in one line: what was added, what plan.json now holds,
    and that the tables cover only this command's strategies x seeds."""
    cfg, out = tmp_path / "c.yaml", tmp_path / "out"
    cfg.write_text("name: a\n")
    ident = identity("compare", cfg, {})
    first = make_specs(strategies("homolora", "hetlora"), [1, 2, 3], out)
    assert record_plan(out, ident, first) == {}
    assert describe_addition(out, "compare", "strategy", {}, first) == ""  # a new plan: nothing added
    again = record_plan(out, ident, first)
    assert describe_addition(out, "compare", "strategy", again, first) == ""  # the same command: nothing added
    more = make_specs(strategies("homolora", "hetlora"), [4, 5], out)
    line = describe_addition(out, "compare", "strategy", record_plan(out, ident, more), more)
    assert line == (f"{out}: adding seeds 4,5 (4 runs; plan.json now 2 strategies x 5 seeds); "
                    "compare.csv/.md cover this command's 2 strategies x 2 seeds")
    other = make_specs(strategies("homolora", "ucb_dual"), [1, 2, 3, 4, 5, 6], out)
    line = describe_addition(out, "compare", "strategy", record_plan(out, ident, other), other)
    assert line == (f"{out}: adding strategy ucb_dual and seed 6 (7 runs; plan.json now 3 strategies x 6 seeds, "
                    "17 runs); compare.csv/.md cover this command's 2 strategies x 6 seeds")
    assert len(json.loads((out / "plan.json").read_text())["runs"]) == 17
    # a subset re-run adds nothing; its tables are its own runs (said by run_plan's table, not here)
    subset = make_specs(strategies("hetlora"), [1], out)
    assert describe_addition(out, "compare", "strategy", record_plan(out, ident, subset), subset) == ""


def test_more_grid_points_extend_a_sweep(tmp_path):
    cfg, out = tmp_path / "c.yaml", tmp_path / "out"
    cfg.write_text("name: a\n")
    ident = identity("sweep", cfg, {"fl.rounds": 3})
    record_plan(out, ident, make_specs(grid_groups(parse_grid(["fl.lora_rank=4,8"])), [1], out))
    more = make_specs(grid_groups(parse_grid(["fl.lora_rank=4,8,16"])), [1], out)
    assert describe_addition(out, "sweep", "point", record_plan(out, ident, more), more) == (
        f"{out}: adding point fl.lora_rank=16 (1 run; plan.json now 3 points x 1 seed); "
        "sweep.csv/.md cover this command's 3 points x 1 seed")
    pairs = make_specs(grid_groups(parse_grid(["fl.lora_rank=4"])), [1], out) \
        + make_specs(grid_groups(parse_grid(["fl.lora_rank=8"])), [2], out)
    record_plan(out, ident, make_specs(grid_groups(parse_grid(["fl.lora_rank=16"])), [2], out))
    assert describe_addition(out, "sweep", "point", record_plan(out, ident, pairs), pairs).startswith(
        f"{out}: adding new pairings of its points and seeds (1 run; plan.json now 3 points x 2 seeds, 5 runs)")


def test_the_baseline_is_not_part_of_the_plan(tmp_path):
    """--baseline only changes the statistics: the identity a folder is checked against has no baseline."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: a\n")
    assert set(identity("compare", cfg, {})) == {"kind", "config", "config_sha256", "set"}


def test_child_command_carries_the_exact_values(tmp_path):
    params = {"gamma": 0.99, "ranks": [2, 4], "name": "a b", "flag": True}
    spec = make_specs([("hetlora", {"strategy.name": "hetlora", "strategy.params": params})], [11], tmp_path)[0]
    argv = child_argv(spec, tmp_path / "c.yaml", {"fl.rounds": 3, "fl.learning_rate": 1e-4}, threads=2, state="fresh")
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert _parse_set(sets) == {"fl.rounds": 3, "fl.learning_rate": 1e-4, "strategy.name": "hetlora",
                                "strategy.params": params, "seed": 11, "fl.threads": 2}
    assert argv[argv.index("--out") + 1] == str(spec.run_dir)
    assert child_argv(spec, tmp_path / "c.yaml", {}, 2, "resume")[-3:] == ["--resume", str(spec.run_dir), "--quiet"]


def test_summary_statistics_equal_scipy():
    rng = np.random.default_rng(0)
    seeds = [1, 2, 3, 4]
    a, b = rng.normal(0.6, 0.05, 4), rng.normal(0.55, 0.05, 4)
    values = pd.DataFrame([{"group": g, "seed": s, "task": "t", "metric": "final_accuracy", "value": v}
                           for g, xs in (("a", a), ("b", b)) for s, v in zip(seeds, xs)])
    values = values[~((values.group == "b") & (values.seed == 4))]  # a failed run: pairs on seeds 1-3 only
    table = summarize(values, ["a", "b"], "a").set_index("group")
    lo, hi = stats.ttest_1samp(a, 0).confidence_interval(0.95)
    assert table.loc["a", "mean"] == pytest.approx(a.mean(), rel=1e-12)
    assert (table.loc["a", "ci95_low"], table.loc["a", "ci95_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert table.loc["a", "std"] == pytest.approx(np.std(a, ddof=1), rel=1e-12)
    assert np.isnan(table.loc["a", "diff_mean"])
    assert table.loc["b", "n"] == 3 and table.loc["b", "diff_n"] == 3
    res = stats.ttest_rel(b[:3], a[:3])
    assert table.loc["b", "diff_mean"] == pytest.approx((b[:3] - a[:3]).mean(), rel=1e-12)
    assert table.loc["b", "p_value"] == pytest.approx(res.pvalue, rel=1e-12)
    ci = res.confidence_interval(0.95)
    assert (table.loc["b", "diff_ci95_low"], table.loc["b", "diff_ci95_high"]) == pytest.approx((ci.low, ci.high))
