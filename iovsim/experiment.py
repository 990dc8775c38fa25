"""Builds an experiment from its config, runs the synchronized rounds, writes the run folder.

The only module (with cli.py) that wires mobility, channel, fl and strategies together.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iovsim.config import ExperimentConfig, load_config, save_config, to_dict

ROUND_METRICS = ["round", "time_s", "task", "accuracy", "loss", "participants", "completed", "lost_updates",
                 "lost_handover", "lost_left", "lost_deadline", "round_latency_s", "compute_time_s",
                 "upload_time_s", "wait_time_s", "energy_j", "energy_budget_j", "mean_rank", "handovers"]
VEHICLE_COLUMNS = ["round", "time_s", "vehicle", "task", "rsu", "tier", "rank", "local_steps", "tx_power_w",
                   "bandwidth_hz", "download_time_s", "compute_time_s", "upload_time_s", "latency_s", "energy_j",
                   "status", "loss_before", "loss_after", "num_samples", "dwell_pred_s"]
HANDOVER_COLUMNS = ["time_s", "round", "vehicle", "from_rsu", "to_rsu", "rsrp_from_dbm", "rsrp_to_dbm", "x_m", "y_m",
                    "kind", "ping_pong"]
DWELL_COLUMNS = ["round", "vehicle", "rsu", "start_s", "predicted_s", "actual_s", "end"]


class RunError(RuntimeError):
    """A problem running an experiment, phrased for the user."""


# ----------------------------------------------------------------------------- run folder

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
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
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


# ----------------------------------------------------------------------------- fleet

@dataclass
class VehicleInfo:
    index: int            # enrolment order
    task: int
    tier: int
    shard: np.ndarray


@dataclass
class Participant:
    k: int
    vid: str
    vi: int                # row in the round state
    rsu: int
    rank: int
    steps: int
    tx_power_w: float
    bandwidth_hz: float
    down_bits: float
    compute_s: float
    up_bits: float
    dwell_pred_s: float
    phase: str = "download"
    t_download: float = 0.0
    t_compute: float = 0.0
    t_upload: float = 0.0
    done_at: float = float("nan")
    status: str = ""
    options: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- experiment

class Experiment:
    """One run: `Experiment(cfg, run_dir).run()`; `Experiment.resume(run_dir).run()` continues one."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, *, progress=None, gui: bool = False,
                 screenshots_dir: Path | None = None, screenshot_handovers: bool = False):
        from iovsim.viz.progress import Progress

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress or Progress(quiet=True)
        self.gui = gui
        self.screenshots_dir = Path(screenshots_dir) if screenshots_dir else None
        self.screenshot_handovers = screenshot_handovers
        self.start_round = 1
        self.resume_state: dict | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def resume(cls, run_dir: Path, **kw) -> "Experiment":
        run_dir = Path(run_dir)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.exists():
            raise RunError(f"{run_dir}: not a run folder (config.yaml missing)")
        ckpts = sorted((run_dir / "checkpoints").glob("round_*/state.json"))
        if not ckpts:
            raise RunError(f"{run_dir}: no checkpoint to resume from (checkpoints/round_*/state.json)")
        exp = cls(load_config(cfg_path), run_dir, **kw)
        # Relative paths in the saved config resolve against the original config's folder.
        summary = run_dir / "summary.json"
        if summary.exists():
            exp.cfg.source_path = json.loads(summary.read_text()).get("config_source") or exp.cfg.source_path
        exp.resume_state = json.loads(ckpts[-1].read_text())
        exp.resume_state["dir"] = str(ckpts[-1].parent)
        exp.start_round = int(exp.resume_state["round"]) + 1
        return exp

    def _build(self):
        import sumolib
        import torch

        from iovsim.channel import Channel, allocate_bandwidth  # noqa: F401 - checked here, used below
        from iovsim.fl.data import dirichlet_shards, load_task
        from iovsim.fl.model import AdapterModel
        from iovsim.fl.executors import make_executor
        from iovsim.fl.train import TokenizedTask
        from iovsim.mobility.prediction import RouteAhead
        from iovsim.mobility.scenario import build_scenario
        from iovsim.mobility.sumo import SumoSession
        from iovsim.strategies import create as create_strategy

        cfg = self.cfg
        fl = cfg.fl
        self.scenario = build_scenario(cfg.mobility, cfg.base_dir)
        self.net = sumolib.net.readNet(str(self.scenario.net_file), withInternal=False)
        self.route_ahead = RouteAhead(self.net)

        extra = list(cfg.mobility.sumo_args)
        if hasattr(self.scenario, "output_args"):
            extra = self.scenario.output_args(self.run_dir / "sumo") + extra
        session_cls = SumoSession
        if self.scenario.replay.get("file") and self.scenario.replay.get("mode", "exact") == "exact":
            from iovsim.mobility.replay import ReplaySession as session_cls  # vehicles follow GPS tracks
        self.session = session_cls(
            self.scenario, seed=cfg.seed, step_length_s=cfg.mobility.step_length_s, begin_s=cfg.mobility.begin_s,
            end_s=cfg.mobility.end_s, backend=cfg.mobility.backend, gui=self.gui, out_dir=self.run_dir / "sumo",
            extra_args=extra + self._gui_args(), max_vehicles=cfg.mobility.fl_vehicles, enrol=cfg.mobility.enrol,
            probability=cfg.mobility.enrol_probability, scale=cfg.mobility.scale)

        self._drop_absent_optional_tasks()
        with self.progress.task("Loading model and data", total=len(fl.tasks) + 1) as t:
            self.model = AdapterModel(fl.model, fl.target_modules, fl.lora_alpha, device=fl.device, threads=fl.threads)
            t.advance(1)
            self.tasks = []
            self.tokenized = []
            for tc in fl.tasks:
                data = load_task(tc, cfg.seed, cfg.base_dir)
                self.tasks.append(data)
                self.tokenized.append(TokenizedTask(self.model, data, tc.max_length))
                t.advance(1)
        self.executor = make_executor(fl, self.model, self.tokenized)
        self.shards = []
        for ti, (tc, data) in enumerate(zip(fl.tasks, self.tasks)):
            n_shards = max(1, len(data.train_labels) // fl.samples_per_vehicle)
            rng = np.random.default_rng([cfg.seed, 2, ti])
            self.shards.append(dirichlet_shards(data.train_labels, n_shards, tc.dirichlet_alpha, rng,
                                                fl.min_samples_per_vehicle))
        self.max_classes = max(d.num_classes for d in self.tasks)
        try:
            self.strategy = create_strategy(cfg.strategy.name, cfg.strategy.params, base_dir=cfg.base_dir)
        except ValueError as e:
            from iovsim.config import ConfigError

            raise ConfigError(cfg.source_path or None, "strategy", str(e)) from None
        self.strategy.setup(len(fl.tasks), cfg.seed)
        self.global_rank = max([fl.lora_rank, *fl.lora_ranks])
        self.globals = []
        for ti, data in enumerate(self.tasks):
            gen = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, 3, ti]).integers(2**31)))
            self.globals.append(self.model.init_state(self.global_rank, data.num_classes, gen))
        self.shapes = [self.model.shape(tc.max_length, fl.batch_size, d.num_classes)
                       for tc, d in zip(fl.tasks, self.tasks)]
        self.fleet: dict[str, VehicleInfo] = {}
        tiers = cfg.devices
        self._tier_p = np.asarray([t.share for t in tiers]) / sum(t.share for t in tiers)
        self._task_counts = [0] * len(fl.tasks)

    def _drop_absent_optional_tasks(self):
        from iovsim.fl.data import DataError, load_task

        keep = []
        for tc in self.cfg.fl.tasks:
            if tc.optional:
                try:
                    load_task(tc, self.cfg.seed, self.cfg.base_dir)
                except (DataError, ImportError) as e:
                    self.progress.message(f"optional task {tc.name} skipped: {e}")
                    continue
            keep.append(tc)
        if not keep:
            raise RunError("no task left to train (every optional task's data is absent)")
        self.cfg.fl.tasks = keep

    def _gui_args(self) -> list[str]:
        if not self.gui:
            return []
        from iovsim.viz.gui import write_gui_settings

        settings = self.run_dir / "gui-settings.xml"
        write_gui_settings(settings)
        return ["--gui-settings-file", str(settings), "--start", "true", "--quit-on-end", "true",
                "--window-size", "1280,900"]

    def _enrol(self, vid: str):
        """Give a newly enrolled vehicle its task, device tier and data shard (by enrolment order)."""
        k = len(self.fleet)
        rng = np.random.default_rng([self.cfg.seed, 7, k])
        task = k % len(self.tasks)
        tier = int(rng.choice(len(self._tier_p), p=self._tier_p))
        shards = self.shards[task]
        shard = shards[self._task_counts[task] % len(shards)]
        self._task_counts[task] += 1
        self.fleet[vid] = VehicleInfo(k, task, tier, shard)

    # ------------------------------------------------------------------ per SUMO step
    def _on_step(self, snap):
        for vid in snap.departed:
            self._enrol(vid)
        self.link = self.channel.step(snap.time_s, snap.vehicle_ids, snap.xy_m, snap.speed_mps)
        self.snap = snap
        for ev in self.link.handovers:
            self.round_handovers += 1
            self._close_dwell(ev.vehicle_id, ev.time_s, "handover")
            if not self.replaying:
                self.handover_rows.append({"time_s": ev.time_s, "round": self.current_round, "vehicle": ev.vehicle_id,
                                           "from_rsu": ev.from_rsu, "to_rsu": ev.to_rsu,
                                           "rsrp_from_dbm": ev.rsrp_from_dbm, "rsrp_to_dbm": ev.rsrp_to_dbm,
                                           "x_m": ev.x_m, "y_m": ev.y_m, "kind": getattr(ev, "kind", "a3"),
                                           "ping_pong": int(bool(getattr(ev, "ping_pong", False)))})
                if self.overlay is not None:
                    self.overlay.highlight_handover(ev.vehicle_id, ev.x_m, ev.y_m, ev.time_s)
                    if self.screenshots_dir and self.screenshot_handovers:
                        self.overlay.screenshot(str(self.screenshots_dir / f"handover_{ev.time_s:08.1f}_{ev.vehicle_id}.png"))
        for vid in snap.arrived:
            self._close_dwell(vid, snap.time_s, "left")
        if self.overlay is not None and not self.replaying:
            phases = [self.phase.get(v, "idle") for v in snap.vehicle_ids]
            self.overlay.color_vehicles(snap.vehicle_ids, self.link.serving, phases, xy_m=snap.xy_m)

    def _close_dwell(self, vid, t, how):
        pend = self.dwell_open.pop(vid, None)
        if pend is not None and not self.replaying:
            self.dwell_rows.append({**pend, "actual_s": t - pend["start_s"], "end": how})

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        from iovsim.channel import Channel
        from iovsim.mobility import rsu as rsu_mod

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resuming = self.resume_state is not None
        if not resuming:
            save_config(cfg, self.run_dir / "config.yaml")
        wall0 = time.time()
        self._build()
        self.metrics = CsvLog(self.run_dir / "metrics.csv", ROUND_METRICS)
        self.vehicles_log = CsvLog(self.run_dir / "vehicles.csv", VEHICLE_COLUMNS)
        self.handovers_log = CsvLog(self.run_dir / "handovers.csv", HANDOVER_COLUMNS)
        self.dwell_log = CsvLog(self.run_dir / "dwell.csv", DWELL_COLUMNS)
        self.strategy_log = CsvLog(self.run_dir / "strategy.csv", ["round", "name", "value"])
        self.handover_rows, self.dwell_rows = [], []
        self.dwell_open: dict[str, dict] = {}
        self.phase: dict[str, str] = {}
        self.current_round = 0
        self.round_handovers = 0
        self.overlay = None
        self.replaying = False

        s = self.session
        s.start()
        try:
            mob = cfg.mobility
            warm_end = mob.begin_s + mob.warmup_s
            warm_xy = []
            with self.progress.task("SUMO warm-up", total=max(1, int(mob.warmup_s / mob.step_length_s))) as t:
                while s.time_s + 1e-9 < warm_end and not s.finished():
                    s.step()
                    t.advance(1)
                    if int(round(s.time_s / mob.step_length_s)) % 10 == 0:
                        warm_xy.extend(s.api.vehicle.getPosition(v) for v in s.api.vehicle.getIDList())
            self.sites = self._place_rsus(np.asarray(warm_xy, dtype=float).reshape(-1, 2))
            rsu_xy = np.asarray([[r.x_m, r.y_m] for r in self.sites])
            self.channel = Channel(cfg.channel, cfg.rsu, rsu_xy, cfg.seed)
            radius = cfg.rsu.coverage_radius_m or self._link_budget_radius()
            self.coverage_radius_m = radius
            rsu_mod.write_rsu_additional(self.run_dir / "rsus.add.xml", self.sites, radius)
            rsu_mod.write_rsu_csv(self.run_dir / "rsus.csv", self.sites, radius)
            if self.gui:
                from iovsim.viz.gui import GuiOverlay

                b = self.net.getBoundary()
                self.overlay = GuiOverlay(s.api, rsu_xy, radius, b)
                self.overlay.draw_rsus()
                if self.screenshots_dir:
                    self.screenshots_dir.mkdir(parents=True, exist_ok=True)
            s.open_enrolment()
            # First step with enrolment open, so round 1 sees vehicles.
            self._on_step(s.step())
            if resuming:
                self._restore()
            self._write_summary(wall0, final=False)
            fl = cfg.fl
            with self.progress.task("Rounds", total=fl.rounds, completed=self.start_round - 1) as rounds_bar:
                for r in range(self.start_round, fl.rounds + 1):
                    if s.finished():
                        self.progress.message(f"SUMO reached end_s={mob.end_s:g} s before round {r}; stopping")
                        break
                    self._round(r)
                    rounds_bar.advance(1)
                    if fl.round_interval_s > 0 and r < fl.rounds:
                        s.run_until(s.time_s + fl.round_interval_s, self._on_step)
                    # After the idle gap, so that a resumed run starts its next round at the same time.
                    if r % cfg.output.checkpoint_every == 0 or r == fl.rounds:
                        self._checkpoint(r)
        finally:
            if self.overlay is not None:
                try:
                    self.overlay.flush()  # sumo-gui writes a pending screenshot only at the next step
                except Exception:  # noqa: BLE001 - the user may have closed the window
                    pass
            self.session.close()
        summary = self._write_summary(wall0, final=True)
        return summary

    def _link_budget_radius(self) -> float:
        """Distance at which the mean RSRP (no shadowing) falls to the association threshold."""
        probe = getattr(self.channel, "coverage_radius_m", None)
        return float(probe()) if callable(probe) else 250.0

    def _place_rsus(self, warm_xy: np.ndarray):
        from iovsim.mobility import rsu as rsu_mod

        cfg = self.cfg
        if self.scenario.rsu_file and cfg.rsu.placement == "regular" and not cfg.rsu.file:
            cfg.rsu.placement, cfg.rsu.file = "file", str(self.scenario.rsu_file)
        try:
            from iovsim.mobility.placement import place_rsus
        except ImportError:
            place_rsus = None
        if place_rsus is not None:
            sites = place_rsus(cfg.rsu.placement, self.net, cfg.rsu, warmup_xy=warm_xy, seed=cfg.seed,
                               base_dir=cfg.base_dir)
        else:
            sites = rsu_mod.place_regular(self.net, cfg.rsu.count, cfg.rsu.spacing_m)
        return rsu_mod.add_lonlat(self.net, sites)

    # ------------------------------------------------------------------ one round
    def _round_state(self, r: int):
        from iovsim.channel import CostModel
        from iovsim.strategies.base import RoundState

        cfg, fl = self.cfg, self.cfg.fl
        link, snap = self.link, self.snap
        ids = list(link.vehicle_ids)
        n = len(ids)
        info = [self.fleet[v] for v in ids]
        tiers = cfg.devices
        tier = np.asarray([i.tier for i in info], dtype=int)
        flops = np.asarray([tiers[t].flops_per_s for t in tier], dtype=float)
        power = np.asarray([tiers[t].power_w for t in tier], dtype=float)
        mem = np.asarray([tiers[t].memory_bytes for t in tier], dtype=float)
        task = np.asarray([i.task for i in info], dtype=int)
        default_p = 10 ** ((cfg.channel.vehicle_tx_power_dbm - 30) / 10)
        max_p = 10 ** ((cfg.channel.vehicle_max_tx_power_dbm - 30) / 10)
        idx = np.arange(n)
        serving = np.asarray(link.serving, dtype=int)
        load = np.bincount(serving[serving >= 0], minlength=self.channel.num_rsus) if n else np.zeros(self.channel.num_rsus, int)
        share_bw = np.where(serving >= 0, self.channel.rsu_bandwidth_hz[np.maximum(serving, 0)] / np.maximum(load[np.maximum(serving, 0)], 1), 0.0)
        up = self.channel.uplink_rate_bps(link, idx, np.full(n, default_p), share_bw) if n else np.zeros(0)
        down = self.channel.downlink_rate_bps(link, idx, share_bw) if n else np.zeros(0)
        dwell = self._predict_dwell(ids, snap) if n else np.zeros(0)
        shape = self.shapes[0]
        costs = CostModel(shape, flops, power, self.channel, link, default_p, **self._tier_extras(tier))
        budgets = np.asarray([tc.energy_budget_j if tc.energy_budget_j > 0 else np.inf for tc in fl.tasks])
        return RoundState(
            round_index=r, time_s=snap.time_s, vehicle_ids=ids, task=task, task_names=[t.name for t in fl.tasks],
            rsu=serving, num_rsus=self.channel.num_rsus, x_m=np.asarray(link.xy_m)[:, 0] if n else np.zeros(0),
            y_m=np.asarray(link.xy_m)[:, 1] if n else np.zeros(0), speed_mps=np.asarray(snap.speed_mps, dtype=float),
            sinr_db=np.asarray(link.uplink_sinr_db, dtype=float), uplink_rate_bps=up, downlink_rate_bps=down,
            dwell_time_s=dwell, tier=tier, device_flops_per_s=flops, device_power_w=power, device_memory_bytes=mem,
            num_samples=np.asarray([len(i.shard) for i in info], dtype=int), rsu_bandwidth_hz=self.channel.rsu_bandwidth_hz,
            rsu_load=load, energy_budget_j=budgets, max_participants=fl.participants_per_round,
            local_steps=fl.local_steps, default_rank=fl.lora_rank, ranks=list(fl.lora_ranks),
            default_tx_power_w=default_p, max_tx_power_w=max_p, round_deadline_s=fl.round_deadline_s, costs=costs,
            extra={"lora_alpha": fl.lora_alpha})

    def _tier_extras(self, tier: np.ndarray) -> dict:
        """Optional per-vehicle device parameters the cost model understands (e.g. CPU frequency, kappa)."""
        import inspect

        from iovsim.channel import CostModel

        accepted = set(inspect.signature(CostModel.__init__).parameters)
        out = {}
        for name in ("cpu_frequency_hz", "kappa", "cycles_per_flop"):
            if name in accepted and all(hasattr(t, name) for t in self.cfg.devices):
                out[name] = np.asarray([getattr(self.cfg.devices[t], name) for t in tier], dtype=float)
        return out

    def _predict_dwell(self, ids, snap) -> np.ndarray:
        horizon = self.cfg.fl.round_deadline_s * 2
        dt = max(self.cfg.mobility.step_length_s, 1.0)
        pos = {v: i for i, v in enumerate(snap.vehicle_ids)}
        fut_xy, fut_t = [], []
        for v in ids:
            i = pos[v]
            t, xy = self.route_ahead.positions(self.session.routes.get(v, ()), int(snap.route_index[i]), snap.edge[i],
                                               float(snap.lane_pos_m[i]), snap.xy_m[i], float(snap.speed_mps[i]), horizon, dt)
            fut_t.append(t)
            fut_xy.append(xy)
        return np.asarray(self.channel.predict_dwell_s(self.link, np.arange(len(ids)), fut_xy, fut_t), dtype=float)

    def _round(self, r: int):
        from iovsim.channel import allocate_bandwidth
        from iovsim.fl.train import TrainJob
        from iovsim.strategies.base import RoundFeedback, Update

        cfg, fl, s = self.cfg, self.cfg.fl, self.session
        self.current_round = r
        self.round_handovers = 0
        state = self._round_state(r)
        plan = self.strategy.configure(state)
        t0 = s.time_s
        K = len(plan.participants)
        steps = plan.local_steps if plan.local_steps is not None else np.full(K, fl.local_steps)
        power = plan.tx_power_w if plan.tx_power_w is not None else np.full(K, state.default_tx_power_w)
        power = np.minimum(np.asarray(power, dtype=float), state.max_tx_power_w)
        vi = np.asarray(plan.participants, dtype=int)
        if K and np.any(state.rsu[vi] < 0):
            raise RunError(f"strategy {self.strategy.name} asked an unconnected vehicle to train")
        options = plan.train_options or [{} for _ in range(K)]
        split = [bool(o.get("split")) for o in options]
        costs = state.costs
        up_bits = np.asarray([self._upload_bits(costs, int(plan.rank[k]), int(steps[k]), split[k]) for k in range(K)])
        # Split training exchanges activations (up) and their gradients (down) every step; they are
        # costed as one download and one upload phase of the same total size around the compute.
        down_bits = np.asarray([float(costs.split_download_bits(int(plan.rank[k]), int(steps[k]))) if split[k]
                                else float(costs.adapter_bits(int(plan.rank[k]))) for k in range(K)])
        compute_s = costs.compute_time_s(vi, plan.rank, steps) if K else np.zeros(0)
        if hasattr(costs, "device_compute_time_s") and any(split):
            dev_s = costs.device_compute_time_s(vi, plan.rank, steps)
            compute_s = np.where(split, dev_s, compute_s)
        rsu_of = state.rsu[vi]
        if plan.bandwidth_share is not None:
            bw = np.asarray(plan.bandwidth_share, dtype=float) * state.rsu_bandwidth_hz[rsu_of]
            for m in np.unique(rsu_of):
                if bw[rsu_of == m].sum() > state.rsu_bandwidth_hz[m] * (1 + 1e-9):
                    raise RunError(f"strategy {self.strategy.name} gave RSU {m} more than its bandwidth")
        else:
            se = np.log2(1 + 10 ** (state.sinr_db[vi] / 10)) if K else np.zeros(0)
            bw = allocate_bandwidth(cfg.channel.bandwidth_allocation, rsu_of, up_bits, se, state.rsu_bandwidth_hz) if K else np.zeros(0)
        parts = [Participant(k, state.vehicle_ids[vi[k]], int(vi[k]), int(rsu_of[k]), int(plan.rank[k]), int(steps[k]),
                             float(power[k]), float(bw[k]), float(down_bits[k]), float(compute_s[k]), float(up_bits[k]),
                             float(state.dwell_time_s[vi[k]]), options=dict(options[k])) for k in range(K)]
        for p in parts:
            self.phase[p.vid] = "download"
            self.dwell_open[p.vid] = {"round": r, "vehicle": p.vid, "rsu": p.rsu, "start_s": t0, "predicted_s": p.dwell_pred_s}
        self._simulate_round(parts, t0)
        latency = (max((p.done_at for p in parts if p.status == "ok"), default=t0) - t0) if parts else 0.0
        latency = max(latency, max((p.done_at - t0 for p in parts if not math.isnan(p.done_at)), default=0.0))

        # Real training of the participants whose update arrived.
        ok = [p for p in parts if p.status == "ok"]
        jobs = []
        for p in ok:
            info = self.fleet[p.vid]
            start = self.strategy.client_state(self.globals[info.task], p.rank)
            jobs.append(TrainJob(p.vid, info.task, start, p.rank, p.steps, fl.batch_size, fl.learning_rate,
                                 fl.head_learning_rate, info.shard, [cfg.seed, 4, r, info.index], p.options))
        with self.progress.task(f"Round {r}: local training", total=len(jobs)) as t:
            results = self.executor.train(jobs, on_done=lambda job: t.advance(1))
        by_vid = {res.vehicle_id: res for res in results}

        # Hierarchical aggregation: RSU per task, then cloud per task.
        for ti in range(len(self.tasks)):
            rsu_updates = []
            for m in sorted({p.rsu for p in ok if self.fleet[p.vid].task == ti}):
                ups = [Update(by_vid[p.vid].state, by_vid[p.vid].num_samples, by_vid[p.vid].rank, p.vid,
                              {"loss_before": by_vid[p.vid].loss_before, "loss_after": by_vid[p.vid].loss_after})
                       for p in ok if p.rsu == m and self.fleet[p.vid].task == ti]
                agg = self.strategy.aggregate(ups, self.globals[ti])
                agg.source = f"rsu{m}"
                rsu_updates.append(agg)
            if rsu_updates:
                self.globals[ti] = self.strategy.aggregate(rsu_updates, self.globals[ti]).state

        from iovsim.strategies.base import state_rank

        with self.progress.task(f"Round {r}: evaluation", total=len(self.tasks)) as t:
            evals = []
            for ti in range(len(self.tasks)):
                evals.append(self.executor.evaluate(ti, self.globals[ti], state_rank(self.globals[ti]), fl.eval_batch_size))
                t.advance(1)

        # Energy actually spent (lost updates spent energy too) and the logs.
        energy = np.asarray([self._energy(p, costs) for p in parts])
        task_of = np.asarray([self.fleet[p.vid].task for p in parts], dtype=int)
        status = [p.status for p in parts]
        fb = RoundFeedback(
            round_index=r, time_s=t0, vehicle_ids=[p.vid for p in parts], task=task_of,
            rank=np.asarray([p.rank for p in parts], dtype=int), status=status,
            compute_time_s=np.asarray([p.t_compute for p in parts]), upload_time_s=np.asarray([p.t_upload for p in parts]),
            latency_s=np.asarray([(p.done_at - t0) if not math.isnan(p.done_at) else np.nan for p in parts]),
            energy_j=energy,
            train_loss_before=np.asarray([by_vid[p.vid].loss_before if p.vid in by_vid else np.nan for p in parts]),
            train_loss_after=np.asarray([by_vid[p.vid].loss_after if p.vid in by_vid else np.nan for p in parts]),
            task_accuracy=np.asarray([e.accuracy for e in evals]), task_loss=np.asarray([e.loss for e in evals]),
            task_energy_j=np.asarray([energy[task_of == ti].sum() for ti in range(len(self.tasks))]),
            round_latency_s=latency, extra=dict(plan.extra))
        logged = self.strategy.observe(fb) or {}
        self._log_round(r, t0, parts, fb, evals, state, logged, by_vid)

    def _upload_bits(self, costs, rank: int, steps: int, split: bool) -> float:
        if split and hasattr(costs, "split_upload_bits"):
            return float(costs.split_upload_bits(rank, steps))
        return float(costs.adapter_bits(rank))

    def _energy(self, p: Participant, costs) -> float:
        """Energy a participant actually spent: the compute it did and the radio time it transmitted."""
        comp = 0.0
        if p.compute_s > 0 and p.t_compute > 0:
            full = float(costs.compute_energy_j(np.asarray([p.vi]), np.asarray([p.rank]), np.asarray([p.steps]))[0])
            comp = full * min(1.0, p.t_compute / p.compute_s)
        return comp + p.tx_power_w * p.t_upload

    def _simulate_round(self, parts: list[Participant], t0: float):
        """Step SUMO through the round; move each participant through download, compute, upload."""
        s, fl = self.session, self.cfg.fl
        deadline = t0 + fl.round_deadline_s
        active = [p for p in parts]
        while active:
            if s.finished():
                for p in active:
                    p.status = "lost_deadline"
                break
            t_prev = s.time_s
            snap = s.step()
            self._on_step(snap)
            if self.overlay is not None and self.screenshots_dir and t_prev == t0:
                # One picture per round, early in it, while the participants' phases show.
                self.overlay.screenshot(str(self.screenshots_dir / f"round_{self.current_round:04d}.png"))
            link = self.link
            row = link.index() if hasattr(link, "index") else {v: i for i, v in enumerate(link.vehicle_ids)}
            dt = snap.time_s - t_prev
            still = []
            live = [p for p in active if p.vid in row]
            rates_up, rates_down = {}, {}
            if live:
                idx = np.asarray([row[p.vid] for p in live])
                up = self.channel.uplink_rate_bps(link, idx, np.asarray([p.tx_power_w for p in live]),
                                                  np.asarray([p.bandwidth_hz for p in live]))
                down = self.channel.downlink_rate_bps(link, idx, np.asarray([p.bandwidth_hz for p in live]))
                for p, u, d in zip(live, up, down):
                    rates_up[p.vid], rates_down[p.vid] = float(u), float(d)
            for p in active:
                if p.vid not in row:
                    p.status, p.done_at = "lost_left", snap.time_s
                    self.phase.pop(p.vid, None)
                    continue
                if int(link.serving[row[p.vid]]) != p.rsu:
                    p.status, p.done_at = "lost_handover", snap.time_s
                    self.phase[p.vid] = "lost"
                    continue
                budget = dt
                if p.phase == "download":
                    rate = rates_down[p.vid]
                    need = p.down_bits / rate if rate > 0 else math.inf
                    use = min(budget, need)
                    p.t_download += use
                    p.down_bits -= use * rate if rate > 0 else 0.0
                    budget -= use
                    if p.down_bits <= 1e-6:
                        p.phase = "train"
                if p.phase == "train" and budget > 0:
                    use = min(budget, p.compute_s - p.t_compute)
                    p.t_compute += use
                    budget -= use
                    if p.t_compute >= p.compute_s - 1e-12:
                        p.phase = "upload"
                if p.phase == "upload" and budget > 0:
                    rate = rates_up[p.vid]
                    need = p.up_bits / rate if rate > 0 else math.inf
                    use = min(budget, need)
                    p.t_upload += use
                    p.up_bits -= use * rate if rate > 0 else 0.0
                    budget -= use
                    if p.up_bits <= 1e-6:
                        p.phase, p.status, p.done_at = "done", "ok", t_prev + (dt - budget)
                self.phase[p.vid] = p.phase
                if not p.status:
                    still.append(p)
            active = still
            if active and s.time_s + 1e-9 >= deadline:
                for p in active:
                    p.status, p.done_at = "lost_deadline", s.time_s
                    self.phase[p.vid] = "lost"
                active = []
        for p in parts:
            self.phase.pop(p.vid, None)
            # The dwell prediction is checked only while the vehicle keeps its cell; close it if still open.

    # ------------------------------------------------------------------ logging
    def _log_round(self, r, t0, parts, fb, evals, state, logged, by_vid):
        fl = self.cfg.fl
        vrows = []
        for p, e in zip(parts, fb.energy_j):
            info = self.fleet[p.vid]
            res = by_vid.get(p.vid)
            vrows.append({"round": r, "time_s": t0, "vehicle": p.vid, "task": fl.tasks[info.task].name, "rsu": p.rsu,
                          "tier": self.cfg.devices[info.tier].name, "rank": p.rank, "local_steps": p.steps,
                          "tx_power_w": p.tx_power_w, "bandwidth_hz": p.bandwidth_hz, "download_time_s": p.t_download,
                          "compute_time_s": p.t_compute, "upload_time_s": p.t_upload,
                          "latency_s": (p.done_at - t0) if not math.isnan(p.done_at) else "", "energy_j": e,
                          "status": p.status, "loss_before": res.loss_before if res else "",
                          "loss_after": res.loss_after if res else "", "num_samples": len(info.shard),
                          "dwell_pred_s": p.dwell_pred_s})
        self.vehicles_log.write(vrows)
        rows = []
        for ti, tc in enumerate(fl.tasks):
            mine = [p for p in parts if self.fleet[p.vid].task == ti]
            st = [p.status for p in mine]
            lat = fb.round_latency_s
            comp = np.mean([p.t_compute for p in mine]) if mine else 0.0
            upl = np.mean([p.t_upload for p in mine]) if mine else 0.0
            down = np.mean([p.t_download for p in mine]) if mine else 0.0
            rows.append({"round": r, "time_s": t0, "task": tc.name, "accuracy": evals[ti].accuracy, "loss": evals[ti].loss,
                         "participants": len(mine), "completed": st.count("ok"),
                         "lost_updates": sum(1 for x in st if x != "ok"), "lost_handover": st.count("lost_handover"),
                         "lost_left": st.count("lost_left"), "lost_deadline": st.count("lost_deadline"),
                         "round_latency_s": lat, "compute_time_s": comp, "upload_time_s": upl,
                         "wait_time_s": max(0.0, lat - comp - upl - down),
                         "energy_j": float(fb.task_energy_j[ti]), "energy_budget_j": tc.energy_budget_j,
                         "mean_rank": float(np.mean([p.rank for p in mine])) if mine else "",
                         "handovers": self.round_handovers})
        self.metrics.write(rows)
        self.handovers_log.write(self.handover_rows)
        self.handover_rows = []
        self.dwell_log.write(self.dwell_rows)
        self.dwell_rows = []
        self.strategy_log.write([{"round": r, "name": k, "value": v} for k, v in logged.items()
                                 if isinstance(v, (int, float, np.integer, np.floating))])
        self.progress.round_table([self._table_row(r, t0, rows, parts)])
        self.progress.event("round", round=r, time_s=t0, tasks={x["task"]: {"accuracy": x["accuracy"], "loss": x["loss"]} for x in rows},
                            participants=len(parts), lost_updates=sum(x["lost_updates"] for x in rows),
                            round_latency_s=fb.round_latency_s, energy_j=float(fb.energy_j.sum()) if len(parts) else 0.0)
        if self.overlay is not None:
            self.overlay.show_status(r, len(parts), {x["task"]: x["accuracy"] for x in rows})

    @staticmethod
    def _table_row(r, t0, rows, parts) -> dict:
        out = {"round": r, "sumo_time_s": t0}
        for x in rows:
            out[f"acc_{x['task']}"] = x["accuracy"]
        out["participants"] = len(parts)
        out["lost_updates"] = sum(x["lost_updates"] for x in rows)
        out["round_latency_s"] = rows[0]["round_latency_s"] if rows else 0.0
        out["energy_j"] = sum(x["energy_j"] for x in rows)
        return out

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, r: int):
        from safetensors.torch import save_file

        d = self.run_dir / "checkpoints" / f"round_{r:04d}"
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for tc, st in zip(self.cfg.fl.tasks, self.globals):
            save_file({k: v.contiguous() for k, v in st.items()}, str(tmp / f"{tc.name}.safetensors"))
        state = {"round": r, "time_s": self.session.time_s, "strategy": self.strategy.state_dict(),
                 "fleet": {v: {"index": i.index, "task": i.task, "tier": i.tier} for v, i in self.fleet.items()},
                 "dwell_open": self.dwell_open}
        (tmp / "state.json").write_text(json.dumps(state, default=_json_default))
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)  # a checkpoint appears whole or not at all

    def _restore(self):
        """Replay SUMO and the channel to the checkpoint time, then load adapters and strategy memory."""
        from safetensors.torch import load_file

        st = self.resume_state
        target = float(st["time_s"])
        self.replaying = True
        with self.progress.task("Replaying mobility to the checkpoint", total=max(1, int(target - self.session.time_s))) as t:
            while self.session.time_s + 1e-9 < target:
                before = self.session.time_s
                self._on_step(self.session.step())
                t.advance(self.session.time_s - before)
        self.replaying = False
        for v, i in st["fleet"].items():
            if v not in self.fleet or self.fleet[v].task != i["task"] or self.fleet[v].tier != i["tier"]:
                raise RunError(f"{self.run_dir}: the replayed traffic does not match the checkpoint (vehicle {v}); "
                               "was the scenario or SUMO version changed?")
        d = Path(st["dir"])
        self.globals = [load_file(str(d / f"{tc.name}.safetensors")) for tc in self.cfg.fl.tasks]
        self.strategy.load_state_dict(st["strategy"])
        self.dwell_open = st.get("dwell_open", {})
        r = int(st["round"])
        self.metrics.truncate(lambda row: int(row["round"]) <= r)
        self.vehicles_log.truncate(lambda row: int(row["round"]) <= r)
        self.strategy_log.truncate(lambda row: int(row["round"]) <= r)
        self.handovers_log.truncate(lambda row: float(row["time_s"]) <= target + 1e-9)
        self.dwell_log.truncate(lambda row: int(row["round"]) <= r and float(row["start_s"]) + float(row["actual_s"]) <= target + 1e-9)

    def _write_summary(self, wall0: float, final: bool) -> dict:
        import psutil

        rows = self.metrics.read() if hasattr(self, "metrics") else []
        last = {}
        for row in rows:
            last[row["task"]] = row
        summary = {
            "name": self.cfg.name, "seed": self.cfg.seed, "strategy": self.cfg.strategy.name,
            "config_source": self.cfg.source_path, "net_file": str(self.scenario.net_file),
            "finished": final, "rounds": max((int(r["round"]) for r in rows), default=0),
            "final_accuracy": {k: float(v["accuracy"]) for k, v in last.items()},
            "wall_time_s": time.time() - wall0,
            "peak_rss_bytes": psutil.Process().memory_info().rss,
            "fl_vehicles_enrolled": len(getattr(self, "fleet", {})),
            "num_rsus": len(getattr(self, "sites", [])),
        }
        if hasattr(self, "dwell_log"):
            from iovsim.channel import dwell_prediction_error

            d = self.dwell_log.read()
            summary["dwell_prediction"] = dwell_prediction_error([float(r["predicted_s"]) for r in d],
                                                                 [float(r["actual_s"]) for r in d],
                                                                 [r["end"] == "handover" for r in d])
        if hasattr(self, "handovers_log"):
            h = self.handovers_log.read()
            summary["handovers"] = len(h)
            summary["ping_pong_handovers"] = sum(int(r.get("ping_pong") or 0) for r in h)
        try:
            import resource

            summary["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except ImportError:
            pass
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        return summary


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-able: {type(o)}")


def default_config_path() -> Path:
    return Path(__file__).resolve().parent.parent / "sumo_scenarios" / "default.yaml"


def new_run_dir(cfg: ExperimentConfig) -> Path:
    base = Path(cfg.output.runs_dir)
    if not base.is_absolute():
        base = Path.cwd() / base
    name = cfg.output.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d = base / name
    if (d / "metrics.csv").exists():
        raise RunError(f"{d}: a run folder already exists there; choose another output.run_name or use --resume")
    return d


def config_dict(cfg: ExperimentConfig) -> dict:
    return to_dict(cfg)
