"""Causal LMs: instruction data (JSONL) scored by hand, and every bad input as one line naming its field or file:line."""
import json
import sys

import numpy as np
import pytest
import torch
import yaml

from iovsim.config import ConfigError, config_from_dict
from iovsim.fl.config import TaskConfig
from iovsim.fl.data import DataError, load_task
from iovsim.fl.families import ModelError, load_model

from conftest import iovsim, tiny_config

ROWS = [{"instruction": "Name the capital of France.", "input": "", "output": "Paris."},
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Give the opposite word.", "input": "hot", "output": "cold"},
        {"instruction": "Spell the word backwards.", "input": "cat", "output": "tac"},
        {"instruction": "Name a primary colour.", "output": "Red"}]


def write_jsonl(path, rows, extra_lines=()):
    path.write_text("\n".join([json.dumps(r) for r in rows] + list(extra_lines)) + "\n")
    return path


def one_line(e) -> str:
    text = str(e)
    assert "\n" not in text.strip(), text
    return text


@pytest.mark.parametrize("line, says", [
    ('{"instruction": "x", "output": ', "not JSON"),
    ('["instruction", "output"]', "got a list"),
    ('{"instruction": "x"}', "field 'output' is missing"),
    ('{"instruction": "x", "output": 3}', "field 'output' is 3"),
    ('{"instruction": "x", "input": ["a"], "output": "y"}', "field 'input' is ['a']"),
])
def test_a_malformed_jsonl_row_names_the_file_and_line(tmp_path, line, says):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS[:2], [line])
    with pytest.raises(DataError) as e:
        load_task(TaskConfig(name="i", dataset=f"jsonl:{path}"), seed=0)
    assert one_line(e.value).startswith(f"{path}:3: expected a JSON object") and says in str(e.value)


def test_instruction_rows_split_at_random_and_shard_equally(tmp_path):
    from iovsim.fl.data import task_shards

    write_jsonl(tmp_path / "d.jsonl", ROWS + ROWS[:1])  # an exact duplicate is dropped
    data = load_task(TaskConfig(name="i", dataset="jsonl:d.jsonl", test_samples=2), seed=0, base_dir=tmp_path)
    assert data.label_names == [] and len(data.test_text) == 2 and len(data.train_text) == 4
    assert {r[0] for r in data.train_text + data.test_text} == {r["instruction"] for r in ROWS}
    assert ("Name a primary colour.", "", "Red") in data.train_text + data.test_text
    shards = task_shards(data, 2, 0.5, np.random.default_rng(0), 1)
    assert sorted(len(s) for s in shards) == [2, 2] and sorted(np.concatenate(shards).tolist()) == [0, 1, 2, 3]


@pytest.mark.slow
def test_instruction_loss_is_the_hf_models_own_answer_loss(smollm2, tmp_path):
    """Held-out loss = mean NLL per response token (transformers' own shifted loss), accuracy = token accuracy."""
    from iovsim.fl.batched import BatchedExecutor

    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    data = load_task(TaskConfig(name="i", dataset=f"jsonl:{path}", test_samples=3), seed=0)
    task = smollm2.make_task(data, 64)
    got = BatchedExecutor(smollm2, [task]).evaluate(0, smollm2.init_state(4, 0, torch.Generator()), 4)
    nll, hits, tokens = 0.0, 0, 0
    with smollm2.bare() as base, torch.no_grad():
        for i in range(3):
            n = int(task.test["lengths"][i])
            ids, labels = task.test["input_ids"][i:i + 1, :n], task.test_labels[i:i + 1, :n]
            out = base(ids, labels=labels)
            k = int((labels != -100).sum())
            nll, tokens = nll + float(out.loss) * k, tokens + k
            pred = out.logits[0, :-1].argmax(-1)
            hits += int((pred == labels[0, 1:])[labels[0, 1:] != -100].sum())
    assert got.num_examples == 3 and got.loss == pytest.approx(nll / tokens, rel=1e-4)
    assert got.accuracy == pytest.approx(hits / tokens)
    assert np.exp(got.loss) > 1.0  # the perplexity docs/models.md reports


def test_a_missing_gguf_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(ModelError) as e:
        load_model("smollm2", [], 16.0)
    assert "needs the package gguf: pip install 'iovsim[gguf]'" in one_line(e.value) and e.value.field == "model"
    from iovsim.engine.build import load_model as build_load

    with pytest.raises(ConfigError) as e:
        build_load(config_from_dict({"fl": {"model": "smollm2"}}))
    assert "field 'fl.model'" in one_line(e.value) and "gguf" in str(e.value)


def test_a_causal_lm_that_cannot_load_offline_is_one_line():
    with pytest.raises(ModelError) as e:
        load_model("no-such-org/no-such-llm-xyz", [], 16.0, family="causal_lm")
    assert one_line(e.value).startswith("cannot load causal LM 'no-such-org/no-such-llm-xyz' (a local folder, or a "
                                        "Hugging Face id reachable online)") and e.value.field == "model"


@pytest.mark.slow
def test_an_absent_target_and_a_rank_above_a_layer_width_name_their_fields(smollm2):
    with pytest.raises(ModelError) as e:
        load_model("smollm2", ["q_proj", "query"], 16.0)   # the loaded model is reused: no second 30 s load
    assert e.value.field == "target_modules" and "no linear layer named 'query' in model smollm2" in one_line(e.value)
    assert "its linear layers are: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in str(e.value)
    from iovsim.engine.limits import check_ranks

    with pytest.raises(ConfigError) as e:
        check_ranks(config_from_dict({"fl": {"model": "smollm2", "lora_rank": 256}}), smollm2.max_rank())
    assert "field 'fl.lora_rank'" in one_line(e.value)
    assert "expected a LoRA rank <= 192 (the width of the adapted layer model.layers.0.self_attn.k_proj (576 x 192))" \
        in str(e.value)


def smollm2_config(tmp_path, dataset: str) -> str:
    cfg = tiny_config(**{"fl.model": "smollm2", "fl.rounds": 1, "mobility.fl_vehicles": 2, "fl.tasks": [
        {"name": "i", "dataset": dataset, "max_samples": 40, "test_samples": 10, "max_length": 64}]})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_the_cli_says_a_malformed_row_and_a_missing_gguf_in_one_line_exit_2(tmp_path):
    """Both fail before the model loads: the data is read first, the GGUF reader is looked for first."""
    write_jsonl(tmp_path / "d.jsonl", ROWS, ['{"instruction": "x"}'])
    out = iovsim("check", smollm2_config(tmp_path, "jsonl:d.jsonl"), timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "field 'fl.tasks[0].dataset'" in lines[0] and f"{tmp_path / 'd.jsonl'}:7:" in lines[0]
    assert "field 'output' is missing" in lines[0]
    import subprocess

    code = "import sys; sys.modules['gguf'] = None; from iovsim.cli import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", code, "check", smollm2_config(tmp_path, "tweet_sentiment")],
                         capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "field 'fl.model'" in lines[0] and "pip install 'iovsim[gguf]'" in lines[0]
