"""Self-contained HTML reports: one per run (`write_report`) and one per comparison or sweep over
seeds (`write_seeds_report`).

Figures are embedded as base64 PNGs, so a report is one file that can be mailed or archived.
"""
from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path

import numpy as np

from iovsim.runs.table import headline, headline_note
from iovsim.viz.plots import (FIGURES, fig_seeds_accuracy, fig_seeds_bars, has_cols, make_figures, num, read_csv,
                              tasks_of)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 9px; text-align: right; }
th { background: #f2f4f7; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.meta { color: #555; }
"""


def fmt(v) -> str:
    """Numbers as in the tables: 4 significant digits, integers as integers, missing as '-'."""
    if v is None or v == "":
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "-"
        if float(v).is_integer() and abs(v) < 1e9:
            return str(int(v))
        return f"{v:.4g}"
    if isinstance(v, str):
        try:
            return fmt(float(v))
        except ValueError:
            return v
    return str(v)


def img_tag(png: Path, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def html_table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(fmt(v))}</td>'
                                     for i, v in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, parts: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")


def summary_rows(metrics: list[dict]) -> list[dict]:
    """Per task: final and mean accuracy, mean round latency, energy (and budget), lost updates, handovers."""
    out = []
    for t in tasks_of(metrics):
        mine = sorted((r for r in metrics if r["task"] == t), key=lambda r: num(r["round"]))
        col = lambda k: np.array([num(r.get(k)) for r in mine], dtype=float)  # noqa: E731

        def total(k):
            v = col(k)
            return float(np.nansum(v)) if np.isfinite(v).any() else None

        def mean(k):
            v = col(k)
            return float(np.nanmean(v)) if np.isfinite(v).any() else None

        acc, se = col("accuracy"), col("accuracy_se")
        scored = np.flatnonzero(np.isfinite(acc))  # fl.eval_every: the last evaluated round
        budget = col("energy_budget_j")
        out.append({
            "task": t, "rounds": len(mine),
            "final_accuracy": float(acc[scored[-1]]) if len(scored) else None,
            "final_accuracy_se": float(se[scored[-1]]) if len(scored) and np.isfinite(se[scored[-1]]) else None,
            "best_accuracy": float(np.nanmax(acc)) if np.isfinite(acc).any() else None,
            "mean_round_latency_s": mean("round_latency_s"),
            "energy_j": total("energy_j"),
            "energy_budget_j": float(np.nansum(budget)) if np.isfinite(budget).any() and np.nanmax(budget) > 0 else None,
            "lost_updates": total("lost_updates"),
            "migrated": total("migrated"),
            "early": total("early"),
            "participants": total("participants"),
            "handovers": total("handovers"),
        })
    return out


SUMMARY_HEADER = ["task", "rounds", "final accuracy", "± s.e.", "best accuracy", "mean round latency [s]", "energy [J]",
                  "energy budget [J]", "lost updates", "migrated", "early uploads", "participants", "handovers"]


def write_report(run_dir: Path, net_file: Path | None = None) -> Path:
    """Make the figures and write run_dir/report.html (figures embedded, config, summary table)."""
    run_dir = Path(run_dir)
    pngs = make_figures(run_dir, net_file=net_file)
    metrics = read_csv(run_dir / "metrics.csv") or []
    summary = {}
    if (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except ValueError:
            summary = {}
    name = summary.get("name") or run_dir.name
    parts = [f"<h1>iovsim run: {html.escape(str(name))}</h1>",
             f'<p class="meta">run folder <code>{html.escape(str(run_dir.resolve()))}</code> · report written '
             f'{time.strftime("%Y-%m-%d %H:%M:%S")}</p>']
    meta_keys = [("strategy", "strategy"), ("seed", "seed"), ("rounds", "rounds"), ("finished", "finished"),
                 ("fl_vehicles_enrolled", "FL vehicles enrolled"), ("num_rsus", "RSUs"),
                 ("net_file", "net file"), ("wall_time_s", "wall time [s]")]
    meta = [[label, summary[k]] for k, label in meta_keys if k in summary]
    if "peak_rss_bytes" in summary:
        meta.append(["peak memory [MiB]", float(summary["peak_rss_bytes"]) / 2**20])
    if meta:
        parts += ["<h2>Run</h2>", html_table(["", "value"], meta, left=2)]
    parts.append("<h2>Summary per task</h2>")
    if metrics and has_cols(metrics, "round", "task"):
        rows = summary_rows(metrics)
        keys = ["task", "rounds", "final_accuracy", "final_accuracy_se", "best_accuracy", "mean_round_latency_s",
                "energy_j", "energy_budget_j", "lost_updates", "migrated", "early", "participants", "handovers"]
        parts.append(html_table(SUMMARY_HEADER, [[r[k] for k in keys] for r in rows]))
        parts.append('<p class="meta">s.e. = binomial standard error of the final accuracy on the task\'s test '
                     "set (sqrt(p (1 - p) / n), n in metrics.csv's test_samples). "
                     "Energy, lost updates, migrated updates (delivered through a handover) and early "
                     "uploads (delivered after the local steps that fit the dwell) are summed over rounds; handovers "
                     "are those of FL vehicles in the whole network, counted per round (the same on every task's "
                     "row).</p>")
    else:
        parts.append("<p>No metrics.csv rows yet.</p>")
    parts.append("<h2>Figures</h2>")
    for p in pngs:
        title = FIGURES.get(p.stem, p.stem)
        parts.append(f"<figure>{img_tag(p, title)}<figcaption>{html.escape(title)} "
                     f"(<code>figures/{html.escape(p.name)}</code>)</figcaption></figure>")
    cfg = run_dir / "config.yaml"
    if cfg.is_file():
        parts += ["<h2>Resolved configuration (config.yaml)</h2>", f"<pre>{html.escape(cfg.read_text())}</pre>"]
    out = run_dir / "report.html"
    out.write_text(_page(f"iovsim report: {name}", parts), encoding="utf-8")
    return out


BAR_METRICS = [("final_accuracy", "final accuracy, mean of tasks"), ("mean_round_latency_s", "round latency [s]"),
               ("energy_j", "energy, all tasks [J]")]


def bar_panels(rows: list[dict], diff: bool) -> dict[str, list[tuple]]:
    """Task `all` rows of the statistics table as bar panels: the means, or the paired differences."""
    cols = ("diff_mean", "diff_ci95_low", "diff_ci95_high") if diff else ("mean", "ci95_low", "ci95_high")
    panels = {}
    for metric, label in BAR_METRICS:
        mine = [r for r in rows if r["task"] == "all" and r["metric"] == metric and num(r.get(cols[0])) == num(r.get(cols[0]))]
        panels[("Δ " if diff else "") + label] = [(r["group"], *(num(r.get(c)) for c in cols)) for r in mine]
    return panels


def write_seeds_report(out_dir: Path, kind: str, group_label: str, table, records: list[dict],
                       bands: dict, baseline: str | None) -> Path:
    """`iovsim compare|sweep` over seeds: out_dir/report.html with the statistics table, the runs (status,
    error, peak memory), accuracy per round with 95 % bands, and bars with 95 % intervals."""
    out_dir = Path(out_dir)
    rows = table.to_dict("records")
    fig_dir = out_dir / "figures"
    figs = [(fig_seeds_accuracy(bands, fig_dir / f"{kind}_accuracy.png"),
             "Accuracy per round and task: mean over seeds, band = 95 % t-interval"),
            (fig_seeds_bars(bar_panels(rows, diff=False), fig_dir / f"{kind}_bars.png"),
             "Final accuracy, round latency and energy: mean over seeds with 95 % t-intervals"),
            (fig_seeds_bars(bar_panels(rows, diff=True), fig_dir / f"{kind}_paired.png"),
             f"Paired differences against {baseline} on the same seeds, with 95 % t-intervals")]
    seeds = sorted({r["seed"] for r in records})
    finished = sum(r["status"] == "finished" for r in records)
    parts = [f"<h1>iovsim {html.escape(kind)}: {html.escape(', '.join(dict.fromkeys(r['group'] for r in records)))}</h1>",
             f'<p class="meta">folder <code>{html.escape(str(out_dir.resolve()))}</code> · seeds '
             f'{html.escape(", ".join(map(str, seeds)))} · {finished} of {len(records)} runs finished · within a seed '
             f'every {html.escape(group_label)} sees the same traffic, channel, data split and initialisation · '
             f'written {time.strftime("%Y-%m-%d %H:%M:%S")}</p>',
             "<h2>Across seeds</h2>",
             f'<p class="meta">mean, sample standard deviation, 95 % t-interval; Δ: paired difference against '
             f'<b>{html.escape(str(baseline))}</b> on the same seeds, its 95 % t-interval and the paired t-test p-value '
             "(scipy.stats.ttest_rel).</p>"]
    header, top = headline(table, "group", baseline)
    if top:
        parts += [f'<p class="meta">{html.escape(headline_note(baseline).replace("`", ""))}</p>',
                  html_table([group_label, *header[1:]], top, left=1), "<h3>Every task and metric</h3>"]
    cols = ["group", "task", "metric", "n", "mean", "std", "ci95_low", "ci95_high", "diff_mean", "diff_ci95_low",
            "diff_ci95_high", "p_value"]
    header = [group_label, "task", "metric", "n", "mean", "std", "CI low", "CI high", "Δ mean", "Δ CI low",
              "Δ CI high", "p"]
    parts.append(html_table(header, [[r.get(c) for c in cols] for r in rows], left=3))
    parts.append("<h2>Figures</h2>")
    for png, title in figs:
        if png is not None:
            parts.append(f"<figure>{img_tag(png, title)}<figcaption>{html.escape(title)}</figcaption></figure>")
    run_rows = [[r["group"], r["seed"], r["status"], r["attempts"],
                 r["peak_rss_bytes"] / 2**20 if r.get("peak_rss_bytes") else None, r.get("wall_time_s"),
                 r.get("error") or ""] for r in records]
    parts += ["<h2>Runs</h2>", '<p class="meta">each run in its own process; peak memory is that process\'s own '
              "maximum resident set size.</p>",
              html_table([group_label, "seed", "status", "attempts", "peak RSS [MiB]", "wall time [s]", "error"],
                         run_rows, left=1)]
    out = out_dir / "report.html"
    out.write_text(_page(f"iovsim {kind}", parts), encoding="utf-8")
    return out
