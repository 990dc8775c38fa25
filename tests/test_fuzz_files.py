"""Missing and corrupted input files of every kind, through the CLI in-process.

Each case must end with exit status 2, exactly one stderr line naming the file, no traceback, and
leave an existing run folder byte-identical when it is resumed with the broken input. A SUMO
process killed mid-run must end the run the same way, naming the last checkpoint and the command
that continues from it. `pytest tests/test_fuzz_files.py -s` prints the table of cases.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import random
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from iovsim import cli

from conftest import grid_net_file

pytestmark = pytest.mark.slow

ROUTES = """<routes>
    <vType id="car" maxSpeed="15"/>
    <flow id="f0" type="car" begin="0" end="3000" period="4" from="A0A1" to="C2C3"/>
    <flow id="f1" type="car" begin="0" end="3000" period="5" from="C3C2" to="A1A0"/>
    <flow id="f2" type="car" begin="0" end="3000" period="6" from="A0B0" to="B3C3"/>
</routes>
"""
ADDITIONAL = '<additional>\n    <vType id="truck" vClass="truck" maxSpeed="10"/>\n</additional>\n'
SUMOCFG = """<configuration>
    <input>
        <net-file value="grid.net.xml"/>
        <route-files value="routes.rou.xml"/>
        <additional-files value="extra.add.xml"/>
    </input>
</configuration>
"""
RSU_CSV = "x,y\n100,100\n300,300\n500,100\n"
RSU_POI = ('<additional>\n    <poi id="r0" x="100" y="100"/>\n    <poi id="r1" x="300" y="300"/>\n'
           '    <poi id="r2" x="500" y="100"/>\n</additional>\n')
TRACES_CSV = "id,time,lat,lon\ncab1,0,52.51,13.39\ncab1,10,52.511,13.391\n"
FCD = ('<fcd-export>\n    <timestep time="0"><vehicle id="a" x="100" y="100" speed="5"/></timestep>\n'
       '    <timestep time="1"><vehicle id="a" x="104" y="100" speed="5"/></timestep>\n</fcd-export>\n')

# kind -> (file name, good content, content of another kind for the wrong-schema case)
KINDS = {
    "net": ("grid.net.xml", None, ROUTES),
    "routes": ("routes.rou.xml", ROUTES, '<net version="1.20"/>\n'),
    "additionals": ("extra.add.xml", ADDITIONAL, '<routes>\n    <vehicle id="x" depart="0"/>\n</routes>\n'),
    "sumocfg": ("scenario.sumocfg", SUMOCFG, ADDITIONAL),
    "rsu_csv": ("rsus.csv", RSU_CSV, "name;height\nmast;12\n"),
    "rsu_poi": ("rsus.poi.xml", RSU_POI, ROUTES),
    "traces_csv": ("traces.csv", TRACES_CSV, "name;height\nmast;12\n"),
    "fcd": ("trace.fcd.xml", FCD, ROUTES),
}


def _corruptions(good: bytes, other: str, xml: bool) -> dict:
    """The generic damages of a file: each a function of the good bytes (None = the file is missing)."""
    rng = random.Random(15)
    return {
        "missing": None,
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not_xml" if xml else "not_csv": b"this is { not [ what was expected\n\x01" if xml else b'{"json": [1, 2\n',
        "wrong_schema": other.encode(),
        "binary": bytes(rng.randrange(256) for _ in range(512)),
    }


def _extra_cases() -> list[tuple[str, str, bytes | None, list[str]]]:
    """Damages specific to one kind: (kind, case, content, extra --set options)."""
    bad_edge = ROUTES.replace('to="C2C3"', 'to="NOPE"').encode()
    late_bad = ROUTES.replace("</routes>", '    <vehicle id="late" depart="25"><route edges="A0A1 NOPE"/></vehicle>\n'
                              "</routes>").encode()
    return [
        ("routes", "unknown_edge", bad_edge, []),
        ("routes", "unknown_edge_mid_run", late_bad, ["mobility.sumo_args=[--route-steps, '5']"]),
        ("additionals", "unknown_element_attr", b'<additional>\n    <busStop id="b" lane="NOPE_0" startPos="0"'
         b' endPos="10"/>\n</additional>\n', []),
        ("sumocfg", "net_file_missing", SUMOCFG.replace("grid.net.xml", "nowhere.net.xml").encode(), []),
        ("sumocfg", "no_input_section", b"<configuration/>\n", []),
        ("options", "unknown_sumo_option", None, ["mobility.sumo_args=[--no-such-option, '1']"]),
        ("rsu_csv", "text_in_number", b"x,y\n100,abc\n", []),
        ("rsu_csv", "off_the_map", b"x,y\n99999,99999\n", []),
        ("traces_csv", "ragged_row", b"id,time,lat,lon\ncab1,0,52.5\n", []),
        ("fcd", "no_timesteps", b"<fcd-export/>\n", []),
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A 4x4 grid net made by netgenerate, flows on it, and one good file of every kind."""
    d = tmp_path_factory.mktemp("fuzz_inputs")
    grid_net_file(d / "grid.net.xml", 4)
    for name, good, _ in KINDS.values():
        if good is not None:
            (d / name).write_text(good)
    cfg = {
        "name": "fuzz", "seed": 3,
        "mobility": {"scenario": "scenario.sumocfg", "warmup_s": 10, "end_s": 3000, "fl_vehicles": 6},
        "rsu": {"placement": "file", "file": "rsus.csv"},
        "fl": {"rounds": 40, "participants_per_round": 2, "local_steps": 1, "batch_size": 4, "round_deadline_s": 20,
               "round_interval_s": 5, "samples_per_vehicle": 8, "min_samples_per_vehicle": 4,
               "tasks": [{"name": "tweets", "dataset": "tweet_sentiment", "max_samples": 120, "test_samples": 16,
                          "max_length": 24}]},
        "output": {"report": False},
    }
    (d / "fuzz.yaml").write_text(yaml.safe_dump(cfg))
    (d / "fuzz_traci.yaml").write_text(yaml.safe_dump({**cfg, "mobility": {**cfg["mobility"], "backend": "traci"}}))
    return d


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(capsys, *argv) -> tuple[int, list[str]]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _sumo_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name().startswith("sumo")]


@pytest.fixture(scope="module")
def killed_run(files, tmp_path_factory):
    """A traci run whose SUMO process is killed once round 1 is checkpointed: (run folder, exit code, stderr)."""
    run = tmp_path_factory.mktemp("killed") / "run"
    ckpt = run / "checkpoints" / "round_0001" / "state.json"
    killed = []

    def killer():
        deadline = time.time() + 600
        while time.time() < deadline and not ckpt.exists():
            time.sleep(0.05)
        for p in _sumo_children():
            p.kill()
            killed.append(p.pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    buf = io.StringIO()   # capsys is per test; this fixture is per module
    with contextlib.redirect_stderr(buf):
        code = cli.main(["run", str(files / "fuzz_traci.yaml"), "--out", str(run), "--quiet"])
    t.join(timeout=5)
    assert killed, "the SUMO child process was never seen"
    return run, code, [x for x in buf.getvalue().splitlines() if x.strip()]


def test_sumo_killed_mid_run_names_checkpoint_and_resume(killed_run):
    run, code, err = killed_run
    print(f"\nkilled SUMO mid-run: exit {code}; stderr: {err}")
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    last = sorted((run / "checkpoints").glob("round_*/state.json"))[-1].parent
    assert f"checkpoint is round {int(last.name.split('_')[1])} ({last})" in err[0]
    assert f"iovsim run --resume {run}" in err[0]
    assert "SIGKILL" in err[0]
    # Everything written stays: the config, the logs up to the last round, SUMO's log.
    for name in ("config.yaml", "metrics.csv", "vehicles.csv", "summary.json", "sumo/sumo_log.txt"):
        assert (run / name).exists(), name


def _cases(files: Path):
    for kind, (name, good, other) in KINDS.items():
        good_bytes = (files / name).read_bytes()
        for case, content in _corruptions(good_bytes, other, name.endswith(".xml") or kind == "sumocfg").items():
            yield kind, case, name, content, []
    for kind, case, content, sets in _extra_cases():
        yield kind, case, (KINDS[kind][0] if kind in KINDS else ""), content, sets


def _argv(kind: str, files: Path, name: str, out: Path, sets: list[str]) -> list:
    if kind in ("traces_csv", "fcd"):
        return ["trajectories", "import", files / name, "--net", files / "grid.net.xml", "--out", out]
    argv = ["run", files / "fuzz.yaml", "--out", out, "--quiet"]
    if kind == "rsu_poi":
        sets = sets + ["rsu.file=rsus.poi.xml"]
    for s in sets:
        argv += ["--set", s]
    return argv


def test_fuzz_corrupted_files(files, killed_run, tmp_path, capsys):
    run, _, _ = killed_run
    poi_run = tmp_path / "poi_run"         # the same run folder, its config pointing at the POI file
    shutil.copytree(run, poi_run)
    saved = yaml.safe_load((poi_run / "config.yaml").read_text())
    saved["rsu"]["file"] = str(files / "rsus.poi.xml")
    (poi_run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    existing_traces = tmp_path / "traces_out"    # an existing output folder of `iovsim trajectories`
    existing_traces.mkdir()
    (existing_traces / "import_report.json").write_text('{"trips": 3}\n')

    report, failures = [], []
    for i, (kind, case, name, content, sets) in enumerate(_cases(files)):
        path = files / name if name else None
        good = path.read_bytes() if path is not None else None
        if path is not None:
            path.unlink()
            if content is not None:
                path.write_bytes(content)
        try:
            outcomes = []
            out = tmp_path / f"fresh_{i}"
            code, err = _cli(capsys, *_argv(kind, files, name, out, sets))
            outcomes.append(("new", code, err))
            if kind in ("traces_csv", "fcd"):
                target = existing_traces
                argv = ["trajectories", "import", files / name, "--net", files / "grid.net.xml", "--out", target]
            elif not sets:
                target = poi_run if kind == "rsu_poi" else run
                argv = ["run", "--resume", target, "--quiet"]
            else:
                target, argv = None, None
            if argv is not None:
                before = _hashes(target)
                code, err = _cli(capsys, *argv)
                after = _hashes(target)
                # sumo/resume/ holds the latest resume attempt's SUMO log; every other file must stay as it was.
                changed = [k for k in {*before, *after} if after.get(k) != before.get(k)
                           and not k.startswith("sumo/resume/")]
                outcomes.append(("existing", code, err, changed))
        finally:
            if path is not None and good is not None:
                path.write_bytes(good)
        for o in outcomes:
            code, err = o[1], o[2]
            token = name or "sumo_args"
            ok = code == 2 and len(err) == 1 and "Traceback" not in err[0] and token in err[0] \
                and (len(o) < 4 or not o[3])
            report.append(f"{'ok  ' if ok else 'FAIL'} {kind:12s} {case:22s} {o[0]:8s} exit {code}: "
                          f"{err[0] if len(err) == 1 else err}" + (f" changed {o[3]}" if len(o) > 3 and o[3] else ""))
            if not ok:
                failures.append(report[-1])
    with capsys.disabled():
        print(f"\n{len(report)} outcomes over {len(list(_cases(files)))} cases, {len(failures)} failing")
        print("\n".join(report))
    assert len(list(_cases(files))) >= 40
    assert not failures, "\n".join(failures)
