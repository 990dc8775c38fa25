"""Experiment trackers against real runs: what TensorBoard's EventAccumulator and MLflow's client read
back from the run folder equals metrics.csv, config.yaml and figures/; a resumed run appends without
logging a round twice; a configured tracker whose extra is missing is one config error."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, csv_rows, iovsim, tiny_config
from iovsim.config import ConfigError, config_from_dict
from iovsim.trackers import TRACKERS, missing_extra
from iovsim.trackers.values import flatten, metric_name

pytestmark = pytest.mark.slow
INSTALLED = [t for t in TRACKERS if not missing_extra(t)]


def need(name: str) -> None:
    if missing_extra(name):
        pytest.skip(f"{name} not installed (pip install 'iovsim[{name}]')")


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """The tiny experiment with every installed tracker, through the CLI, with its report and figures."""
    if not INSTALLED:
        pytest.skip("neither tensorboard nor mlflow installed (pip install 'iovsim[tensorboard,mlflow]')")
    d = tmp_path_factory.mktemp("trackers")
    cfg = d / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"fl.round_interval_s": 20, "output.report": True,
                                                 "output.trackers": INSTALLED})))
    out = iovsim("run", cfg, "--out", d / "run", "--quiet", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return d / "run"


def expected_scalars(run_dir) -> dict[str, dict[int, float]]:
    """metrics.csv as {task/column: {round: value}}, blank cells left out."""
    out: dict[str, dict[int, float]] = {}
    for row in csv_rows(run_dir / "metrics.csv"):
        for col, v in row.items():
            if col not in ("round", "task") and v != "":
                out.setdefault(metric_name(row["task"], col), {})[int(row["round"])] = float(v)
    return out


def expected_params(run_dir) -> dict:
    return flatten(yaml.safe_load((run_dir / "config.yaml").read_text()))


def tensorboard_scalars(run_dir) -> tuple[dict[str, list[tuple[int, float]]], object]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


def mlflow_run(run_dir):
    from mlflow.tracking import MlflowClient

    from iovsim.trackers.mlflow_store import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(run_dir))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, f"{len(runs)} MLflow runs in one run folder"
    return client, runs[0]


def mlflow_scalars(client, run) -> dict[str, list[tuple[int, float]]]:
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
            for k in run.data.metrics}


def assert_same_as_csv(got: dict, want: dict, rel: float):
    assert set(got) == set(want), f"tags differ: {sorted(set(got) ^ set(want))}"
    for tag, by_round in want.items():
        steps = [s for s, _ in got[tag]]
        assert steps == sorted(by_round), f"{tag}: steps {steps}, metrics.csv has rounds {sorted(by_round)}"
        for step, value in got[tag]:
            assert value == pytest.approx(by_round[step], rel=rel, abs=1e-9, nan_ok=True), (tag, step)


def test_tensorboard_holds_metrics_config_and_figures(tracked_run):
    need("tensorboard")
    from tensorboard.plugins.hparams import plugin_data_pb2

    got, acc = tensorboard_scalars(tracked_run)
    assert len(got) >= 2 * 15
    assert_same_as_csv(got, expected_scalars(tracked_run), rel=1e-5)  # float32 in the event file
    data = plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in data.session_start_info.hparams.items()}
    want = expected_params(tracked_run)
    assert set(hp) == set(want) and hp["fl.rounds"] == 2 and hp["fl.tasks.0.name"] == "tweets"
    for k, v in want.items():
        assert hp[k] == (pytest.approx(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v), k
    figures = sorted(p.stem for p in (tracked_run / "figures").glob("*.png"))
    assert figures and sorted(t.split("/", 1)[1] for t in acc.Tags()["images"]) == figures


def test_mlflow_holds_metrics_config_and_figures(tracked_run, tmp_path):
    need("mlflow")
    client, run = mlflow_run(tracked_run)
    assert run.info.status == "FINISHED"
    assert_same_as_csv(mlflow_scalars(client, run), expected_scalars(tracked_run), rel=1e-5)  # csv: 6 digits
    assert run.data.params == {k: str(v) for k, v in expected_params(tracked_run).items()}
    pngs = sorted((tracked_run / "figures").glob("*.png"))
    local = client.download_artifacts(run.info.run_id, "figures", str(tmp_path))
    assert pngs and sorted(p.name for p in (tmp_path / "figures").iterdir()) == [p.name for p in pngs], local
    for p in pngs:
        assert (tmp_path / "figures" / p.name).read_bytes() == p.read_bytes(), p.name


def test_resumed_run_appends_without_duplicates(tracked_run, tmp_path):
    """The interrupted run had logged round 2 before its checkpoint was lost: round 2 is there once."""
    from iovsim.experiment import Experiment

    c = tmp_path / "resumed"
    shutil.copytree(tracked_run, c)
    shutil.rmtree(c / "checkpoints" / "round_0002")
    Experiment.resume(c).run()
    want = expected_scalars(c)
    assert all(sorted(v) == [1, 2] for v in want.values())
    if "tensorboard" in INSTALLED:
        assert_same_as_csv(tensorboard_scalars(c)[0], want, rel=1e-5)
    if "mlflow" in INSTALLED:
        client, run = mlflow_run(c)
        assert run.info.status == "FINISHED"
        assert_same_as_csv(mlflow_scalars(client, run), want, rel=1e-5)


def test_missing_extra_is_one_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ConfigError) as e:
        config_from_dict(tiny_config(**{"output.trackers": ["mlflow"]}), source="x.yaml")
    assert e.value.field_path == "output.trackers" and "pip install 'iovsim[mlflow]'" in str(e.value)
    with pytest.raises(ConfigError, match="output.trackers"):
        config_from_dict(tiny_config(**{"output.trackers": ["wandb"]}))
    with pytest.raises(ConfigError, match="each tracker once"):
        config_from_dict(tiny_config(**{"output.trackers": ["tensorboard", "tensorboard"]}))


def test_missing_extra_from_the_cli_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"output.trackers": ["tensorboard"]})))
    code = ("import sys; sys.modules['tensorboard'] = None; from iovsim.cli import main; "
            f"sys.exit(main(['run', {str(cfg)!r}, '--out', {str(tmp_path / 'r')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "output.trackers" in lines[0] and "iovsim[tensorboard]" in lines[0], out.stderr
    assert not (tmp_path / "r").exists()
