"""Compare a run's CSV logs with committed golden files: exact where float rounding cannot reach,
within a stated tolerance where it can.

numpy and torch pick SIMD kernels by CPU (AVX2, AVX-512, NEON; numpy's transcendental functions use
SVML on AVX-512), so the same run on another CPU differs in the last bits of its floats, and the
6-significant-digit cells of the logs (`engine.logs._fmt`) can differ in their last printed digit.
Everything else — rounds, vehicles, participants, statuses, RSUs, ranks, transfer modes, handover
rows, counts — must be equal as text. A mismatch names the file, row, column and the size of the
difference.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

# Relative tolerance by kind of quantity, on top of one unit in the last printed digit (the cells are
# printed with 6 significant digits, so a difference of 1 ulp can cross a rounding boundary).
# - physics (times, energies, rates, powers, RSRP, positions, predicted dwell, bits moved in a time): numpy's float64
#   log10/pow/exp differ by a few ulp between SVML and glibc; 1e-5 relative is ~1e10 ulp of margin,
#   yet far below any change of behaviour (one more SUMO step is >= 1e-3 relative).
# - losses: fp32 training, where the kernels' summation order differs by CPU; after a few AdamW steps
#   the loss agrees to ~1e-6 relative; 1e-4 leaves room for other CPUs (arm64) and stays below
#   the effect of one training step changing (>= 1e-2).
# - accuracies: a prediction whose two best logits are within fp32 noise may flip on another CPU;
#   one test sample is the smallest honest allowance (1/n), and accuracy_se follows the accuracy.
PHYSICS_REL = 1e-5
LOSS_REL = 1e-4

PHYSICS = {"tx_power_w", "bandwidth_hz", "download_time_s", "compute_time_s", "upload_time_s", "latency_s",
           "energy_j", "dwell_pred_s", "round_latency_s", "wait_time_s", "energy_budget_j", "rsrp_from_dbm",
           "rsrp_to_dbm", "x_m", "y_m", "bits_up", "bits_down", "uplink_bits", "downlink_bits", "edge_compute_s",
           "edge_wait_s", "edge_energy_j"}
LOSSES = {"loss", "loss_before", "loss_after"}
ACCURACIES = {"accuracy", "accuracy_se", "acc_after"}


@dataclass(frozen=True)
class Mismatch:
    file: str
    row: int            # 1-based data row (the header is row 0)
    column: str
    golden: str
    actual: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row} column {self.column}: golden {self.golden!r}, got {self.actual!r} ({self.detail})"


def _last_digit(text: str) -> float:
    """One unit in the last printed significant digit of a %.6g cell."""
    v = abs(float(text))
    if v == 0.0 or not math.isfinite(v):
        return 0.0
    mantissa = text.lower().split("e")[0].lstrip("+-")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    return 10.0 ** (exponent - decimals)


def _float_cell(column: str, golden: str, actual: str, acc_n: int | None) -> str | None:
    """None when within tolerance, else the size of the difference in words."""
    try:
        g, a = float(golden), float(actual)
    except ValueError:
        return "not a number" if golden != actual else None
    if math.isnan(g) or math.isnan(a):
        return None if math.isnan(g) and math.isnan(a) else "one side is NaN"
    diff = abs(a - g)
    quantum = max(_last_digit(golden), _last_digit(actual))
    if column in ACCURACIES:
        allowed = (1.0 / acc_n if acc_n else 0.0) + quantum
        what = f"one test sample of {acc_n}" if acc_n else "no test samples"
    else:
        rel = LOSS_REL if column in LOSSES else PHYSICS_REL
        allowed = rel * max(abs(g), abs(a)) + quantum
        what = f"relative {rel:g}"
    if diff <= allowed * (1 + 1e-9):
        return None
    rel_diff = diff / max(abs(g), abs(a))
    return f"difference {diff:.3g} (relative {rel_diff:.3g}) exceeds {what} + last digit"


def compare_csv(actual: Path, golden: Path, min_samples: dict[str, int] | None = None) -> list[Mismatch]:
    """Every cell of `actual` against `golden`: floats within their tolerance, all else as text.

    An accuracy may move by one sample: of `test_samples` in the same row, else of
    `min_samples[column]` (the smallest set it can be computed on).
    """
    name = golden.name
    with open(golden, newline="") as f:
        g_rows = list(csv.reader(f))
    with open(actual, newline="") as f:
        a_rows = list(csv.reader(f))
    if g_rows[:1] != a_rows[:1]:
        return [Mismatch(name, 0, "(header)", ",".join(g_rows[0]), ",".join(a_rows[0]) if a_rows else "", "header differs")]
    header = g_rows[0]
    out = []
    if len(g_rows) != len(a_rows):
        out.append(Mismatch(name, 0, "(rows)", str(len(g_rows) - 1), str(len(a_rows) - 1), "number of rows differs"))
    for i, (g, a) in enumerate(zip(g_rows[1:], a_rows[1:]), start=1):
        g_map, a_map = dict(zip(header, g)), dict(zip(header, a))
        n = g_map.get("test_samples")
        for col in header:
            acc_n = int(n) if n and n.isdigit() else (min_samples or {}).get(col)
            gv, av = g_map.get(col, ""), a_map.get(col, "")
            if gv == av:
                continue
            if col in PHYSICS | LOSSES | ACCURACIES:
                detail = _float_cell(col, gv, av, acc_n)
                if detail is None:
                    continue
            else:
                detail = "must be equal: float rounding does not reach this column"
            out.append(Mismatch(name, i, col, gv, av, detail))
    return out


def identical_bytes(a: Path, b: Path) -> str | None:
    """None when identical; else where the first difference is (file, line, both lines)."""
    x, y = a.read_bytes(), b.read_bytes()
    if x == y:
        return None
    xl, yl = x.splitlines(), y.splitlines()
    for i, (p, q) in enumerate(zip(xl, yl)):
        if p != q:
            return f"{a.name} line {i + 1}: {p.decode(errors='replace')!r} vs {q.decode(errors='replace')!r}"
    return f"{a.name}: {len(xl)} lines vs {len(yl)} lines"
