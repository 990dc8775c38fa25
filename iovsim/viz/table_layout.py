"""Column layout of the per-round table: today's one-line layout where the terminal is wide enough,
a compact one otherwise (two-line headers, task names abbreviated, the s.e. under its accuracy).

Each round prints its own one-row table, so every width here is fixed: rounds line up with the header.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

GAP_CHARS = 2  # rich's default padding (0, 1) on both sides of a column, outer edges unpadded
ACC_ONE_LINE_CHARS = 11  # "0.812±0.012"
ACC_TWO_LINE_CHARS = 6  # "0.812" over "±0.012"
NARROW_MIN_CHARS = 5  # "12345" (SUMO time, energy); longer values fold onto a second line, never cut

WIDE_TITLES = {"round": "round", "sumo_time_s": "SUMO t [s]", "participants": "part.",
               "lost_updates": "lost", "round_latency_s": "latency [s]", "energy_j": "E [J]"}
NARROW_TITLES = {**WIDE_TITLES, "sumo_time_s": "SUMO t\n[s]", "round_latency_s": "latency\n[s]",
                 "energy_j": "E\n[J]"}


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int


@dataclass(frozen=True)
class Layout:
    columns: list[Column]
    se_below: bool  # the standard error on a line of its own, under its accuracy
    legend: str  # "acc columns: tweet = tweet_sentiment, …"-style key when names were shortened; "" if none


def table_layout(keys: list[str], width_chars: int) -> Layout:
    """Today's layout if it fits in `width_chars`, else the compact one."""
    wide = [Column(k, _wide_title(k), max(len(_wide_title(k)), ACC_ONE_LINE_CHARS if _is_acc(k) else 6))
            for k in keys]
    if _total_chars(wide) <= width_chars:
        return Layout(wide, False, "")
    return _compact(keys, width_chars)


def _compact(keys: list[str], width_chars: int) -> Layout:
    others = {k: _narrow_width(NARROW_TITLES.get(k, k)) for k in keys if not _is_acc(k)}
    tasks = [k[4:] for k in keys if _is_acc(k)]
    spare = width_chars - sum(others.values()) - GAP_CHARS * (len(keys) - 1)
    acc_chars = spare // len(tasks) if tasks else 0
    se_below = acc_chars < ACC_ONE_LINE_CHARS
    # No wider than the longest name needs: spare room stays spare.
    acc_chars = max(ACC_TWO_LINE_CHARS, min(acc_chars, max([ACC_ONE_LINE_CHARS, *map(len, tasks)])))
    short = abbreviations(tasks, acc_chars)
    cols = [Column(k, f"acc\n{short[k[4:]]}", acc_chars) if _is_acc(k)
            else Column(k, NARROW_TITLES.get(k, k), others[k]) for k in keys]
    renamed = [f"{short[t]} = {t}" for t in tasks if short[t] != t]
    return Layout(cols, se_below, "acc columns: " + ", ".join(renamed) if renamed else "")


def abbreviations(names: list[str], width_chars: int) -> dict[str, str]:
    """A distinct name of at most `width_chars` for each of `names`: the name itself, else its first
    word ("tweet_sentiment" -> "tweet"), else its head, else head~tail; a shortened name is never the
    start of another name, so it cannot be read as that one."""
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        taken = set(out.values()) | {n for n in names[i + 1:] if len(n) <= width_chars}
        others = [n for n in names if n != name]

        def ok(c: str) -> bool:
            return c not in taken and (c == name or not any(o.startswith(c) for o in others))

        out[name] = next((c for c in _candidates(name, width_chars) if ok(c)), name[:width_chars])
    return out


def _candidates(name: str, w: int):
    if len(name) <= w:
        yield name
        return
    first = re.split(r"[_\-. ]", name)[0]
    if first and len(first) <= w:
        yield first
    yield name[:w]
    for head in range(w - 2, 0, -1):  # keep the end too, where names that share a start differ
        yield f"{name[:head]}~{name[len(name) - (w - 1 - head):]}"


def _is_acc(key: str) -> bool:
    return key.startswith("acc_")


def _wide_title(key: str) -> str:
    return WIDE_TITLES.get(key, key.replace("acc_", "acc "))


def _narrow_width(title: str) -> int:
    return max(NARROW_MIN_CHARS, *(len(line) for line in title.split("\n")))


def _total_chars(cols: list[Column]) -> int:
    return sum(c.width for c in cols) + GAP_CHARS * (len(cols) - 1)
