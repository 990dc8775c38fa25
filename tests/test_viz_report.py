"""Figures and HTML reports from a small synthetic-but-consistent run folder (real A10KW net for the map)."""
from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from iovsim.viz.plots import make_figures, read_csv
from iovsim.viz.report import write_report

TASKS = ("tweets", "bbc")
ROUNDS = 5


def _sumo_net() -> Path:
    sumo = pytest.importorskip("sumo")
    p = Path(sumo.SUMO_HOME) / "tools" / "game" / "A10KW" / "osm.net.xml"
    if not p.is_file():
        pytest.skip(f"{p} absent from the eclipse-sumo wheel")
    return p


def _write(path: Path, header: list[str], rows: list[dict]):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow(r)


METRICS = ["round", "time_s", "task", "accuracy", "accuracy_se", "test_samples", "loss", "participants", "completed", "lost_updates",
           "lost_handover", "lost_left", "lost_deadline", "round_latency_s", "compute_time_s", "upload_time_s",
           "wait_time_s", "energy_j", "energy_budget_j", "mean_rank", "handovers", "migrated", "early"]
VEHICLES = ["round", "time_s", "vehicle", "task", "rsu", "tier", "rank", "local_steps", "tx_power_w", "bandwidth_hz",
            "download_time_s", "compute_time_s", "upload_time_s", "latency_s", "energy_j", "status", "loss_before",
            "loss_after", "num_samples", "dwell_pred_s"]
HANDOVERS = ["time_s", "round", "vehicle", "from_rsu", "to_rsu", "rsrp_from_dbm", "rsrp_to_dbm", "x_m", "y_m"]


def make_run(run_dir: Path, net: Path | None, seed: int = 0, acc_gain: float = 0.08) -> Path:
    """A run folder as the engine writes it: 5 rounds, 2 tasks, 4 RSUs, per-vehicle rows, handovers."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    rsus = [("rsu_0", 900.0, 600.0), ("rsu_1", 1500.0, 1300.0), ("rsu_2", 2100.0, 2000.0), ("rsu_3", 1300.0, 2600.0)]
    _write(run_dir / "rsus.csv", ["id", "x_m", "y_m", "lon", "lat", "radius_m"],
           [{"id": i, "x_m": x, "y_m": y, "lon": 13.4, "lat": 52.3, "radius_m": 450.0} for i, x, y in rsus])
    mrows, vrows, hrows, srows = [], [], [], []
    for r in range(1, ROUNDS + 1):
        t0 = 300.0 + 40 * (r - 1)
        n_ho = int(rng.integers(1, 5))
        for k in range(n_ho):
            a = int(rng.integers(0, 4))
            b = (a + 1) % 4
            frac = rng.uniform(0.3, 0.7)
            x = rsus[a][1] + frac * (rsus[b][1] - rsus[a][1])
            y = rsus[a][2] + frac * (rsus[b][2] - rsus[a][2])
            hrows.append({"time_s": t0 + 3 * k, "round": r, "vehicle": f"veh{k}", "from_rsu": a, "to_rsu": b,
                          "rsrp_from_dbm": -95.0, "rsrp_to_dbm": -92.0, "x_m": x, "y_m": y})
        latency = 10 + 3 * rng.random()
        for ti, task in enumerate(TASKS):
            ranks = rng.choice([2, 4, 8, 16], size=3)
            status = ["ok", "ok", "lost_handover" if r % 2 else "ok"]
            for j, (rank, st) in enumerate(zip(ranks, status)):
                vrows.append({"round": r, "time_s": t0, "vehicle": f"v{ti}{j}", "task": task, "rsu": j % 4,
                              "tier": "slow", "rank": int(rank), "local_steps": 2, "tx_power_w": 0.2,
                              "bandwidth_hz": 1e6, "download_time_s": 0.5, "compute_time_s": 4.0,
                              "upload_time_s": 3.0, "latency_s": 8.0 if st == "ok" else "", "energy_j": 20.0,
                              "status": st, "loss_before": 1.1, "loss_after": 0.9, "num_samples": 40,
                              "dwell_pred_s": 30.0})
            lost = status.count("lost_handover")
            acc = round(0.3 + acc_gain * r + 0.05 * ti, 4)
            mrows.append({"round": r, "time_s": t0, "task": task, "accuracy": acc,
                          "accuracy_se": round((acc * (1 - acc) / 300) ** 0.5, 5), "test_samples": 300,
                          "loss": round(1.2 - 0.1 * r, 4), "participants": 3, "completed": 3 - lost,
                          "lost_updates": lost, "lost_handover": lost, "lost_left": 0, "lost_deadline": 0,
                          "round_latency_s": latency, "compute_time_s": 4.0 + ti, "upload_time_s": 3.0,
                          "wait_time_s": max(0.0, latency - 7.5 - ti), "energy_j": 55.0 + 5 * r,
                          "energy_budget_j": 70.0, "mean_rank": float(np.mean(ranks)), "handovers": n_ho,
                          "migrated": int(r % 3 == 0), "early": int(r % 2 == 0) * (ti + 1)})
        srows += [{"round": r, "name": "dual_lambda", "value": 0.1 * r}, {"round": r, "name": "budget_tweets", "value": 70 - r}]
    _write(run_dir / "metrics.csv", METRICS, mrows)
    _write(run_dir / "vehicles.csv", VEHICLES, vrows)
    _write(run_dir / "handovers.csv", HANDOVERS, hrows)
    _write(run_dir / "strategy.csv", ["round", "name", "value"], srows)
    (run_dir / "summary.json").write_text(json.dumps({
        "name": "synthetic", "seed": 7, "strategy": "ucb_dual", "net_file": str(net) if net else "",
        "finished": True, "rounds": ROUNDS, "final_accuracy": {t: mrows[-2 + i]["accuracy"] for i, t in enumerate(TASKS)},
        "wall_time_s": 12.5, "peak_rss_bytes": 300 * 2**20, "fl_vehicles_enrolled": 12, "num_rsus": 4}))
    (run_dir / "config.yaml").write_text("name: synthetic\nseed: 7\nstrategy:\n  name: ucb_dual\n"
                                         "mobility:\n  net_file: sumo:tools/game/A10KW/osm.net.xml\n")
    return run_dir


def assert_real_png(path: Path, min_kb: float = 8):
    from PIL import Image

    assert path.is_file(), path
    assert path.stat().st_size > min_kb * 1024, f"{path} only {path.stat().st_size} bytes"
    im = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert im.std() > 10, f"{path} looks blank"
    colours = np.unique(im.reshape(-1, 3)[::7].astype(int), axis=0)
    assert len(colours) > 20, f"{path} has only {len(colours)} colours"


def test_make_figures_all(tmp_path):
    net = _sumo_net()
    run = make_run(tmp_path / "run", net)
    pngs = make_figures(run)
    names = {p.stem for p in pngs}
    assert names == {"accuracy_loss", "latency", "energy", "ranks", "losses_handovers", "strategy", "map"}
    for p in pngs:
        assert p.parent == run / "figures"
        assert_real_png(p)


def test_map_draws_network_rsus_and_handovers(tmp_path):
    from PIL import Image

    net = _sumo_net()
    run = make_run(tmp_path / "run", net)
    (p,) = [p for p in make_figures(run) if p.stem == "map"]
    im = np.asarray(Image.open(p).convert("RGB")).astype(int)
    r, g, b = im[..., 0], im[..., 1], im[..., 2]
    grey = (np.abs(r - g) < 6) & (np.abs(g - b) < 6) & (r > 90) & (r < 215)  # lanes, anti-aliased
    assert grey.sum() > 3000, "lanes of the net not drawn"
    blue = (np.abs(im[..., 0] - 31) < 25) & (np.abs(im[..., 1] - 119) < 25) & (np.abs(im[..., 2] - 180) < 25)
    assert blue.sum() > 20, "RSU 0 (blue) not drawn"
    assert p.stat().st_size > 40 * 1024


def test_map_without_net_uses_rsus_only(tmp_path):
    run = make_run(tmp_path / "run", None)
    (run / "config.yaml").write_text("name: synthetic\n")
    pngs = {p.stem: p for p in make_figures(run)}
    assert "map" in pngs  # RSUs and handovers still drawn
    assert_real_png(pngs["map"], min_kb=5)


def test_missing_files_and_columns_skip_figures(tmp_path):
    run = make_run(tmp_path / "run", None)
    for f in ("vehicles.csv", "handovers.csv", "strategy.csv", "rsus.csv", "summary.json", "config.yaml"):
        (run / f).unlink()
    rows = read_csv(run / "metrics.csv")
    keep = ["round", "task", "accuracy", "energy_j", "lost_updates"]
    _write(run / "metrics.csv", keep, [{k: r[k] for k in keep} for r in rows])
    names = {p.stem for p in make_figures(run)}
    assert names == {"accuracy_loss", "energy", "losses_handovers"}
    out = write_report(run)
    assert out.is_file()
    assert "data:image/png;base64," in out.read_text()


def test_empty_run_folder(tmp_path):
    assert make_figures(tmp_path) == []
    text = write_report(tmp_path).read_text()
    assert "No metrics.csv rows yet" in text


def test_write_report_self_contained(tmp_path):
    net = _sumo_net()
    run = make_run(tmp_path / "run", net)
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(imgs) == 7
    assert base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src=\"figures/" not in text and "<link" not in text  # nothing outside the file
    assert "name: synthetic" in text and "ucb_dual" in text  # the resolved config is shown
    rows = read_csv(run / "metrics.csv")
    for task in TASKS:
        mine = [r for r in rows if r["task"] == task]
        final = float(mine[-1]["accuracy"])
        lat = np.mean([float(r["round_latency_s"]) for r in mine])
        energy = sum(float(r["energy_j"]) for r in mine)
        lost = sum(int(r["lost_updates"]) for r in mine)
        handovers = sum(int(r["handovers"]) for r in mine)
        migrated, early = sum(int(r["migrated"]) for r in mine), sum(int(r["early"]) for r in mine)
        row = re.search(rf"<tr><td class=\"l\">{task}</td>(.*?)</tr>", text).group(1)
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        # rounds, final, its s.e., best, mean latency, energy, budget, lost, migrated, early, participants, handovers
        assert cells[0] == str(ROUNDS)
        assert float(cells[1]) == pytest.approx(final, abs=1e-4)
        assert float(cells[2]) == pytest.approx(float(mine[-1]["accuracy_se"]), abs=1e-4)
        assert float(cells[4]) == pytest.approx(lat, rel=1e-3)
        assert float(cells[5]) == pytest.approx(energy, rel=1e-3)
        assert float(cells[6]) == pytest.approx(70.0 * ROUNDS)
        assert int(cells[7]) == lost
        assert (int(cells[8]), int(cells[9])) == (migrated, early) and early > 0
        assert int(cells[11]) == handovers


def test_unreadable_net_skips_only_the_map_lanes(tmp_path):
    run = make_run(tmp_path / "run", None)
    bad = tmp_path / "broken.net.xml"
    bad.write_text("<net><edge id='e' from='a'")  # truncated XML
    with pytest.warns(RuntimeWarning, match="figure map skipped"):
        names = {p.stem for p in make_figures(run, net_file=bad)}
    assert "map" not in names and "accuracy_loss" in names
