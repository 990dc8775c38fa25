"""Config values whose range depends on the model or the data, checked once they are loaded.

The config layer checks every number against its declared range; these bounds are only known
after the build: a LoRA rank cannot exceed the width of the layer it adapts, and a mini-batch
cannot be larger than the data a vehicle holds; explicit channel groups need one entry per placed RSU;
some device tier must hold a training job of each task.
"""
from __future__ import annotations

from iovsim.config import ConfigError, ExperimentConfig

RANK_PARAMS = ("rank", "tier_ranks")   # strategy parameters that name LoRA ranks


def _ranks_of(value) -> list:
    """The ranks in a strategy parameter: one rank, a list of them (per tier), or nothing."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value is None else [value]


def rank_fields(cfg: ExperimentConfig) -> list[tuple[str, object]]:
    """(dotted field, rank) for every LoRA rank the config names."""
    out = [("fl.lora_rank", cfg.fl.lora_rank)]
    out += [(f"fl.lora_ranks[{i}]", r) for i, r in enumerate(cfg.fl.lora_ranks)]
    places = [("strategy.params", cfg.strategy.params)]
    places += [(f"strategy.per_strategy.{n}", p) for n, p in cfg.strategy.per_strategy.items() if isinstance(p, dict)]
    for prefix, params in places:
        for key in RANK_PARAMS:
            ranks = _ranks_of(params.get(key))
            listed = isinstance(params.get(key), (list, tuple))
            out += [(f"{prefix}.{key}" + (f"[{i}]" if listed else ""), r) for i, r in enumerate(ranks)]
    return out


def check_ranks(cfg: ExperimentConfig, max_rank: tuple[int, str]) -> None:
    """Every rank <= the narrowest adapted layer's width (`max_rank` = (width, layer description))."""
    width, layer = max_rank
    for field_path, r in rank_fields(cfg):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ConfigError(cfg.source_path or None, field_path, f"expected a LoRA rank (an integer >= 1), got {r!r}")
        if r > width:
            raise ConfigError(cfg.source_path or None, field_path,
                              f"expected a LoRA rank <= {width} (the width of the adapted layer {layer}), got {r}")


def check_batch_size(cfg: ExperimentConfig, shards: list) -> None:
    """fl.batch_size <= the largest vehicle shard of some task, else no vehicle fills one batch."""
    largest = max((len(s) for task in shards for s in task), default=0)
    if cfg.fl.batch_size > largest:
        raise ConfigError(cfg.source_path or None, "fl.batch_size",
                          f"expected at most {largest} samples (the largest vehicle's data shard, from "
                          f"fl.samples_per_vehicle = {cfg.fl.samples_per_vehicle}), got {cfg.fl.batch_size}")


def check_per_rsu_values(cfg: ExperimentConfig, num_rsus: int) -> None:
    """A list given for an RSU radio field (channel.rsu_tx_power_dbm, ...) or for rsu.edge_flops_per_s holds one
    value per placed RSU."""
    from iovsim.channel.config import PER_RSU_FIELDS

    for name in PER_RSU_FIELDS:
        value = getattr(cfg.channel, name)
        if isinstance(value, list) and len(value) != num_rsus:
            raise ConfigError(cfg.source_path or None, f"channel.{name}",
                              f"expected one number, or a list of {num_rsus} (one per RSU placed), got {len(value)} entries")
    edge = cfg.rsu.edge_flops_per_s
    if isinstance(edge, list) and len(edge) != num_rsus:
        raise ConfigError(cfg.source_path or None, "rsu.edge_flops_per_s",
                          f"expected one number, or a list of {num_rsus} (one per RSU placed), got {len(edge)} entries")


def check_reuse_groups(cfg: ExperimentConfig, num_rsus: int) -> None:
    """An explicit channel group per placed RSU (their number is known only after placement)."""
    groups = cfg.channel.reuse_groups
    if groups and len(groups) != num_rsus:
        raise ConfigError(cfg.source_path or None, "channel.reuse_groups",
                          f"expected one channel group per RSU ({num_rsus} RSUs placed), got {len(groups)} entries")


def check_split_layer(cfg: ExperimentConfig, num_layers: int) -> None:
    """fl.split_layer < the model's encoder layers: the RSU's edge server must run at least one."""
    if cfg.fl.split_layer > num_layers - 1:
        raise ConfigError(cfg.source_path or None, "fl.split_layer",
                          f"expected at most {num_layers - 1} (the model {cfg.fl.model} has {num_layers} encoder "
                          f"layers and the RSU's edge server runs the ones above the split), got {cfg.fl.split_layer}")


def check_max_length(cfg: ExperimentConfig, max_positions: int | None) -> None:
    """Every task's max_length within the model's position embeddings."""
    for i, tc in enumerate(cfg.fl.tasks):
        if max_positions is not None and tc.max_length > max_positions:
            raise ConfigError(cfg.source_path or None, f"fl.tasks[{i}].max_length",
                              f"expected at most {max_positions} tokens (the positions of model {cfg.fl.model}), "
                              f"got {tc.max_length}")


def check_device_memory(cfg: ExperimentConfig, shapes: list, message) -> None:
    """Which device tiers hold a training job of each task at the run's largest rank
    (`costs.memory.training_bytes`). A tier that cannot is reported through `message` (its vehicles
    of that task are never asked: `RoundState.connected()`); a task no tier can train is a ConfigError
    naming `devices`."""
    from iovsim.costs.memory import training_bytes

    rank = max([cfg.fl.lora_rank, *cfg.fl.lora_ranks])
    for tc, shape in zip(cfg.fl.tasks, shapes):
        need = training_bytes(shape, rank)
        short = [(i, d) for i, d in enumerate(cfg.devices) if d.memory_bytes < need]
        if len(short) == len(cfg.devices):
            raise ConfigError(cfg.source_path or None, "devices",
                              f"expected a tier with memory_bytes >= {need:.4g} (a training job of task {tc.name} "
                              f"at rank {rank}, batch {shape.batch_size} x {shape.seq_len} tokens), got at most "
                              f"{max(d.memory_bytes for d in cfg.devices):.4g}")
        for i, d in short:
            message(f"devices[{i}] ({d.name}, memory_bytes {d.memory_bytes:.4g}) cannot hold a training job of task "
                    f"{tc.name} ({need:.4g} bytes at rank {rank}): its vehicles of that task are never asked")
