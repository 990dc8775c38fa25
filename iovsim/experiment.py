"""One experiment: the round loop. The parts are built and run by `iovsim.engine`.

Each round: observe -> plan -> transfer -> train -> aggregate -> evaluate -> log.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.config import ConfigError, ExperimentConfig, to_dict
from iovsim.engine import build, rundir
from iovsim.engine.aggregation import aggregate_round
from iovsim.engine.errors import RunError, user_code_error
from iovsim.engine.feedback import round_feedback
from iovsim.engine.fleet import Fleet
from iovsim.engine.gui import GuiHooks, gui_args
from iovsim.engine.learning import evaluate, skipped_evals, train, train_jobs
from iovsim.engine.logs import RunLogs, strategy_rows, table_row, task_rows, vehicle_rows
from iovsim.engine.observe import observe_round, predict_dwell
from iovsim.engine.plan import participants_of
from iovsim.engine.transfer import ACTIVE_PHASES, DELIVERED, Backhaul, EdgeServers, round_latency_s, run_transfer
from iovsim.engine.world import Journal, StepView, advance, link_view
from iovsim.trackers import Trackers, open_trackers

__all__ = ["Experiment", "RunError", "default_config_path", "new_run_dir"]


@dataclass
class World:
    """The running parts of one experiment (after the build)."""

    cfg: ExperimentConfig
    mobility: build.Mobility
    learning: build.Learning
    fleet: Fleet
    logs: RunLogs
    journal: Journal
    channel: object = None
    sites: list | None = None
    hooks: GuiHooks | None = None
    trackers: Trackers | None = None  # output.trackers, fed each round's metrics.csv rows
    round_index: int = 0       # the round a handover is logged with (the last one started)

    def step(self, phases: dict | None = None) -> StepView:
        """One SUMO step through the channel (and the GUI, when there is one)."""
        view = advance(self.mobility.session, self.channel, self.fleet, self.journal, self.round_index)
        if self.hooks is not None and self.journal.recording:
            self.hooks.on_step(view, phases or {})
        return view

    def step_until(self, time_s: float, view: StepView) -> StepView:
        s = self.mobility.session
        while s.time_s + 1e-9 < time_s and not s.finished():
            view = self.step()
        return view


class Experiment:
    """One run: `Experiment(cfg, run_dir).run()`; `Experiment.resume(run_dir).run()` continues one."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, *, progress=None, gui: bool = False,
                 screenshots_dir: Path | None = None, screenshot_handovers: bool = False, model=None,
                 gui_view: str = "auto"):
        """`model`: an `iovsim.fl.model.AdapterModel` of this config's `fl.model` to reuse instead of
        loading one (the frozen base is restored before every use, so runs do not share state)."""
        from iovsim.viz.progress import Progress

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress or Progress(quiet=True)
        self.gui = gui
        self.screenshots_dir = Path(screenshots_dir) if screenshots_dir else None
        self.screenshot_handovers = screenshot_handovers
        self.model = model
        self.gui_view = gui_view  # `iovsim gui --view` (iovsim.viz.gui_view)
        self.start_round = 1
        self.next_round = 1
        self.checkpoint: dict | None = None

    @classmethod
    def resume(cls, run_dir: Path, **kw) -> "Experiment":
        """Continue from the last checkpoint; a run stopped before its first one starts over (and says so)."""
        cfg, checkpoint = rundir.load_for_resume(Path(run_dir))
        exp = cls(cfg, run_dir, **kw)
        if checkpoint is None:
            exp.restart = True
            exp.progress.message(f"{run_dir}: no checkpoint yet (stopped before its first one); "
                                 "starting the run over from round 1")
            return exp
        exp.checkpoint = checkpoint
        exp.start_round = int(checkpoint["round"]) + 1
        return exp

    restart = False  # a resumed run without a checkpoint: its old outputs are cleared once the build succeeded

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        self.open()
        fl = self.cfg.fl
        try:
            with self._translated(), self.progress.task("Rounds", total=fl.rounds, completed=self.start_round - 1) as bar:
                while not self.done():
                    self.play_round(self.observe())
                    bar.advance(1)
            if self.truncated():
                self.progress.message(f"SUMO reached end_s={self.cfg.mobility.end_s:g} s before round "
                                      f"{self.next_round}; stopping")
        finally:
            self.close()
        return self.summary(final=True)

    def check(self) -> dict:
        """Build everything a run needs (strategy, SUMO through the warm-up, RSUs, channel, model, data)
        and stop before round 1; what a run would write goes to `run_dir` (a scratch folder)."""
        self.mobility, self.world = None, None
        try:
            strategy = build.create_strategy(self.cfg)
            self.mobility = build.build_mobility(self.cfg, self.run_dir, False, [], sumo_dir=self.sumo_dir())
            with self._translated(in_run_folder=False):  # the scratch folder is not the user's
                sites, _, radius = self._start_mobility(self.mobility)
                self.close()
                self.cfg.fl.tasks, loaded = build.available_tasks(self.cfg, self.progress.message)
                learning = build.build_learning(self.cfg, self.progress, strategy, self.model, loaded)
        finally:
            self.close()
        return {"rsus": len(sites), "coverage_radius_m": radius, "tasks": [t.name for t in self.cfg.fl.tasks],
                "train_samples": [len(d.train_labels) for d in learning.tasks], "strategy": learning.strategy.name}

    # The run, a round at a time (`run` above, and `iovsim.env.IovEnv`, which plans each round from an action).
    def open(self) -> None:
        """Build the parts, start SUMO (replaying to the checkpoint when resuming); round `next_round` is next."""
        self.wall0 = time.time()
        self.world = None
        strategy = build.create_strategy(self.cfg)  # user code first: a broken file fails before anything is written
        self.mobility = build.build_mobility(self.cfg, self.run_dir, self.gui,
                                             gui_args(self.run_dir, self.gui_view) if self.gui else [],
                                             sumo_dir=self.sumo_dir())
        with self._translated():
            # SUMO's inputs next: a bad net, route, additional or RSU file fails before the model loads.
            sites, channel, radius = self._start_mobility(self.mobility)
            self.world = self._build(self.mobility, sites, channel, strategy)
            self.view = self._start(self.world, radius)
            self.global_states = self.world.learning.global_states
            if self.checkpoint is not None:
                self.view, self.global_states = self._restore(self.world)
            self.next_round = self.start_round
            self.summary(final=False)

    def done(self) -> bool:
        """True when every round has run or SUMO has reached its end."""
        return self.next_round > self.cfg.fl.rounds or self.world.mobility.session.finished()

    def truncated(self) -> bool:
        """True when SUMO reached its end before the last round."""
        return self.next_round <= self.cfg.fl.rounds and self.world.mobility.session.finished()

    def observe(self):
        """The RoundState round `next_round` plans from (reading it changes nothing)."""
        return self._observe(self.world, self.next_round, self.view)

    def play_round(self, state) -> list[dict]:
        """Run round `next_round` from `state` (the strategy plans it), the idle gap after it and its
        checkpoint; its metrics.csv rows."""
        world, fl, s, r = self.world, self.cfg.fl, self.world.mobility.session, self.next_round
        self.view, self.global_states, rows = self._round(world, r, state, self.view, self.global_states)
        if fl.round_interval_s > 0 and r < fl.rounds:
            self.view = world.step_until(s.time_s + fl.round_interval_s, self.view)
        # After the idle gap, so that a resumed run starts its next round at the same time.
        if r % self.cfg.output.checkpoint_every == 0 or r == fl.rounds:
            rundir.save_checkpoint(self.run_dir, r, s.time_s, [tc.name for tc in fl.tasks], self.global_states,
                                   world.learning.strategy.state_dict(), world.fleet.to_json(),
                                   world.journal.dwell_open)
        self.next_round = r + 1
        return rows

    def close(self) -> None:
        """Stop SUMO (and the GUI, the trackers); safe to call twice."""
        world = getattr(self, "world", None)
        if world is not None and world.hooks is not None:
            world.hooks.close()
            world.hooks = None
        if world is not None and world.trackers is not None:
            world.trackers.close(self.done())  # FINISHED when every round ran (or SUMO reached its end)
            world.trackers = None
        mobility = getattr(self, "mobility", None)
        if mobility is not None:
            mobility.session.close()

    def summary(self, final: bool) -> dict:
        """Write summary.json (final: the run has ended) and return its content."""
        return self._summary(self.world, self.wall0, final)

    @contextmanager
    def _translated(self, in_run_folder: bool = True):
        """SUMO's failures and exceptions of a user's strategy become one-line errors, translated while
        SUMO is still there to ask (its exit status, its log); then SUMO is stopped."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - only SUMO's and user code's failures are translated
            mobility = getattr(self, "mobility", None)
            stopped = self._sumo_stopped(e, mobility.session, self.world) if mobility is not None else None
            where = stopped or user_code_error(e, self.run_dir if in_run_folder else None)
            self.close()
            if where is None:
                raise
            raise where from None
        except BaseException:
            self.close()
            raise

    def sumo_dir(self) -> Path:
        """Where SUMO's log and outputs go; a resumed run's go to sumo/resume/, so that a resume that
        fails leaves every file of the run as it was."""
        return self.run_dir / "sumo" / ("resume" if self.checkpoint is not None else "")

    def _sumo_stopped(self, e: Exception, session, world) -> Exception | None:
        """SUMO's failure as one line: an option of mobility.sumo_args, a bad input, or SUMO stopping
        mid-run (then with the last checkpoint and the command that continues from it)."""
        from iovsim.mobility.sumo import is_sumo_exception
        from iovsim.mobility.sumo_errors import SumoError

        if not isinstance(e, SumoError):
            if not is_sumo_exception(e):
                return None
            e = session.failure(e)
        if e.option and e.option in self.cfg.mobility.sumo_args:
            return ConfigError(self.cfg.source_path or None, "mobility.sumo_args", str(e))
        if world is None or world.round_index == 0:
            return e   # nothing new was written: the input is the whole story
        return RunError(f"{e}; {rundir.resume_hint(self.run_dir)}")

    def _start_mobility(self, mobility: build.Mobility):
        """Start SUMO, warm up, place the RSUs and build the channel. Returns (sites, channel, radius)."""
        s = mobility.session
        s.start()
        warm_xy = build.warm_up(s, self.cfg.mobility, self.progress)
        sites = build.place_rsus(self.cfg, mobility.scenario, mobility.net, warm_xy)
        channel, radius = build.build_channel(self.cfg, sites)
        return sites, channel, radius

    def _build(self, mobility: build.Mobility, sites: list, channel, strategy) -> World:
        """The model, data and fleet; a restarted run's old outputs are cleared only once they all load."""
        cfg = self.cfg
        cfg.fl.tasks, loaded = build.available_tasks(cfg, self.progress.message)
        learning = build.build_learning(cfg, self.progress, strategy, self.model, loaded)
        fleet = Fleet(cfg.seed, [t.share for t in cfg.devices], learning.shards)
        if self.restart:
            rundir.clear_outputs(self.run_dir, keep=("config.yaml", "sumo"))  # sumo/: this session's SUMO log
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return World(cfg, mobility, learning, fleet, RunLogs.open(self.run_dir), Journal(), channel, sites)

    def _start(self, world: World, radius: float) -> StepView:
        """Write the config and RSUs, open enrolment; the first step, so that round 1 sees vehicles."""
        cfg, s = self.cfg, world.mobility.session
        if self.checkpoint is None:
            rundir.write_config(cfg, self.run_dir)  # after the build: exactly what runs
        rundir.write_rsus(self.run_dir, world.sites, radius)
        world.trackers = self._open_trackers()
        if self.gui:
            world.hooks = GuiHooks(s.api, np.asarray([[r.x_m, r.y_m] for r in world.sites]), radius,
                                   world.mobility.net.getBoundary(), self.screenshots_dir, self.screenshot_handovers,
                                   self.gui_view)
        s.open_enrolment()
        return world.step()

    def _open_trackers(self) -> Trackers | None:
        if not self.cfg.output.trackers:
            return None
        resumed = self.checkpoint is not None
        return open_trackers(self.cfg.output.trackers, self.run_dir, self.cfg.name,
                             params=None if resumed else to_dict(self.cfg),
                             resume_round=int(self.checkpoint["round"]) if resumed else None)

    def _restore(self, world: World):
        """Replay mobility to the checkpoint; load the adapters, the strategy's memory, open dwell."""
        ck = self.checkpoint
        view = None

        def step():
            nonlocal view
            view = world.step()

        world.journal.recording = False
        rundir.replay_to(world.mobility.session, float(ck["time_s"]), step, self.progress)
        world.journal.recording = True
        bad = world.fleet.mismatch(ck["fleet"])
        if bad is not None:
            raise RunError(f"{self.run_dir}: the replayed traffic does not match the checkpoint (vehicle {bad}); "
                           "was the scenario or SUMO version changed?")
        global_states = rundir.load_global_states(ck, [tc.name for tc in self.cfg.fl.tasks])
        world.learning.strategy.load_state_dict(ck["strategy"])
        world.journal.dwell_open = ck.get("dwell_open", {})
        world.logs.truncate_after(int(ck["round"]), float(ck["time_s"]))
        return view, global_states

    # ------------------------------------------------------------------ one round
    def _round(self, world: World, r: int, state, view: StepView, global_states: list):
        cfg, fl, learning = self.cfg, self.cfg.fl, world.learning
        strategy, t0 = learning.strategy, world.mobility.session.time_s
        world.round_index, world.journal.round_handovers = r, 0
        plan = strategy.configure(state)
        parts = participants_of(plan, state, fl.local_steps, cfg.channel.bandwidth_allocation, strategy.name)
        for p in parts:
            world.journal.open_dwell(r, p.vehicle_id, p.rsu, t0, p.dwell_pred_s)
        outcomes, view = self._transfer(world, r, parts, t0, view)
        delivered = [p for p, o in zip(parts, outcomes) if o.status in DELIVERED]
        results = train(learning.executor, train_jobs(delivered, world.fleet, strategy, global_states, fl, cfg.seed, r),
                        self.progress, r)
        task_of = {p.vehicle_id: world.fleet[p.vehicle_id].task for p in parts}
        global_states = aggregate_round(strategy, global_states, delivered, task_of, results,
                                        {p.vehicle_id: o.rsu for p, o in zip(parts, outcomes)}, fl.transfer_dtype)
        if r % fl.eval_every == 0 or r == fl.rounds:
            evals = evaluate(learning.executor, global_states, fl.eval_batch_size, self.progress, r)
        else:  # test sets are the costliest part of a round; fl.eval_every trades curve detail for time
            evals = skipped_evals(len(global_states))
        task_arr = np.asarray([task_of[p.vehicle_id] for p in parts], dtype=int)
        fb = round_feedback(r, t0, parts, outcomes, task_arr, results, evals, round_latency_s(outcomes, t0), plan.extra)
        logged = strategy.observe(fb) or {}
        rows = self._log(world, r, t0, parts, outcomes, task_arr, fb, evals, logged, results)
        return view, global_states, rows

    def _observe(self, world: World, r: int, view: StepView):
        fl, mob = self.cfg.fl, self.cfg.mobility
        dwell_s = predict_dwell(world.channel, view, world.mobility.route_ahead, world.mobility.session.routes,
                                horizon_s=fl.round_deadline_s * 2, dt_s=max(mob.step_length_s, 1.0))
        return observe_round(r, self.cfg, view, world.channel, world.fleet, world.learning.shapes, dwell_s)

    def _transfer(self, world: World, r: int, parts: list, t0: float, view: StepView):
        """Step SUMO through the round while the participants download, compute and upload."""
        s, last = world.mobility.session, [view]
        jobs = {p.vehicle_id: p.job for p in parts}

        def step(phases: dict):
            if s.finished():
                return None
            first = s.time_s == t0
            last[0] = world.step(phases)
            if first and world.hooks is not None:
                world.hooks.on_round_start(r)
            return link_view(world.channel, last[0], [jobs[v] for v, ph in phases.items() if ph in ACTIVE_PHASES])

        backhaul = Backhaul(self.cfg.channel.backhaul_latency_s, self.cfg.channel.backhaul_rate_bps)
        edge = EdgeServers(self.cfg.rsu.edge_flops_per_s, self.cfg.rsu.edge_power_w)
        outcomes = run_transfer([p.job for p in parts], t0, t0 + self.cfg.fl.round_deadline_s, step, backhaul, edge)
        return outcomes, last[0]

    def _log(self, world: World, r, t0, parts, outcomes, task_arr, fb, evals, logged, results):
        logs, cfg = world.logs, self.cfg
        logs.vehicles.write(vehicle_rows(r, t0, parts, outcomes, world.fleet, cfg, results))
        rows = task_rows(r, t0, parts, outcomes, task_arr, fb, evals, cfg.fl.tasks, world.journal.round_handovers)
        logs.metrics.write(rows)
        if world.trackers is not None:
            world.trackers.log_round(r, rows)
        handover_rows, dwell_rows = world.journal.take_rows()
        logs.handovers.write(handover_rows)
        logs.dwell.write(dwell_rows)
        logs.strategy.write(strategy_rows(r, logged))
        self.progress.round_table([table_row(r, t0, rows, len(parts))])
        self.progress.event("round", round=r, time_s=t0,
                            tasks={x["task"]: {"accuracy": x["accuracy"], "loss": x["loss"]} for x in rows},
                            participants=len(parts), lost_updates=sum(x["lost_updates"] for x in rows),
                            round_latency_s=fb.round_latency_s, energy_j=float(fb.energy_j.sum()) if len(parts) else 0.0)
        if world.hooks is not None:
            world.hooks.on_round_end(r, len(parts), {x["task"]: x["accuracy"] for x in rows},
                                     dict(Counter(o.status for o in outcomes)))
        return rows

    def _summary(self, world: World, wall0: float, final: bool) -> dict:
        content = rundir.summary(self.cfg, world.mobility.scenario.net_file, world.logs, len(world.fleet),
                                 len(world.sites or []), wall0, final)
        return rundir.write_summary(self.run_dir, content)


def default_config_path() -> Path:
    return Path(__file__).resolve().parent.parent / "sumo_scenarios" / "default.yaml"


def new_run_dir(cfg: ExperimentConfig) -> Path:
    base = cfg.output.runs_path()
    name = cfg.output.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d = base / name
    if (d / "metrics.csv").exists():
        raise RunError(f"{d}: a run folder already exists there; choose another output.run_name or use --resume")
    return d
