"""Figures of a run folder (matplotlib, Agg, no pyplot state): `make_figures(run_dir) -> [png paths]`.

Every figure reads only the run folder's files (columns in docs/ARCHITECTURE.md, "Run folder"); a
figure whose inputs are missing is skipped, never an error, so a partial or older run still gets
the pictures it can have.
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Same colours as rsus.add.xml and the sumo-gui overlay: RSU i has colour i.
from iovsim.mobility.rsu import rsu_color as _rsu_rgb

TASK_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
DPI = 110

# name -> (file, title) in the order the report shows them
FIGURES = {
    "accuracy_loss": "Accuracy and loss per round",
    "latency": "Round latency and its parts",
    "energy": "Energy per task against its budget",
    "ranks": "Ranks chosen over time",
    "losses_handovers": "Lost, migrated and early updates and handovers per round",
    "strategy": "Strategy internals (strategy.csv)",
    "map": "Road network, RSUs, coverage and handover locations",
}


def rsu_color(i: int) -> tuple[float, float, float]:
    r, g, b = _rsu_rgb(i)
    return (r / 255, g / 255, b / 255)


# ---------------------------------------------------------------------- reading
def read_csv(path: Path) -> list[dict] | None:
    """Rows of a CSV as dicts, or None when the file is absent or has no rows."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows or None


def num(v) -> float:
    """A CSV cell as float; empty or unparsable cells are NaN."""
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def has_cols(rows: list[dict] | None, *cols: str) -> bool:
    return bool(rows) and all(c in rows[0] for c in cols)


def tasks_of(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["task"] for r in rows))


def per_task(rows: list[dict], col: str, scored_only: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """task -> (rounds, values) sorted by round; `scored_only` keeps the evaluated rounds (fl.eval_every)."""
    out = {}
    for t in tasks_of(rows):
        mine = sorted((r for r in rows if r["task"] == t), key=lambda r: num(r["round"]))
        if scored_only:
            mine = [r for r in mine if np.isfinite(num(r.get("accuracy")))]
        out[t] = (np.array([num(r["round"]) for r in mine]), np.array([num(r.get(col)) for r in mine]))
    return out


def per_round(rows: list[dict], col: str, how: Callable = np.nansum) -> tuple[np.ndarray, np.ndarray]:
    """(rounds, how(values of that round over tasks)); all-NaN rounds stay NaN."""
    rounds = sorted({num(r["round"]) for r in rows})
    vals = []
    for rd in rounds:
        v = np.array([num(r.get(col)) for r in rows if num(r["round"]) == rd])
        vals.append(how(v) if np.isfinite(v).any() else math.nan)
    return np.array(rounds), np.array(vals, dtype=float)


def resolve_net_file(run_dir: Path) -> Path | None:
    """The road network of a run: summary.json "net_file", else config.yaml mobility.net_file."""
    cands = []
    s = Path(run_dir) / "summary.json"
    if s.is_file():
        try:
            cands.append(json.loads(s.read_text()).get("net_file"))
        except (ValueError, OSError):
            pass
    c = Path(run_dir) / "config.yaml"
    if c.is_file():
        try:
            import yaml

            cands.append(((yaml.safe_load(c.read_text()) or {}).get("mobility") or {}).get("net_file"))
        except Exception:  # noqa: BLE001
            pass
    for v in cands:
        if not v:
            continue
        v = str(v)
        if v.startswith("sumo:"):
            try:
                import sumo

                v = os.path.join(sumo.SUMO_HOME, v[len("sumo:"):])
            except ImportError:
                continue
        p = Path(v)
        if not p.is_absolute():
            p = (Path(run_dir) / p) if (Path(run_dir) / p).exists() else p
        if p.is_file():
            return p
    return None


# ---------------------------------------------------------------------- drawing helpers
def _new(nrows=1, ncols=1, w=7.5, h=4.2, **kw):
    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _int_rounds(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.grid(True, alpha=0.3)


# ---------------------------------------------------------------------- figures
def fig_accuracy_loss(metrics, out: Path) -> Path | None:
    if not has_cols(metrics, "round", "task", "accuracy"):
        return None
    with_loss = has_cols(metrics, "loss")
    fig, axes = _new(1, 2 if with_loss else 1, w=11 if with_loss else 7)
    acc, se = per_task(metrics, "accuracy", True), per_task(metrics, "accuracy_se", True)
    for i, (t, (x, y)) in enumerate(acc.items()):
        color = TASK_COLORS[i % len(TASK_COLORS)]
        axes[0, 0].plot(x, y, "o-", color=color, label=t, ms=4)
        e = se[t][1]
        if np.isfinite(e).any():  # +-1 standard error of each round's test accuracy
            axes[0, 0].fill_between(x, y - e, y + e, color=color, alpha=0.2, lw=0)
    axes[0, 0].set_ylabel("test accuracy (band: ±1 s.e.)")
    axes[0, 0].set_title("accuracy per task")
    _int_rounds(axes[0, 0])
    axes[0, 0].legend(fontsize=8)
    if with_loss:
        for i, (t, (x, y)) in enumerate(per_task(metrics, "loss", True).items()):
            axes[0, 1].plot(x, y, "o-", color=TASK_COLORS[i % len(TASK_COLORS)], label=t, ms=4)
        axes[0, 1].set_ylabel("test loss")
        axes[0, 1].set_title("loss per task")
        _int_rounds(axes[0, 1])
        axes[0, 1].legend(fontsize=8)
    return _save(fig, out)


def _download_per_round(vehicles, rounds: np.ndarray) -> np.ndarray | None:
    """Mean download time per round as metrics.csv's parts are made: mean over a task's participants,
    then mean over tasks."""
    if not has_cols(vehicles, "round", "download_time_s"):
        return None
    out = []
    for rd in rounds:
        mine = [r for r in vehicles if num(r["round"]) == rd]
        by_task = {}
        for r in mine:
            by_task.setdefault(r.get("task", ""), []).append(num(r["download_time_s"]))
        means = [np.nanmean(v) for v in by_task.values() if np.isfinite(v).any()]
        out.append(float(np.mean(means)) if means else 0.0)
    return np.array(out)


def fig_latency(metrics, out: Path, vehicles=None) -> Path | None:
    if not has_cols(metrics, "round", "round_latency_s"):
        return None
    fig, axes = _new()
    ax = axes[0, 0]
    rounds, lat = per_round(metrics, "round_latency_s", np.nanmax)
    parts = [(c, lbl, col) for c, lbl, col in (("download_time_s", "download", "#55a868"),
                                                ("compute_time_s", "compute", "#4c72b0"),
                                                ("upload_time_s", "upload", "#dd8452"),
                                                ("wait_time_s", "waiting", "#b0b0b0"))
             if has_cols(metrics, c) or (c == "download_time_s" and has_cols(vehicles, c))]
    bottom = np.zeros(len(rounds))
    for c, lbl, col in parts:
        if has_cols(metrics, c):
            _, v = per_round(metrics, c, np.nanmean)
        else:
            v = _download_per_round(vehicles, rounds)
        v = np.nan_to_num(v)
        ax.bar(rounds, v, bottom=bottom, color=col, label=f"{lbl} (mean over tasks)", width=0.7)
        bottom += v
    ax.plot(rounds, lat, "k-o", ms=4, label="round latency")
    ax.set_ylabel("time [s]")
    ax.set_title("round latency and its parts")
    _int_rounds(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out)


def fig_energy(metrics, out: Path) -> Path | None:
    if not has_cols(metrics, "round", "task", "energy_j"):
        return None
    energy = per_task(metrics, "energy_j")
    budget = per_task(metrics, "energy_budget_j") if has_cols(metrics, "energy_budget_j") else {}
    fig, axes = _new(1, 2, w=11)
    ax, cum = axes[0, 0], axes[0, 1]
    for i, (t, (x, y)) in enumerate(energy.items()):
        c = TASK_COLORS[i % len(TASK_COLORS)]
        ax.plot(x, y, "o-", color=c, label=f"{t} energy", ms=4)
        cum.plot(x, np.nancumsum(y), "-", color=c, label=f"{t} cumulative")
        if t in budget:
            bx, b = budget[t]
            if np.isfinite(b).any() and np.nanmax(b) > 0:
                ax.plot(bx, b, "--", color=c, alpha=0.8, label=f"{t} budget / round")
                cum.plot(bx, np.nancumsum(b), "--", color=c, alpha=0.8, label=f"{t} cumulative budget")
    ax.set_ylabel("energy per round [J]")
    ax.set_title("energy per task and round")
    cum.set_ylabel("energy [J]")
    cum.set_title("cumulative energy against budget")
    for a in (ax, cum):
        _int_rounds(a)
        a.legend(fontsize=7)
    return _save(fig, out)


def fig_ranks(metrics, vehicles, out: Path) -> Path | None:
    has_mean = has_cols(metrics, "round", "task", "mean_rank") and any(
        np.isfinite(num(r["mean_rank"])) for r in metrics)
    has_veh = has_cols(vehicles, "round", "rank") and any(np.isfinite(num(r["rank"])) for r in vehicles)
    if not (has_mean or has_veh):
        return None
    fig, axes = _new(1, 2 if (has_mean and has_veh) else 1, w=11 if (has_mean and has_veh) else 7)
    k = 0
    task_idx = {t: i for i, t in enumerate(tasks_of(metrics))} if metrics and "task" in metrics[0] else {}
    if has_mean:
        ax = axes[0, k]
        k += 1
        for t, (x, y) in per_task(metrics, "mean_rank").items():
            ax.plot(x, y, "o-", ms=4, label=t, color=TASK_COLORS[task_idx.get(t, 0) % len(TASK_COLORS)])
        ax.set_ylabel("mean LoRA rank of participants")
        ax.set_title("mean rank per task")
        _int_rounds(ax)
        ax.legend(fontsize=8)
    if has_veh:
        ax = axes[0, k]
        rng = np.random.default_rng(0)  # jitter only, so overlapping points stay visible
        tasks = list(dict.fromkeys(r.get("task", "") for r in vehicles))
        for t in tasks:
            mine = [r for r in vehicles if r.get("task", "") == t]
            x = np.array([num(r["round"]) for r in mine])
            y = np.array([num(r["rank"]) for r in mine])
            ok = np.array([r.get("status", "ok") in ("ok", "migrated", "early", "") for r in mine])
            ti = task_idx.setdefault(t, len(task_idx))
            c = TASK_COLORS[ti % len(TASK_COLORS)]
            off = (ti - (len(tasks) - 1) / 2) * 0.15
            jx = x + off + rng.uniform(-0.05, 0.05, len(x))
            ax.scatter(jx[ok], y[ok], s=14, color=c, alpha=0.7, label=f"{t}")
            if (~ok).any():
                ax.scatter(jx[~ok], y[~ok], s=22, marker="x", color=c, alpha=0.9, label=f"{t} (lost)")
        ax.set_ylabel("LoRA rank")
        ax.set_title("rank per vehicle and round")
        ranks = np.array([num(r["rank"]) for r in vehicles])
        ranks = ranks[np.isfinite(ranks)]
        if len(ranks) and ranks.min() > 0 and ranks.max() / ranks.min() >= 4:
            # Ranks are usually powers of two: equal steps on a log2 axis.
            from matplotlib.ticker import FixedLocator, NullLocator

            ax.set_yscale("log", base=2)
            ax.yaxis.set_major_locator(FixedLocator(sorted(set(ranks.tolist()))))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}")
        _int_rounds(ax)
        ax.legend(fontsize=7)
    return _save(fig, out)


def fig_losses_handovers(metrics, handovers, out: Path) -> Path | None:
    if not has_cols(metrics, "round", "lost_updates"):
        return None
    fig, axes = _new()
    ax = axes[0, 0]
    rounds, total = per_round(metrics, "lost_updates")
    kinds = [(c, lbl, col) for c, lbl, col in (("lost_handover", "lost: handover", "#d62728"),
                                                ("lost_left", "lost: left the map", "#9467bd"),
                                                ("lost_deadline", "lost: deadline", "#8c8c8c"))
             if has_cols(metrics, c)]
    if kinds:
        bottom = np.zeros(len(rounds))
        for c, lbl, col in kinds:
            _, v = per_round(metrics, c)
            v = np.nan_to_num(v)
            ax.bar(rounds, v, bottom=bottom, color=col, width=0.7, label=lbl)
            bottom += v
    else:
        ax.bar(rounds, np.nan_to_num(total), color="#d62728", width=0.7, label="lost updates")
    if has_cols(metrics, "participants"):
        _, parts = per_round(metrics, "participants")
        ax.plot(rounds, parts, "s--", color="#4c72b0", ms=4, label="participants")
    # updates that survived: through a handover (migrate) or uploaded early; drawn as lines over the bars
    for c, lbl, col, mk in (("migrated", "delivered: migrated", "#00b36b", "^-"),
                            ("early", "delivered: early upload", "#2828ff", "v-")):
        if has_cols(metrics, c):
            _, v = per_round(metrics, c)
            if np.nansum(v) > 0:
                ax.plot(rounds, np.nan_to_num(v), mk, color=col, ms=5, label=lbl)
    ax.set_ylabel("vehicles")
    ax2 = ax.twinx()
    ho = None
    if has_cols(metrics, "handovers"):
        # The handover count is network-wide, repeated on every task's row of a round.
        _, ho = per_round(metrics, "handovers", np.nanmax)
    elif has_cols(handovers, "round"):
        hr = np.array([num(r["round"]) for r in handovers])
        ho = np.array([np.sum(hr == r) for r in rounds], dtype=float)
    if ho is not None:
        ax2.plot(rounds, ho, "k-o", ms=4, label="handovers (FL vehicles)")
        ax2.set_ylabel("handovers")
        ax2.set_ylim(bottom=0)
    ax.set_title("lost updates and handovers per round")
    _int_rounds(ax)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left", bbox_to_anchor=(1.1, 1.0))
    return _save(fig, out)


def fig_strategy(strategy_rows, out: Path, max_panels: int = 12) -> Path | None:
    if not has_cols(strategy_rows, "round", "name", "value"):
        return None
    names = list(dict.fromkeys(r["name"] for r in strategy_rows))
    series = {}
    for n in names:
        mine = [(num(r["round"]), num(r["value"])) for r in strategy_rows if r["name"] == n]
        mine = [(x, y) for x, y in mine if np.isfinite(y)]
        if mine:
            series[n] = np.array(sorted(mine))
    if not series:
        return None
    names = list(series)[:max_panels]
    fig, panels = _task_panels(len(names), w=3.8, h=2.6)
    for n, ax in zip(names, panels):
        ax.plot(series[n][:, 0], series[n][:, 1], "o-", ms=3, color="#4c72b0")
        ax.set_title(n, fontsize=9)
        _int_rounds(ax)
    return _save(fig, out)


def _rsu_index(value, id_to_index: dict[str, int]) -> int | None:
    if value is None or value == "":
        return None
    if value in id_to_index:
        return id_to_index[value]
    f = num(value)
    return int(f) if np.isfinite(f) and f >= 0 else None


def _lane_lines(net_file: Path | None) -> tuple[list, tuple | None]:
    """The lanes of the net as (x, y) polylines, and its bounding box (None without a readable net)."""
    if net_file is None or not net_file.is_file():
        return [], None
    from iovsim.mobility.net import load_net

    net = load_net(net_file)
    lines = [np.asarray(ln.getShape())[:, :2] for e in net.getEdges() for ln in e.getLanes() if len(ln.getShape()) >= 2]
    return lines, tuple(net.getBoundary())


def fig_map(run_dir: Path, rsus, handovers, out: Path, net_file: Path | None = None) -> Path | None:
    """Lanes of the net (thin grey), RSUs (coloured squares), coverage circles and handover locations."""
    net_file = Path(net_file) if net_file else resolve_net_file(run_dir)
    lines, bounds = _lane_lines(net_file)
    if not lines and not has_cols(rsus, "x_m", "y_m"):
        return None
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    w, h = 9.0, 7.0
    if bounds is not None and bounds[2] > bounds[0] and bounds[3] > bounds[1]:
        aspect = (bounds[3] - bounds[1]) / (bounds[2] - bounds[0])
        h = float(np.clip(w * aspect, 4.0, 12.0))
    fig, axes = _new(w=w, h=h)
    ax = axes[0, 0]
    if lines:
        ax.add_collection(LineCollection(lines, colors="#8a8a8a", linewidths=0.6, zorder=1))
    legend = [Line2D([], [], color="#8a8a8a", lw=1, label="lanes")]
    id_to_index = {}
    if has_cols(rsus, "x_m", "y_m"):
        for i, r in enumerate(rsus):
            id_to_index[r.get("id", str(i))] = i
            x, y, rad = num(r["x_m"]), num(r["y_m"]), num(r.get("radius_m"))
            c = rsu_color(i)
            if np.isfinite(rad) and rad > 0:
                ax.add_patch(Circle((x, y), rad, facecolor=(*c, 0.10), edgecolor=(*c, 0.9), lw=1.0, zorder=2))
            ax.plot(x, y, "s", color=c, mec="black", mew=0.8, ms=8, zorder=4)
            ax.annotate(r.get("id", str(i)), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8,
                        color="black", zorder=5,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=c, alpha=0.8, lw=0.6))
        legend.append(Line2D([], [], marker="s", ls="", color="grey", mec="black", label="RSU (coverage circle)"))
    if has_cols(handovers, "x_m", "y_m"):
        hx = np.array([num(r["x_m"]) for r in handovers])
        hy = np.array([num(r["y_m"]) for r in handovers])
        to = [_rsu_index(r.get("to_rsu"), id_to_index) for r in handovers]
        cols = [rsu_color(t) if t is not None else (0.8, 0.0, 0.0) for t in to]
        ok = np.isfinite(hx) & np.isfinite(hy)
        ax.scatter(hx[ok], hy[ok], s=36, marker="X", c=[c for c, k in zip(cols, ok) if k], edgecolors="black",
                   linewidths=0.6, zorder=6)
        legend.append(Line2D([], [], marker="X", ls="", color="grey", mec="black",
                             label=f"handover ({int(ok.sum())}; colour = new RSU)"))
    if bounds is not None:
        pad = 0.02 * max(bounds[2] - bounds[0], bounds[3] - bounds[1])
        ax.set_xlim(bounds[0] - pad, bounds[2] + pad)
        ax.set_ylim(bounds[1] - pad, bounds[3] + pad)
    else:
        ax.autoscale_view()
    ax.set_aspect("equal", adjustable="datalim" if bounds is None else "box")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(f"road network{' ' + net_file.name if net_file else ''}, RSUs and handovers")
    ax.legend(handles=legend, fontsize=8, loc="best")
    return _save(fig, out)


# ---------------------------------------------------------------------- entry point
def make_figures(run_dir: Path, net_file: Path | None = None) -> list[Path]:
    """Write the run's figures as PNGs into run_dir/figures/ and return their paths (report order).

    Figures whose inputs are missing are skipped; `net_file` overrides the net found through
    summary.json / config.yaml for the map.
    """
    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    metrics = read_csv(run_dir / "metrics.csv")
    vehicles = read_csv(run_dir / "vehicles.csv")
    handovers = read_csv(run_dir / "handovers.csv")
    strategy_rows = read_csv(run_dir / "strategy.csv")
    rsus = read_csv(run_dir / "rsus.csv")
    makers = {
        "accuracy_loss": lambda p: fig_accuracy_loss(metrics, p),
        "latency": lambda p: fig_latency(metrics, p, vehicles),
        "energy": lambda p: fig_energy(metrics, p),
        "ranks": lambda p: fig_ranks(metrics, vehicles, p),
        "losses_handovers": lambda p: fig_losses_handovers(metrics, handovers, p),
        "strategy": lambda p: fig_strategy(strategy_rows, p),
        "map": lambda p: fig_map(run_dir, rsus, handovers, p, net_file),
    }
    out = []
    for name, make in makers.items():
        try:
            path = make(fig_dir / f"{name}.png")
        except Exception as e:  # noqa: BLE001 - one bad input (odd CSV, unreadable net) must not cost the others
            warnings.warn(f"figure {name} skipped: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
            path = None
        if path is not None:
            out.append(path)
    return out


def _task_panels(n: int, w: float = 4.6, h: float = 3.6):
    """A figure with n panels (up to 3 a row, each w x h inches); returns it and the n panels in
    order (spare panels of the last row hidden)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _new(nrows, ncols, w=w * ncols, h=h * nrows)
    flat = [axes[i // ncols, i % ncols] for i in range(nrows * ncols)]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def fig_seeds_accuracy(bands: dict[str, dict[str, tuple]], out: Path) -> Path | None:
    """Accuracy per round across seeds: mean line and 95 % interval band per group, one panel per task.

    `bands`: {group: {task: (rounds, mean, ci_low, ci_high)}}, computed by iovsim.runs.stats.round_bands."""
    tasks = list(dict.fromkeys(t for per_task in bands.values() for t in per_task))
    if not tasks:
        return None
    fig, panels = _task_panels(len(tasks))
    for t, ax in zip(tasks, panels):
        for j, (group, per_task) in enumerate(bands.items()):
            if t not in per_task:
                continue
            x, mean, low, high = per_task[t]
            c = TASK_COLORS[j % len(TASK_COLORS)]
            ax.plot(x, mean, "o-", ms=3, color=c, label=group)
            ax.fill_between(x, low, high, color=c, alpha=0.18, linewidth=0)
            if len(x) == 1:  # a band needs two rounds; one round gets an error bar
                ax.errorbar(x, mean, yerr=[mean - low, high - mean], color=c, capsize=4, fmt="none")
        ax.set_title(f"accuracy: {t}", fontsize=10)
        ax.set_ylabel("test accuracy (mean, 95 % CI)")
        _int_rounds(ax)
        ax.legend(fontsize=7)
    return _save(fig, out)


def fig_seeds_bars(panels: dict[str, list[tuple[str, float, float, float]]], out: Path) -> Path | None:
    """One bar per group with its 95 % interval as error bar, one panel per metric.

    `panels`: {axis label: [(group, mean, ci_low, ci_high), ...]}; a missing interval draws no bar end."""
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = _new(1, len(panels), w=4.4 * len(panels) + 1, h=3.8)
    for ax, (label, bars) in zip(axes[0], panels.items()):
        names = [b[0] for b in bars]
        mean = np.asarray([b[1] for b in bars], dtype=float)
        low = np.asarray([b[2] for b in bars], dtype=float)
        high = np.asarray([b[3] for b in bars], dtype=float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        ax.bar(range(len(bars)), mean, yerr=err, capsize=4,
               color=[TASK_COLORS[j % len(TASK_COLORS)] for j in range(len(bars))], alpha=0.85)
        ax.set_xticks(range(len(bars)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out)
