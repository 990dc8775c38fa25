"""`iovsim compare` over seeds, 2 strategies x 2 seeds on a tiny real experiment:

killed mid-way and re-run, it keeps every finished run untouched and resumes the interrupted one;
re-run once more it redoes nothing; its table equals scipy on the run folders' own numbers; each
run's peak memory is its own process's; on Ray the same runs give byte-identical files.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import yaml
from scipy import stats

from conftest import csv_rows, iovsim, tiny_config

pytestmark = pytest.mark.slow

STRATEGIES, SEEDS = ["homolora", "hetlora"], [7, 8]


def compare_args(d, out):
    return ["compare", d / "tiny.yaml", "--strategies", ",".join(STRATEGIES), "--seeds", "7,8", "--jobs", "2",
            "--threads", "1", "--out", out, "--quiet"]


def run_dirs(out):
    return {(s, seed): out / s / f"seed-{seed}" for s in STRATEGIES for seed in SEEDS}


def finished(d):
    try:
        return json.loads((d / "summary.json").read_text())["finished"] is True
    except (OSError, ValueError, KeyError):
        return False


def snapshot(out):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for d in run_dirs(out).values() for p in d.rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Start the comparison, kill it once a run is finished and another has a checkpoint, run it again."""
    d = tmp_path_factory.mktemp("seeds")
    (d / "tiny.yaml").write_text(yaml.safe_dump(tiny_config()))
    out = d / "cmp"
    proc = subprocess.Popen([sys.executable, "-m", "iovsim.cli", *map(str, compare_args(d, out))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dirs = run_dirs(out).values()
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        done = [x for x in dirs if finished(x) and (x / "process.json").exists()]
        cut = [x for x in dirs if not finished(x) and list(x.glob("checkpoints/round_0001/state.json"))]
        if done and cut:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the comparison ended before it could be interrupted"
    children = psutil.Process(proc.pid).children(recursive=True)
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for x in done for p in x.rglob("*") if p.is_file()}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, "runs outlived the killed comparison"
    again = iovsim(*compare_args(d, out), timeout=1500)
    assert again.returncode == 0, again.stderr[-3000:]
    return d, out, kept, cut


def test_killed_comparison_keeps_finished_runs_and_resumes_the_interrupted(resumed):
    d, out, kept, cut = resumed
    assert all(finished(x) for x in run_dirs(out).values())
    assert kept and all(p.stat().st_mtime_ns == m and p.read_bytes() == b for p, (m, b) in kept.items())
    attempts = json.loads((cut[0] / "process.json").read_text())
    assert [a["state"] for a in attempts] == ["resume"], "the interrupted run started over instead of resuming"
    assert {int(r["round"]) for r in csv_rows(cut[0] / "metrics.csv")} == {1, 2}


def test_table_equals_scipy_on_the_run_folders(resumed):
    _, out, _, _ = resumed
    values = {}
    for (s, seed), rd in run_dirs(out).items():
        m = csv_rows(rd / "metrics.csv")
        last = max(int(r["round"]) for r in m)
        final = {r["task"]: float(r["accuracy"]) for r in m if int(r["round"]) == last}
        latency = {int(r["round"]): float(r["round_latency_s"]) for r in m}
        values[s, seed] = {("tweets", "final_accuracy"): final["tweets"],
                           ("all", "final_accuracy"): np.mean(list(final.values())),
                           ("all", "mean_round_latency_s"): np.mean(list(latency.values())),
                           ("all", "energy_j"): sum(float(r["energy_j"]) for r in m)}
    table = {(r["strategy"], r["task"], r["metric"]): r for r in csv_rows(out / "compare.csv")}
    for key in values["homolora", 7]:
        base = np.array([values["homolora", s][key] for s in SEEDS])
        x = np.array([values["hetlora", s][key] for s in SEEDS])
        row, brow = table[("hetlora", *key)], table[("homolora", *key)]
        assert float(row["mean"]) == pytest.approx(x.mean(), rel=1e-9), key
        assert float(row["std"]) == pytest.approx(np.std(x, ddof=1), rel=1e-9), key
        lo, hi = stats.ttest_1samp(x, 0).confidence_interval(0.95)
        assert (float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx((lo, hi), rel=1e-9), key
        assert float(row["diff_mean"]) == pytest.approx((x - base).mean(), rel=1e-9, abs=1e-12), key
        res = stats.ttest_rel(x, base)
        if np.std(x - base) > 0:
            lo, hi = res.confidence_interval(0.95)
            assert (float(row["diff_ci95_low"]), float(row["diff_ci95_high"])) == pytest.approx((lo, hi)), key
            assert float(row["p_value"]) == pytest.approx(res.pvalue, rel=1e-9), key
        assert brow["diff_mean"] == "" and float(brow["mean"]) == pytest.approx(base.mean(), rel=1e-9), key
    md = (out / "compare.md").read_text()
    assert "4 of 4 runs finished" in md and md.count("| finished |") == 4


def test_rerun_redoes_nothing(resumed):
    d, out, _, _ = resumed
    before, table = snapshot(out), (out / "compare.csv").read_bytes()
    again = iovsim(*compare_args(d, out), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(out) == before
    assert (out / "compare.csv").read_bytes() == table


def test_peak_memory_is_each_runs_own(resumed):
    _, out, _, _ = resumed
    pids, runs = set(), {(r["strategy"], int(r["seed"])): r for r in csv_rows(out / "runs.csv")}
    for key, rd in run_dirs(out).items():
        attempts = json.loads((rd / "process.json").read_text())
        pids |= {a["pid"] for a in attempts}
        own = json.loads((rd / "summary.json").read_text())["peak_rss_bytes"]  # the child's RUSAGE_SELF
        last = attempts[-1]["peak_rss_bytes"]  # the parent's wait4 on that child
        assert own <= last <= 1.5 * own, key
        assert float(runs[key]["peak_rss_mb"]) == pytest.approx(max(a["peak_rss_bytes"] for a in attempts) / 2**20)
    assert len(pids) == 4 and os.getpid() not in pids


def test_ray_backend_gives_identical_files_and_table(resumed):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'iovsim[ray]'); make test installs it")
    from iovsim.compare import run_compare

    d, out, _, _ = resumed
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_out, records = run_compare(d / "tiny.yaml", {}, STRATEGIES, "7,8", out_dir=d / "ray", jobs=2,
                                       threads=1, backend="ray")
    finally:
        ray.shutdown()
    assert [r["status"] for r in records] == ["finished"] * 4, records
    for key, rd in run_dirs(out).items():
        other = run_dirs(ray_out)[key]
        for name in ("metrics.csv", "vehicles.csv", "handovers.csv"):
            assert (other / name).read_bytes() == (rd / name).read_bytes(), (key, name)
    # the interrupted-and-resumed local comparison ends with the same table as the uninterrupted Ray one
    assert (ray_out / "compare.csv").read_bytes() == (out / "compare.csv").read_bytes()


def test_other_baseline_and_more_seeds_on_the_same_folder(resumed, tmp_path):
    """--baseline is not part of the plan; a command adding a seed says so in one line, and the tables
    cover that command's strategies x seeds, not everything the folder holds."""
    import shutil

    d, out, _, _ = resumed
    cmp = tmp_path / "cmp"
    shutil.copytree(out, cmp)  # the other tests read `out`'s tables
    before = snapshot(cmp)
    other = iovsim("compare", d / "tiny.yaml", "--strategies", "homolora,hetlora", "--seeds", "7,8",
                   "--baseline", "hetlora", "--out", cmp, timeout=600)
    assert other.returncode == 0, other.stderr[-3000:]
    assert snapshot(cmp) == before and "adding" not in other.stdout + other.stderr  # nothing re-run or added
    rows = [r for r in csv_rows(cmp / "compare.csv") if r["task"] == "all" and r["metric"] == "final_accuracy"]
    assert {r["strategy"]: r["diff_mean"] == "" for r in rows} == {"hetlora": True, "homolora": False}
    more = iovsim("compare", d / "tiny.yaml", "--strategies", "homolora", "--seeds", "7,9", "--out", cmp,
                  "--threads", "1", "--json", timeout=900)
    assert more.returncode == 0, more.stderr[-3000:]
    events = [json.loads(x) for x in more.stdout.splitlines() if x.startswith("{")]
    said = [e["text"] for e in events if e["event"] == "message"]
    assert said[0] == (f"{cmp}: adding seed 9 (1 run; plan.json now 2 strategies x 3 seeds, 5 runs); compare.csv/.md "
                       "cover this command's 1 strategy x 2 seeds"), said
    assert finished(cmp / "homolora" / "seed-9") and snapshot(cmp) == before
    assert {(r["strategy"], r["seed"]) for r in csv_rows(cmp / "runs.csv")} == {("homolora", "7"), ("homolora", "9")}
    assert {r["n"] for r in csv_rows(cmp / "compare.csv")} == {"2"}
