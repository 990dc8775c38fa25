"""Building the parts of an experiment from its config: mobility, learning, RSUs and channel."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.config import ConfigError, ExperimentConfig
from iovsim.engine.errors import RunError
from iovsim.engine.fleet import dirichlet_task_shards


@dataclass
class Mobility:
    scenario: object        # iovsim.mobility.scenario.Scenario
    net: object             # sumolib net
    route_ahead: object     # iovsim.mobility.prediction.RouteAhead
    session: object         # SumoSession or ReplaySession (not started)


@dataclass
class Learning:
    model: object           # an iovsim.fl.families model (encoder classifier or causal LM)
    tasks: list             # TaskData per task (the examples its model family could fit)
    executor: object        # iovsim.fl executor: train(jobs) -> results (see fl/executors.py)
    shards: list            # per task, the vehicles' data shards
    strategy: object        # iovsim.strategies.base.Strategy, set up
    global_states: list     # per task, the initial global adapter
    shapes: list            # per task, iovsim cost-model ModelShape


def build_mobility(cfg: ExperimentConfig, run_dir: Path, gui: bool, gui_args: list[str],
                   sumo_dir: Path | None = None) -> Mobility:
    """The scenario, its road network and a SUMO session (not started yet); SUMO's log and outputs
    go to `sumo_dir` (default: the run folder's sumo/)."""
    from iovsim.mobility.net import load_net
    from iovsim.mobility.prediction import RouteAhead
    from iovsim.mobility.scenario import build_scenario
    from iovsim.mobility.sumo import SumoSession

    mob = cfg.mobility
    scenario = build_scenario(mob, cfg.base_dir)
    net = load_net(scenario.net_file)
    sumo_dir = sumo_dir or run_dir / "sumo"
    extra = scenario.output_args(sumo_dir) + list(mob.sumo_args)
    session_cls = SumoSession
    if scenario.replay.get("file") and scenario.replay.get("mode", "exact") == "exact":
        from iovsim.mobility.replay import ReplaySession as session_cls  # vehicles follow GPS tracks
    session = session_cls(
        scenario, seed=cfg.seed, step_length_s=mob.step_length_s, begin_s=mob.begin_s, end_s=mob.end_s,
        backend=mob.backend, gui=gui, out_dir=sumo_dir, extra_args=extra + gui_args,
        max_vehicles=mob.fl_vehicles, enrol=mob.enrol, probability=mob.enrol_probability, scale=mob.scale,
        id_prefix=mob.fl_id_prefix)
    return Mobility(scenario, net, RouteAhead(net), session)


def available_tasks(cfg: ExperimentConfig, message) -> tuple[list, list]:
    """The configured tasks without the optional ones whose data is absent (`message` says which), and
    per task kept the TaskData the check loaded (None for a task that is not optional), so that
    `build_learning` does not read and split those files a second time."""
    from iovsim.fl.data import DataError, load_task

    keep, loaded = [], []
    for tc in cfg.fl.tasks:
        data = None
        if tc.optional:
            try:
                data = load_task(tc, cfg.seed, cfg.base_dir)
            except (DataError, ImportError) as e:
                message(f"optional task {tc.name} skipped: {e}")
                continue
        keep.append(tc)
        loaded.append(data)
    if not keep:
        raise RunError("no task left to train (every optional task's data is absent)")
    return keep, loaded


def load_task_named(cfg: ExperimentConfig, i: int):
    """Task i's data; a data problem (missing file, bad columns, unknown dataset) names its config field."""
    from iovsim.fl.data import DataError, load_task

    try:
        return load_task(cfg.fl.tasks[i], cfg.seed, cfg.base_dir)
    except DataError as e:
        raise ConfigError(cfg.source_path or None, f"fl.tasks[{i}].dataset", str(e)) from None


def create_strategy(cfg: ExperimentConfig):
    """The configured strategy, constructed (not set up): first, so a broken user file fails in a second."""
    from iovsim.strategies import StrategyLoadError, create

    try:
        return create(cfg.strategy.name, cfg.strategy.params, base_dir=cfg.base_dir)
    except StrategyLoadError as e:
        raise ConfigError(cfg.source_path or None, f"strategy.{e.field}", str(e)) from None


def build_strategy(cfg: ExperimentConfig, num_tasks: int, strategy=None):
    """The configured strategy, set up with the task count, the seed and lora_alpha."""
    strategy = strategy if strategy is not None else create_strategy(cfg)
    strategy.setup(num_tasks, cfg.seed, lora_alpha=cfg.fl.lora_alpha)
    return strategy


def load_model(cfg: ExperimentConfig):
    """The family model (iovsim.fl.families) with its LoRA targets; a model or module that is not
    there names its field. The config records the targets used (the family's defaults when empty)."""
    from iovsim.fl.families import ModelError, load_model as load

    from iovsim.fl import gpu_share
    from iovsim.fl.families.lora import pick_device

    fl = cfg.fl
    # Before the weights go to the GPU, so that they count against this run's share of it
    gpu_share.limit_process_memory(pick_device(fl.device), fl.gpu_memory_fraction)
    try:
        model = load(fl.model, fl.target_modules, fl.lora_alpha, device=fl.device, threads=fl.threads,
                     family=fl.family, causal_eval=fl.causal_eval)
    except ModelError as e:
        raise ConfigError(cfg.source_path or None, f"fl.{e.field}", str(e)) from None
    fl.target_modules = list(model.target_modules)
    return model


def make_task_named(cfg: ExperimentConfig, model, i: int, data, message):
    """Task i tokenized (and prompted) by the model's family; examples it cannot fit are said and left out."""
    from iovsim.fl.data import DataError

    tc = cfg.fl.tasks[i]
    try:
        task = model.make_task(data, tc.max_length)
    except DataError as e:
        raise ConfigError(cfg.source_path or None, f"fl.tasks[{i}].dataset", str(e)) from None
    n_train, n_test = task.dropped
    if n_train or n_test:
        message(f"task {tc.name}: {n_train} training and {n_test} test examples do not fit max_length = "
                f"{tc.max_length} tokens with their whole answer; left out")
    if len(task.data.train_text) == 0 or len(task.data.test_text) == 0:
        raise ConfigError(cfg.source_path or None, f"fl.tasks[{i}].max_length",
                          f"expected room for a prompt and its answer: no example of {tc.dataset} fits "
                          f"{tc.max_length} tokens")
    return task


def build_learning(cfg: ExperimentConfig, progress, strategy=None, model=None, loaded=None) -> Learning:
    """Model (or `model`, already loaded), task data (tokenized once), executor, shards, strategy and
    initial global adapters. `loaded`: per task, its TaskData when already loaded (`available_tasks`), else None."""
    from iovsim.engine.limits import (check_batch_size, check_device_memory, check_max_length, check_ranks,
                                      check_split_layer)
    from iovsim.fl.executors import make_executor
    from iovsim.fl.heap import return_freed_memory, trim_heap

    fl = cfg.fl
    return_freed_memory()  # training passes' activations go back to the OS when freed (fl/heap.py)
    with progress.task("Loading model and data", total=len(fl.tasks) + 1) as t:
        loaded = loaded or [None] * len(fl.tasks)
        raw = [d if d is not None else load_task_named(cfg, i) for i, d in enumerate(loaded)]  # first: fails fast
        if model is None:
            model = load_model(cfg)
        fl.target_modules = list(model.target_modules)
        check_ranks(cfg, model.max_rank())
        check_split_layer(cfg, model.num_layers)
        check_max_length(cfg, model.max_positions)
        t.advance(1)
        tasks, tokenized = [], []
        for i, data in enumerate(raw):
            task = make_task_named(cfg, model, i, data, progress.message)
            tasks.append(task.data)
            tokenized.append(task)
            t.advance(1)
    trim_heap()  # what the tokenizer's threads freed
    shards = dirichlet_task_shards(fl.tasks, tasks, cfg.seed, fl.samples_per_vehicle, fl.min_samples_per_vehicle)
    check_batch_size(cfg, shards)
    executor = make_executor(fl, model, tokenized)
    strategy = build_strategy(cfg, len(fl.tasks), strategy)
    global_states = initial_global_states(model, tasks, max([fl.lora_rank, *fl.lora_ranks]), cfg.seed)
    shapes = task_shapes(fl, model, tasks, tokenized)
    check_device_memory(cfg, shapes, progress.message)
    return Learning(model, tasks, executor, shards, strategy, global_states, shapes)


def task_shapes(fl, model, tasks: list, tokenized: list | None = None) -> list:
    """Per task (`fl.tasks`, `tasks` its TaskData, `tokenized` the family's task objects), the cost model's
    shape: its max_length, the batch size, its classes (the head), the positions a causal LM's head runs
    on (from the tokenized task), values sent in `fl.transfer_dtype`. The bits the engine plans and
    charges with, and what `runs.update_bits` recomputes an older run's update bits from."""
    from iovsim.costs.bits import with_transfer_dtype

    tokenized = tokenized if tokenized is not None else [None] * len(tasks)
    return [with_transfer_dtype(model.shape(tc.max_length, fl.batch_size, d.num_classes, task=t), fl.transfer_dtype)
            for tc, d, t in zip(fl.tasks, tasks, tokenized)]


def initial_global_states(model, tasks, rank: int, seed: int) -> list[dict]:
    """Each task's first global adapter at the largest rank, from its own seeded stream."""
    import torch

    out = []
    for ti, data in enumerate(tasks):
        gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, 3, ti]).integers(2**31)))
        out.append(model.init_state(rank, data.num_classes, gen))
    return out


def warm_up(session, mob, progress) -> np.ndarray:
    """Run SUMO through the warm-up; the vehicle positions every 10 steps (for RSU placement)."""
    warm_end = mob.begin_s + mob.warmup_s
    warm_xy = []
    with progress.task("SUMO warm-up", total=max(1, int(mob.warmup_s / mob.step_length_s))) as t:
        while session.time_s + 1e-9 < warm_end and not session.finished():
            session.step()
            t.advance(1)
            if int(round(session.time_s / mob.step_length_s)) % 10 == 0:
                warm_xy.extend(session.api.vehicle.getPosition(v) for v in session.api.vehicle.getIDList())
    return np.asarray(warm_xy, dtype=float).reshape(-1, 2)


def place_rsus(cfg: ExperimentConfig, scenario, net, warm_xy: np.ndarray) -> list:
    """RSU sites (with lon/lat). A scenario's own RSU file replaces the default regular placement;
    the config records that choice, so the saved config.yaml is what ran."""
    from iovsim.mobility.placement import place_rsus as place

    if scenario.rsu_file and cfg.rsu.placement == "regular" and not cfg.rsu.file:
        cfg.rsu.placement, cfg.rsu.file = "file", str(scenario.rsu_file)
    return place(cfg.rsu.placement, net, cfg.rsu, warmup_xy=warm_xy, seed=cfg.seed, base_dir=cfg.base_dir)


def build_channel(cfg: ExperimentConfig, sites: list):
    """The channel over the RSU sites. Returns (channel, coverage radius in m)."""
    from iovsim.channel import Channel
    from iovsim.engine.limits import check_per_rsu_values, check_reuse_groups

    check_reuse_groups(cfg, len(sites))
    check_per_rsu_values(cfg, len(sites))
    rsu_xy = np.asarray([[r.x_m, r.y_m] for r in sites])
    channel = Channel(cfg.channel, rsu_xy, cfg.seed)
    # Without a configured radius: where the mean RSRP (no shadowing) falls to the association threshold
    # (one per RSU when their radios or heights differ).
    radius = cfg.rsu.coverage_radius_m or channel.coverage_radius_m()
    return channel, (radius if np.isscalar(radius) else [float(r) for r in radius])
