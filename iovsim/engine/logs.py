"""The run folder's CSV logs: per round (metrics), per participant (vehicles), handovers, dwell, strategy."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.strategies.base import DELIVERED

ROUND_METRICS = ["round", "time_s", "task", "accuracy", "accuracy_se", "test_samples", "loss", "participants", "completed", "lost_updates",
                 "lost_handover", "lost_left", "lost_deadline", "round_latency_s", "compute_time_s",
                 "upload_time_s", "wait_time_s", "energy_j", "energy_budget_j", "mean_rank", "handovers", "migrated",
                 "early", "uplink_bits", "downlink_bits", "edge_compute_s", "edge_energy_j"]
VEHICLE_COLUMNS = ["round", "time_s", "vehicle", "task", "rsu", "tier", "rank", "local_steps", "tx_power_w",
                   "bandwidth_hz", "download_time_s", "compute_time_s", "upload_time_s", "latency_s", "energy_j",
                   "status", "loss_before", "loss_after", "num_samples", "dwell_pred_s", "planned_steps",
                   "transfer_mode", "final_rsu", "acc_after", "steps_done", "bits_up", "bits_down", "edge_compute_s",
                   "edge_wait_s", "edge_energy_j", "update_bits"]
HANDOVER_COLUMNS = ["time_s", "round", "vehicle", "from_rsu", "to_rsu", "rsrp_from_dbm", "rsrp_to_dbm", "x_m", "y_m",
                    "kind", "ping_pong"]
DWELL_COLUMNS = ["round", "vehicle", "rsu", "start_s", "predicted_s", "actual_s", "end"]
STRATEGY_COLUMNS = ["round", "name", "value"]


class CsvLog:
    """An append-only CSV with a fixed header; on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = path
        self.columns = columns
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    def write(self, rows: list[dict]):
        if not rows:
            return
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            for r in rows:
                w.writerow({k: _fmt(v) for k, v in r.items()})

    def truncate(self, keep):
        """Keep only rows for which keep(row) is true (used on resume)."""
        rows = self.read()
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                if keep(r):
                    w.writerow(r)

    def read(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass
class RunLogs:
    metrics: CsvLog
    vehicles: CsvLog
    handovers: CsvLog
    dwell: CsvLog
    strategy: CsvLog

    @classmethod
    def open(cls, run_dir: Path) -> "RunLogs":
        return cls(CsvLog(run_dir / "metrics.csv", ROUND_METRICS), CsvLog(run_dir / "vehicles.csv", VEHICLE_COLUMNS),
                   CsvLog(run_dir / "handovers.csv", HANDOVER_COLUMNS), CsvLog(run_dir / "dwell.csv", DWELL_COLUMNS),
                   CsvLog(run_dir / "strategy.csv", STRATEGY_COLUMNS))

    def truncate_after(self, round_index: int, time_s: float):
        """Drop what was logged after a checkpoint (round `round_index`, SUMO time `time_s`)."""
        r = round_index
        self.metrics.truncate(lambda row: int(row["round"]) <= r)
        self.vehicles.truncate(lambda row: int(row["round"]) <= r)
        self.strategy.truncate(lambda row: int(row["round"]) <= r)
        self.handovers.truncate(lambda row: float(row["time_s"]) <= time_s + 1e-9)
        self.dwell.truncate(lambda row: int(row["round"]) <= r
                            and float(row["start_s"]) + float(row["actual_s"]) <= time_s + 1e-9)


def vehicle_rows(r: int, t0_s: float, parts, outcomes, fleet, cfg, results: dict) -> list[dict]:
    """One vehicles.csv row per participant."""
    rows = []
    for p, o in zip(parts, outcomes):
        info = fleet[p.vehicle_id]
        res = results.get(p.vehicle_id)
        rows.append({"round": r, "time_s": t0_s, "vehicle": p.vehicle_id, "task": cfg.fl.tasks[info.task].name,
                     "rsu": p.rsu, "tier": cfg.devices[info.tier].name, "rank": p.rank, "local_steps": p.steps,
                     "tx_power_w": p.tx_power_w, "bandwidth_hz": p.bandwidth_hz,
                     "download_time_s": o.download_time_s, "compute_time_s": o.compute_time_s,
                     "upload_time_s": o.upload_time_s,
                     "latency_s": (o.done_at_s - t0_s) if not math.isnan(o.done_at_s) else "", "energy_j": o.energy_j,
                     "status": o.status, "loss_before": res.loss_before if res else "",
                     "loss_after": res.loss_after if res else "", "num_samples": len(info.shard),
                     "dwell_pred_s": p.dwell_pred_s, "planned_steps": p.planned_steps,
                     "transfer_mode": p.transfer_mode, "final_rsu": o.rsu, "acc_after": res.acc_after if res else "",
                     "steps_done": o.steps_done if p.job.split is not None else "", "bits_up": o.bits_up,
                     "bits_down": o.bits_down, "edge_compute_s": o.edge_compute_s, "edge_wait_s": o.edge_wait_s,
                     "edge_energy_j": o.edge_energy_j, "update_bits": p.update_bits})
    return rows


def accuracy_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n test examples (binomial: sqrt(p (1 - p) / n))."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n > 0 else float("nan")


def task_rows(r: int, t0_s: float, parts, outcomes, task_of: np.ndarray, fb, evals, tasks_cfg, handovers: int) -> list[dict]:
    """One metrics.csv row per task."""
    rows = []
    lat = fb.round_latency_s
    for ti, tc in enumerate(tasks_cfg):
        mine = [(p, o) for p, o, t in zip(parts, outcomes, task_of) if t == ti]
        st = [o.status for _, o in mine]

        def mean(name):
            return np.mean([getattr(o, name) for _, o in mine]) if mine else 0.0

        def total(name):
            return float(sum(getattr(o, name) for _, o in mine))

        comp, upl, down = mean("compute_time_s"), mean("upload_time_s"), mean("download_time_s")
        ev = evals[ti]
        scored = ev.num_examples > 0  # fl.eval_every: rounds that were not evaluated leave the cells empty
        rows.append({"round": r, "time_s": t0_s, "task": tc.name, "accuracy": ev.accuracy if scored else "",
                     "accuracy_se": accuracy_se(ev.accuracy, ev.num_examples) if scored else "",
                     "test_samples": ev.num_examples, "loss": ev.loss if scored else "",
                     "participants": len(mine), "completed": sum(1 for x in st if x in DELIVERED),
                     "lost_updates": sum(1 for x in st if x not in DELIVERED), "lost_handover": st.count("lost_handover"),
                     "lost_left": st.count("lost_left"), "lost_deadline": st.count("lost_deadline"),
                     "round_latency_s": lat, "compute_time_s": comp, "upload_time_s": upl,
                     "wait_time_s": max(0.0, lat - comp - upl - down),
                     "energy_j": float(fb.task_energy_j[ti]), "energy_budget_j": tc.energy_budget_j,
                     "mean_rank": float(np.mean([p.rank for p, _ in mine])) if mine else "", "handovers": handovers,
                     "migrated": st.count("migrated"), "early": st.count("early"), "uplink_bits": total("bits_up"),
                     "downlink_bits": total("bits_down"), "edge_compute_s": total("edge_compute_s"),
                     "edge_energy_j": total("edge_energy_j")})
    return rows


def strategy_rows(r: int, logged: dict) -> list[dict]:
    """The strategy's numbers of round r (non-numbers are not logged)."""
    return [{"round": r, "name": k, "value": v} for k, v in logged.items()
            if isinstance(v, (int, float, np.integer, np.floating))]


def table_row(r: int, t0_s: float, rows: list[dict], participants: int) -> dict:
    """The progress table's line for a round."""
    out = {"round": r, "sumo_time_s": t0_s}
    for x in rows:
        out[f"acc_{x['task']}"] = x["accuracy"]
        out[f"se_{x['task']}"] = x["accuracy_se"]
    out["participants"] = participants
    out["lost_updates"] = sum(x["lost_updates"] for x in rows)
    out["round_latency_s"] = rows[0]["round_latency_s"] if rows else 0.0
    out["energy_j"] = sum(x["energy_j"] for x in rows)
    return out
