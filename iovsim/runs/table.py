"""The files a comparison or sweep leaves: `<kind>.csv` (statistics, full precision), `runs.csv` (one row
per run: status, error, peak memory, wall time) and `<kind>.md` (both, rounded for reading, after a
headline table: one row per group for task `all`, each cell a mean with its 95 % interval)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

RUN_COLUMNS = ["seed", "status", "attempts", "peak_rss_mb", "wall_time_s", "error", "run_dir"]


def runs_frame(records: list[dict], group_label: str) -> pd.DataFrame:
    rows = []
    for r in records:
        peak = r.get("peak_rss_bytes")
        rows.append({group_label: r["group"], "seed": r["seed"], "status": r["status"], "attempts": r["attempts"],
                     "peak_rss_mb": peak / 2**20 if peak else None, "wall_time_s": r.get("wall_time_s"),
                     "error": r.get("error", ""), "run_dir": r["run_dir"]})
    return pd.DataFrame(rows, columns=[group_label, *RUN_COLUMNS])


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"
    return str(v).replace("|", "\\|")


# The headline: task `all`, the metrics a researcher compares first (column title, metric).
HEADLINE = [("final accuracy", "final_accuracy"), ("accuracy over rounds", "mean_accuracy"),
            ("round latency [s]", "mean_round_latency_s"), ("energy [J]", "energy_j"),
            ("lost updates", "lost_updates"), ("uplink [MB]", "uplink_mb"), ("downlink [MB]", "downlink_mb")]


DIFF_KEYS = ("diff_mean", "diff_ci95_low", "diff_ci95_high", "diff_rel_pct", "p_value")


def with_ci(mean, low, high, signed: bool = False) -> str:
    """`0.712 [0.69, 0.73]` (`+0.012 [...]` when signed); the mean alone where there is no interval."""
    if not (isinstance(mean, float) and math.isfinite(mean)):
        return "-"
    sign = "+" if signed and mean > 0 else ""
    if not (math.isfinite(low) and math.isfinite(high)):
        return sign + fmt(mean)
    return f"{sign}{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def _diff(row) -> str:
    """`+0.012 [-0.01, 0.03], +1.7 %, p 0.21`: the paired difference, relative to the baseline's mean
    on the same seeds."""
    d = row["diff_mean"]
    if not (isinstance(d, float) and math.isfinite(d)):
        return "-"
    text = with_ci(d, row["diff_ci95_low"], row["diff_ci95_high"], signed=True)
    if math.isfinite(row["diff_rel_pct"]):
        text += f", {row['diff_rel_pct']:+.1f} %"
    p = row["p_value"]
    return text + (f", p {p:.2g}" if isinstance(p, float) and math.isfinite(p) else "")


def stat_cell(row, baseline: bool) -> str:
    """One summarize() row as a table cell: `mean [CI]`, and for a group other than the baseline its paired
    difference below it (`<br>Δ ...`)."""
    text = with_ci(float(row["mean"]), float(row["ci95_low"]), float(row["ci95_high"]))
    if not baseline:
        text += "<br>Δ " + _diff({k: float(row[k]) for k in DIFF_KEYS})
    return text


def stat_rows(table: pd.DataFrame, groups: list[str], metrics: list[str], baseline: str) -> list[list[str]]:
    """Per group, its task-`all` stat_cell of each metric ("-" where it has none), after the group's name."""
    rows = []
    for g in groups:
        cells = [g]
        for metric in metrics:
            r = table[(table.group == g) & (table.task == "all") & (table.metric == metric)]
            cells.append(stat_cell(r.iloc[0], baseline=g == baseline) if len(r) else "-")
        rows.append(cells)
    return rows


def headline(table: pd.DataFrame, group_col: str, baseline: str | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per group (task `all`), mean [95 % CI] per metric and, against the
    baseline, the paired difference [95 % CI], its size relative to the baseline's mean and p."""
    mine = table[table["task"] == "all"]
    header = [group_col, "seeds"]
    for title, _ in HEADLINE:
        header += [title] + ([f"Δ {title}"] if baseline else [])
    rows = []
    for g in dict.fromkeys(mine[group_col]):
        cells, n = [], 0
        for _, metric in HEADLINE:
            found = mine[(mine[group_col] == g) & (mine["metric"] == metric)]
            if found.empty:
                cells += ["-"] * (2 if baseline else 1)
                continue
            r = found.iloc[0]
            n = max(n, int(r["n"]))
            cells.append(with_ci(float(r["mean"]), float(r["ci95_low"]), float(r["ci95_high"])))
            if baseline:
                cells.append("baseline" if g == baseline else _diff({k: float(r[k]) for k in DIFF_KEYS}))
        rows.append([g, str(n), *cells])
    return header, rows


HEADLINE_NOTE = ("Task `all` (accuracies: mean of the tasks; latency: mean over rounds; energy, lost updates, and "
                 "the MB the vehicles sent (uplink) and received (downlink): summed over tasks and rounds); "
                 "mean [95 % CI]")


def headline_note(baseline: str | None) -> str:
    return HEADLINE_NOTE + (f"; Δ: paired difference against `{baseline}` [95 % CI], relative to its mean on the "
                            "same seeds, p." if baseline else ".")


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table's lines, cells through `fmt`."""
    return ["| " + " | ".join(map(fmt, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(fmt(v) for v in r) + " |" for r in rows)]


def _md(df: pd.DataFrame) -> list[str]:
    return md_table(list(df.columns), list(df.itertuples(index=False)))


def write_tables(out_dir: Path, kind: str, group_label: str, table: pd.DataFrame, records: list[dict],
                 baseline: str | None, seeds: list[int]) -> Path:
    """Write `<kind>.csv`, `runs.csv` and `<kind>.md` into out_dir; returns the CSV's path."""
    out_dir = Path(out_dir)
    table = table.rename(columns={"group": group_label})
    csv_path = out_dir / f"{kind}.csv"
    table.to_csv(csv_path, index=False)
    runs = runs_frame(records, group_label)
    runs.to_csv(out_dir / "runs.csv", index=False)
    failed = runs[runs["status"] != "finished"]
    head = [f"# iovsim {kind}", "",
            f"Seeds {', '.join(map(str, seeds))}; mean, sample standard deviation and 95 % t-interval over seeds"
            + (f"; Δ = paired difference against `{baseline}` on the same seeds (mean, 95 % t-interval, "
               "paired t-test p-value)." if baseline else "."),
            f"{len(runs) - len(failed)} of {len(runs)} runs finished.", ""]
    shown = table.drop(columns=["std", "diff_n"])
    shown.columns = [group_label, "task", "metric", "n", "mean", "CI low", "CI high", "Δ mean", "Δ CI low",
                     "Δ CI high", "Δ %", "p"]
    header, rows = headline(table, group_label, baseline)
    top = []
    if rows:
        top = ["## Across tasks", "", headline_note(baseline), "", *md_table(header, rows), "",
               "## Every task and metric", ""]
    lines = head + top + _md(shown) + ["", "## Runs", ""] + _md(runs.drop(columns=["run_dir"])) + [""]
    (out_dir / f"{kind}.md").write_text("\n".join(lines))
    return csv_path
