"""tools/gpu_projection.py: a comparison's wall time projected from a short slice's run folders."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("gpu_projection", Path(__file__).parents[1] / "tools" / "gpu_projection.py")
proj = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proj)


def fake_run(run_dir: Path, start: float, ends: list[float], wall: float, eval_every: int, gpu=None):
    """A finished run folder whose round checkpoints were written at `ends` (epoch seconds)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"fl:\n  rounds: {len(ends)}\n  eval_every: {eval_every}\n")
    (run_dir / "process.json").write_text(json.dumps([{"started": start, "wall_time_s": wall, "peak_rss_bytes": 1}]))
    summary = {"finished": True} | ({"peak_gpu_allocated_bytes": gpu} if gpu else {})
    (run_dir / "summary.json").write_text(json.dumps(summary))
    for r, t in enumerate(ends, 1):
        state = run_dir / "checkpoints" / f"round_{r:04d}" / "state.json"
        state.parent.mkdir(parents=True)
        state.write_text("{}")
        os.utime(state, (t, t))


def test_a_run_splits_into_fixed_part_plain_and_evaluated_rounds(tmp_path):
    # 6 rounds, evaluated at 3 and 6: plain rounds take 2 s, evaluated ones 5 s; start-up 10 s, report 3 s
    start = 1000.0
    ends, t = [], start + 10
    for r in range(1, 7):
        t += 5 if r in (3, 6) else 2
        ends.append(t)
    fake_run(tmp_path / "homolora" / "seed-1", start, ends, wall=(ends[-1] + 3) - start, eval_every=3, gpu=3 * 2**20)
    times = proj.run_times(tmp_path / "homolora" / "seed-1")
    assert times["round_s"] == pytest.approx(2) and times["eval_round_s"] == pytest.approx(5)
    assert times["fixed_s"] == pytest.approx(13) and times["peak_gpu_bytes"] == 3 * 2**20
    # 30 rounds evaluated every 10: 27 plain + 3 evaluated + 13 s fixed
    assert proj.projected_run_s(times, 30, 10) == pytest.approx(13 + 27 * 2 + 3 * 5)


def test_runs_are_placed_longest_first():
    assert proj.makespan([10, 10, 10, 10, 10], 2) == 30
    assert proj.makespan([3, 8, 4, 5], 2) == 11   # 8 | 5, then 4 beside the 5 (9), 3 beside the 8 (11)
    assert proj.makespan([7, 7, 7], 8) == 7       # more slots than runs: one wave


def test_a_slice_with_one_kind_of_round_uses_it_for_both(tmp_path):
    # 3 rounds evaluated every 2: rounds 2 and 3 are both evaluated (4 s); no plain round to measure
    fake_run(tmp_path / "a" / "seed-1", 0.0, [10.0, 14.0, 18.0], wall=20.0, eval_every=2)
    times = proj.run_times(tmp_path / "a" / "seed-1")
    assert times["round_s"] == times["eval_round_s"] == pytest.approx(4)
    assert times["fixed_s"] == pytest.approx(10 - 4 + 2)
    assert proj.projected_run_s(times, 30, 10) == pytest.approx(8 + 30 * 4)
