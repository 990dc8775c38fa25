"""`hf:` instruction data, offline: the same `datasets` loading and column mapping as a hub id, on local
folders that `datasets` itself wrote (`save_to_disk`) or reads as a repository (JSON-lines files).
Alpaca's columns (instruction, input, output) and Dolly's (instruction, context, response) both end in
the rows a JSONL file gives; every bad input is one line naming the `hf:` name."""
import json

import pytest

from iovsim.fl.config import TaskConfig
from iovsim.fl.data import DataError, load_task

from conftest import iovsim, tiny_config

datasets = pytest.importorskip("datasets", reason="hf: data needs the `datasets` package (pip install 'iovsim[online]'; "
                                                  "make install puts it in)")

ALPACA = [{"instruction": "Name the capital of France.", "input": "", "output": "Paris."},
          {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
          {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
          {"instruction": "Give the opposite word.", "input": "hot", "output": "cold"},
          {"instruction": "Spell the word backwards.", "input": "cat", "output": "tac"},
          {"instruction": "Name a primary colour.", "input": "", "output": "Red"}]
# the same rows in Dolly's columns, and one more column Dolly has
DOLLY = [{"instruction": r["instruction"], "context": r["input"], "response": r["output"], "category": "qa"}
         for r in ALPACA]
AS_TUPLES = {(r["instruction"], r["input"], r["output"]) for r in ALPACA}


def load(dataset: str, base_dir=None, test_samples: int = 2):
    return load_task(TaskConfig(name="i", dataset=dataset, test_samples=test_samples), seed=0, base_dir=base_dir)


def one_line(e) -> str:
    text = str(e)
    assert "\n" not in text.strip(), text
    return text


def test_alpaca_columns_saved_to_disk_give_the_rows_of_the_same_jsonl(tmp_path):
    datasets.Dataset.from_list(ALPACA).save_to_disk(str(tmp_path / "alpaca"))
    (tmp_path / "alpaca.jsonl").write_text("\n".join(json.dumps(r) for r in ALPACA) + "\n")
    hf = load("hf:alpaca", base_dir=tmp_path)                     # relative: against the config's folder
    js = load("jsonl:alpaca.jsonl", base_dir=tmp_path)
    assert hf.label_names == [] and set(hf.train_text + hf.test_text) == AS_TUPLES
    assert len(hf.test_text) == 2 and len(hf.train_text) == 4
    # the same rows in the same order: the split is the seed's, whatever the source
    assert (hf.train_text, hf.test_text) == (js.train_text, js.test_text)
    assert hf.source == str(tmp_path / "alpaca") and hf.dataset == "hf:alpaca"


def test_dolly_columns_in_a_dataset_dict_read_its_train_split(tmp_path):
    extra = {"instruction": "Held out by the publisher.", "context": "", "response": "Never read.", "category": "qa"}
    datasets.DatasetDict({"train": datasets.Dataset.from_list(DOLLY),
                          "test": datasets.Dataset.from_list([extra])}).save_to_disk(str(tmp_path / "dolly"))
    data = load(f"hf:{tmp_path / 'dolly'}")                      # absolute
    rows = set(data.train_text + data.test_text)
    assert rows == AS_TUPLES                                      # context -> input, response -> output
    assert ("Add the numbers.", "2 and 3", "5") in rows


def test_a_folder_of_jsonl_files_is_read_as_a_repository(tmp_path):
    """Not saved by `datasets`: `load_dataset` reads the folder's data files as it reads a hub repository."""
    d = tmp_path / "repo"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(json.dumps(r) for r in DOLLY) + "\n")
    data = load("hf:repo", base_dir=tmp_path)
    assert set(data.train_text + data.test_text) == AS_TUPLES


@pytest.mark.parametrize("make, says", [
    (lambda d: datasets.Dataset.from_list([{"question": "q", "answer": "a"}] * 4).save_to_disk(str(d)),
     "columns ['question', 'answer']; expected Alpaca's (instruction, input, output) or Dolly's"),
    (lambda d: datasets.DatasetDict({"validation": datasets.Dataset.from_list(ALPACA)}).save_to_disk(str(d)),
     "splits validation; expected a 'train' split"),
    (lambda d: datasets.Dataset.from_list(ALPACA[:3] + [{"instruction": "x", "input": "", "output": " "}])
     .save_to_disk(str(d)), "row 3: expected a non-empty string in column 'output', got ' '"),
    (lambda d: datasets.Dataset.from_list(DOLLY[:2] + [{"instruction": "x", "context": "", "response": None,
                                                        "category": "qa"}]).save_to_disk(str(d)),
     "row 2: expected a non-empty string in column 'response', got None"),
])
def test_bad_local_data_is_one_line_naming_it(tmp_path, make, says):
    make(tmp_path / "bad")
    with pytest.raises(DataError) as e:
        load("hf:bad", base_dir=tmp_path)
    assert one_line(e.value).startswith("hf:bad: ") and says in str(e.value), str(e.value)


def test_a_hub_id_that_cannot_load_offline_is_one_line(tmp_path):
    assert datasets.config.HF_HUB_OFFLINE  # conftest: the tests never reach the network
    with pytest.raises(DataError) as e:
        load("hf:no-such-org/no-such-instructions", base_dir=tmp_path)
    assert one_line(e.value).startswith("hf:no-such-org/no-such-instructions: cannot load the dataset: ")


@pytest.mark.slow
def test_the_cli_says_an_unloadable_hf_id_in_one_line_exit_2(tmp_path):
    import yaml

    cfg = tiny_config(**{"fl.model": "smollm2", "fl.rounds": 1, "mobility.fl_vehicles": 2, "fl.tasks": [
        {"name": "i", "dataset": "hf:no-such-org/no-such-instructions", "test_samples": 10, "max_length": 64}]})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = iovsim("check", tmp_path / "cfg.yaml", timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "field 'fl.tasks[0].dataset'" in lines[0] and "hf:no-such-org/no-such-instructions: cannot load" in lines[0]
