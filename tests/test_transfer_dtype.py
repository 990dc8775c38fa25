"""`fl.transfer_dtype`: the precision adapters travel in. The cost model counts the bits at it, the
engine rounds what a vehicle downloads and what the aggregation receives through it, and a bad value
is one line naming the field."""
import csv
from types import SimpleNamespace

import pytest
import torch
import yaml

from iovsim.engine.aggregation import aggregate_round
from iovsim.engine.learning import train_jobs
from iovsim.engine.precision import as_sent
from iovsim.strategies import create

from conftest import tiny_config

ONE_PLUS = 1.0 + 2.0 ** -9   # between bf16 neighbours 1 and 1 + 2^-7; exact in fp16 (10 mantissa bits)


def _state(a: float, b: float) -> dict:
    return {"m.lora_A": torch.full((2, 3), a), "m.lora_B": torch.full((3, 2), b),
            "head.weight": torch.full((2, 3), a), "head.bias": torch.zeros(2)}


def test_as_sent_rounds_floating_tensors_to_the_wire_precision_by_hand():
    s = _state(ONE_PLUS, 1.0 + 2.0 ** -12)
    assert as_sent(s, "fp32") is s
    bf = as_sent(s, "bf16")
    assert bf["m.lora_A"].dtype == torch.float32 and bf["m.lora_A"].unique().tolist() == [1.0]
    fp = as_sent(s, "fp16")
    assert fp["m.lora_A"].unique().tolist() == [ONE_PLUS]      # kept by fp16
    assert fp["m.lora_B"].unique().tolist() == [1.0]           # 2^-12 is below fp16's step at 1
    assert as_sent({"n": torch.arange(3)}, "bf16")["n"].dtype == torch.int64
    assert s["m.lora_A"].unique().tolist() == [ONE_PLUS]       # the sender's copy is not touched


def _result(vid: str, a: float):
    return SimpleNamespace(state=_state(a, a), num_samples=10, rank=2, vehicle_id=vid, loss_before=1.0, loss_after=0.5)


@pytest.mark.parametrize("dtype, want", [("fp32", 2.0 + 2.0 ** -10), ("bf16", 2.0), ("fp16", 2.0 + 2.0 ** -10)])
def test_the_aggregation_sees_the_updates_as_sent(dtype, want):
    """FedAvg of 1 + 2^-9 and 3 (equal weights): 2 + 2^-10 from fp32 or fp16 updates, 2 from bf16 ones."""
    strategy = create("homolora", {})
    strategy.setup(1, 0)
    results = {"a": _result("a", ONE_PLUS), "b": _result("b", 3.0)}
    parts = [SimpleNamespace(vehicle_id="a"), SimpleNamespace(vehicle_id="b")]
    out = aggregate_round(strategy, [_state(0.0, 0.0)], parts, {"a": 0, "b": 0}, results, {"a": 0, "b": 0}, dtype)
    assert out[0]["m.lora_A"].unique().tolist() == [want]


def test_a_vehicle_starts_from_the_global_adapter_as_downloaded():
    strategy = create("homolora", {})
    strategy.setup(1, 0)
    fleet = {"a": SimpleNamespace(task=0, shard=[0, 1, 2], index=0)}
    p = SimpleNamespace(vehicle_id="a", rank=2, steps=1, options={})
    glob = _state(ONE_PLUS, ONE_PLUS)
    for dtype, want in (("fp32", ONE_PLUS), ("bf16", 1.0)):
        fl = SimpleNamespace(batch_size=2, learning_rate=1e-3, head_learning_rate=1e-3, transfer_dtype=dtype)
        job = train_jobs([p], fleet, strategy, [glob], fl, seed=0, round_index=1)[0]
        assert job.state["head.weight"].unique().tolist() == [want]


def test_transfer_dtype_fp8_is_one_line_naming_the_field(tmp_path, capfd):
    from iovsim.cli import main

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"fl.transfer_dtype": "fp8"})))
    assert main(["check", str(cfg), "--no-build", "--quiet"]) == 2
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(cfg) in lines[0] and "fl.transfer_dtype" in lines[0], lines
    assert "fp32, bf16, fp16" in lines[0] and "fp8" in lines[0] and "Traceback" not in lines[0]


@pytest.mark.slow
def test_a_bf16_run_charges_16_bits_a_value(tmp_path):
    """A real tiny run sending bf16: each delivered update's uplink and downlink bits are the MiniLM
    adapter's values (6 layers x 2 targets x r (384 + 384) + its own task's head, 385 x 3 for tweets,
    385 x 5 for bbc) x 16, by hand."""
    from iovsim.config import config_from_dict
    from iovsim.experiment import Experiment

    cfg = config_from_dict(tiny_config(**{"fl.rounds": 1, "fl.transfer_dtype": "bf16"}), base_dir=tmp_path)
    Experiment(cfg, tmp_path / "run").run()
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "vehicles.csv", newline="")) if r["status"] == "ok"]
    classes = {"tweets": 3, "bbc": 5}
    assert {r["task"] for r in rows} == set(classes)
    for r in rows:
        values = 6 * 2 * int(r["rank"]) * 768 + 385 * classes[r["task"]]
        assert float(r["bits_up"]) == pytest.approx(values * 16, rel=1e-5), r   # cells of 6 digits
        assert float(r["bits_down"]) == pytest.approx(values * 16, rel=1e-5), r
