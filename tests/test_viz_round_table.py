"""The per-round table stays readable in an 80-column terminal: nothing cut with '…', every accuracy
with its standard error in full (the paper config's 4 tasks), today's one-line layout where it fits."""
from __future__ import annotations

import io
import re

from rich.console import Console

from iovsim.viz.progress import Progress
from iovsim.viz.table_layout import abbreviations

PAPER_TASKS = ["tweet_sentiment", "bbc_news", "sst2", "qnli"]  # sumo_scenarios/ucb_dual_paper.yaml
ACC = [0.5371, 0.6412, 0.7523, 0.8634]
SE = [0.0157, 0.0111, 0.0122, 0.0133]


def _render(width: int, tasks: list[str], rounds=(1, 12)) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    p = Progress(console=console)
    for r in rounds:  # one table per round, as the engine prints them
        row = {"round": r, "sumo_time_s": 1320.0}
        for t, a, s in zip(tasks, ACC, SE):
            row.update({f"acc_{t}": a, f"se_{t}": s})
        row.update(participants=12, lost_updates=3, round_latency_s=123.456, energy_j=12345.6)
        p.round_table([row])
    return [line.rstrip() for line in console.export_text().splitlines()]


def _readable(lines: list[str], acc: str, se: str) -> int:
    """How many times `acc` with its `±se` can be read: on one line, or `±se` right under `acc`."""
    n = sum(line.count(f"{acc}±{se}") for line in lines)
    for i, line in enumerate(lines[:-1]):
        for m in re.finditer(re.escape(acc), line):
            below = lines[i + 1][m.end() - len(se) - 1:m.end()]
            n += below == f"±{se}"
    return n


def test_four_tasks_fit_80_columns_uncut():
    lines = _render(80, PAPER_TASKS)
    text = "\n".join(lines)
    assert "…" not in text
    assert max(map(len, lines)) <= 80
    for a, s in zip(ACC, SE):
        assert _readable(lines, f"{a:.3f}", f"{s:.3f}") == 2, text  # both rounds
    assert "12346" in text and "123.5" in text and "1320" in text
    header = " ".join(lines[:4])
    for word in ("round", "SUMO", "[s]", "part.", "lost", "latency", "[J]", "sst2", "qnli", "tweet", "bbc"):
        assert re.search(rf"(^|\s){re.escape(word)}(\s|$)", header), (word, text)
    assert "tweet = tweet_sentiment" in text and "bbc = bbc_news" in text  # abbreviations explained once
    assert text.count("acc columns:") == 1


def test_rounds_line_up_with_the_header():
    lines = _render(80, PAPER_TASKS)
    ends = [[m.end() for m in re.finditer(r"\S+", line)] for line in lines if line.lstrip().startswith(("1 ", "12 "))]
    assert len(ends) == 2 and ends[0] == ends[1]


def test_two_tasks_at_80_columns_one_line_per_round_full_names():
    lines = _render(80, PAPER_TASKS[:2])
    text = "\n".join(lines)
    assert "…" not in text and max(map(len, lines)) <= 80
    assert "tweet_sentiment" in text and "bbc_news" in text and "acc columns" not in text
    assert text.count("0.537±0.016") == 2 and text.count("0.641±0.011") == 2


def test_wide_terminal_keeps_the_one_line_layout():
    text = "\n".join(_render(140, PAPER_TASKS))
    assert "acc tweet_sentiment" in text and "latency [s]" in text and "SUMO t [s]" in text
    assert text.count("0.863±0.013") == 2 and "…" not in text and "acc columns" not in text


def test_abbreviations_are_distinct_and_fit():
    assert abbreviations(PAPER_TASKS, 7) == {"tweet_sentiment": "tweet", "bbc_news": "bbc", "sst2": "sst2",
                                             "qnli": "qnli"}
    names = ["glue_sst2_dev", "glue_sst2_test", "glue", "glue_qnli"]
    short = abbreviations(names, 7)
    assert len(set(short.values())) == len(names) and all(len(v) <= 7 for v in short.values())
    assert short["glue"] == "glue"  # a name that fits is never taken by another's abbreviation
    for name, s in short.items():  # and no abbreviation reads as the start of another task's name
        assert s == name or not any(o.startswith(s) for o in names if o != name), short
    assert abbreviations(["tweet_sentiment", "tweet_sarcasm"], 7)["tweet_sentiment"] != "tweet"
