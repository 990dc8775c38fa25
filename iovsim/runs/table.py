"""The files a comparison or sweep leaves: `<kind>.csv` (statistics, full precision), `runs.csv` (one row
per run: status, error, peak memory, wall time) and `<kind>.md` (both, rounded for reading)."""
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


def _md(df: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return lines


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
                     "Δ CI high", "p"]
    lines = head + _md(shown) + ["", "## Runs", ""] + _md(runs.drop(columns=["run_dir"])) + [""]
    (out_dir / f"{kind}.md").write_text("\n".join(lines))
    return csv_path
