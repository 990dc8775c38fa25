"""The run folder besides its CSV logs: resolved config, RSU files, checkpoints, summary."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from iovsim.config import ExperimentConfig, load_config, save_config
from iovsim.engine.errors import RunError


def write_config(cfg: ExperimentConfig, run_dir: Path):
    """config.yaml: the config as it ran (written after the build resolved it)."""
    save_config(cfg, run_dir / "config.yaml")


def write_rsus(run_dir: Path, sites: list, radius_m: float):
    """rsus.add.xml (for sumo-gui) and rsus.csv."""
    from iovsim.mobility.rsu import write_rsu_additional, write_rsu_csv

    write_rsu_additional(run_dir / "rsus.add.xml", sites, radius_m)
    write_rsu_csv(run_dir / "rsus.csv", sites, radius_m)


def load_for_resume(run_dir: Path) -> tuple[ExperimentConfig, dict | None]:
    """A run folder's config and its latest checkpoint's state (with "dir", its folder); None
    when the run stopped before its first checkpoint."""
    cfg = run_config(run_dir)
    ckpts = sorted((run_dir / "checkpoints").glob("round_*/state.json"))
    if not ckpts:
        return cfg, None
    try:
        state = json.loads(ckpts[-1].read_text())
    except ValueError as e:
        raise RunError(f"{ckpts[-1]}: not valid JSON ({e})") from None
    state["dir"] = str(ckpts[-1].parent)
    return cfg, state


def run_config(run_dir: Path) -> ExperimentConfig:
    """A run folder's config.yaml, as it ran; RunError when there is none."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunError(f"{run_dir}: not a run folder (config.yaml missing)")
    # Relative paths in the saved config resolve against the original config's folder.
    summary = run_dir / "summary.json"
    source = None
    if summary.exists():
        try:
            source = json.loads(summary.read_text()).get("config_source")
        except (ValueError, AttributeError):
            raise RunError(f"{summary}: not the JSON object a run writes; restore it or delete it") from None
    if source:
        import yaml

        from iovsim.config import config_from_dict

        cfg = config_from_dict(yaml.safe_load(cfg_path.read_text()) or {}, cfg_path, Path(source).parent)
        cfg.source_path = source
        return cfg
    return load_config(cfg_path)


def resume_hint(run_dir: Path) -> str:
    """Which checkpoint a stopped run keeps, and the command that continues from it."""
    import shlex

    ckpts = sorted((run_dir / "checkpoints").glob("round_*/state.json"))
    if not ckpts:
        return f"no round was checkpointed yet (iovsim run --resume {shlex.quote(str(run_dir))} starts it over)"
    last = ckpts[-1].parent
    return (f"the last checkpoint is round {int(last.name.split('_')[1])} ({last}); "
            f"continue with: iovsim run --resume {shlex.quote(str(run_dir))}")


def clear_outputs(run_dir: Path, keep: tuple = ("config.yaml",)):
    """Empty a run folder that is started over (no checkpoint), keeping the entries named in `keep`."""
    for p in run_dir.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def save_checkpoint(run_dir: Path, r: int, time_s: float, task_names: list[str], global_states: list,
                    strategy_state: dict, fleet_json: dict, dwell_open: dict):
    """checkpoints/round_<r>/: each task's global adapter and the JSON state to resume from."""
    from safetensors.torch import save_file

    d = run_dir / "checkpoints" / f"round_{r:04d}"
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, st in zip(task_names, global_states):
        save_file({k: v.contiguous() for k, v in st.items()}, str(tmp / f"{name}.safetensors"))
    state = {"round": r, "time_s": time_s, "strategy": strategy_state, "fleet": fleet_json, "dwell_open": dwell_open}
    (tmp / "state.json").write_text(json.dumps(state, default=_json_default))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)  # a checkpoint appears whole or not at all


def load_global_states(checkpoint: dict, task_names: list[str]) -> list[dict]:
    from safetensors.torch import load_file

    d = Path(checkpoint["dir"])
    return [load_file(str(d / f"{name}.safetensors")) for name in task_names]


def replay_to(session, target_s: float, step, progress):
    """Step mobility (through `step()`) up to a checkpoint's time."""
    with progress.task("Replaying mobility to the checkpoint", total=max(1, int(target_s - session.time_s))) as t:
        while session.time_s + 1e-9 < target_s:
            before = session.time_s
            step()
            t.advance(session.time_s - before)


def summary(cfg: ExperimentConfig, net_file, logs, fleet_size: int, num_rsus: int, wall0: float, final: bool) -> dict:
    """summary.json's content: final accuracy, handovers, dwell prediction error, wall time, memory."""
    import psutil

    from iovsim.channel import dwell_prediction_error
    from iovsim.engine.efficiency import traffic

    rows = logs.metrics.read() if logs is not None else []
    # The last *evaluated* row per task: under fl.eval_every a run stopped (or resumed) after an
    # unevaluated round has empty accuracy cells in its last rows.
    last = {row["task"]: row for row in rows if row["accuracy"] != ""}
    out = {
        "name": cfg.name, "seed": cfg.seed, "strategy": cfg.strategy.name, "config_source": cfg.source_path,
        "net_file": str(net_file), "finished": final, "rounds": max((int(r["round"]) for r in rows), default=0),
        "final_accuracy": {k: float(v["accuracy"]) for k, v in last.items()}, "wall_time_s": time.time() - wall0,
        "peak_rss_bytes": psutil.Process().memory_info().rss, "fl_vehicles_enrolled": fleet_size, "num_rsus": num_rsus,
    }
    if logs is not None:
        d = logs.dwell.read()
        out["dwell_prediction"] = dwell_prediction_error([float(r["predicted_s"]) for r in d],
                                                         [float(r["actual_s"]) for r in d],
                                                         [r["end"] == "handover" for r in d])
        out["traffic"] = traffic(logs.vehicles.read())
        h = logs.handovers.read()
        out["handovers"] = len(h)
        out["ping_pong_handovers"] = sum(int(r.get("ping_pong") or 0) for r in h)
    try:
        import resource

        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except ImportError:
        pass
    from iovsim.fl.gpu_share import peak_allocated_bytes

    gpu_peak = peak_allocated_bytes()
    if gpu_peak is not None:  # only where the run used CUDA: a CPU run's summary is as before
        out["peak_gpu_allocated_bytes"] = gpu_peak
    return out


def write_summary(run_dir: Path, content: dict) -> dict:
    (run_dir / "summary.json").write_text(json.dumps(content, indent=2, default=_json_default))
    return content


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-able: {type(o)}")
