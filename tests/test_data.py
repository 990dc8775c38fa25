"""Real offline tasks and non-IID shards."""
import sys

import numpy as np
import pytest

from iovsim.fl.config import TaskConfig
from iovsim.fl.data import DataError, dirichlet_shards, load_task


@pytest.mark.parametrize("dataset, classes", [("tweet_sentiment", 3), ("bbc_news", 5)])
def test_offline_tasks_load_with_disjoint_stratified_split(dataset, classes):
    t = load_task(TaskConfig(name=dataset, dataset=dataset, max_samples=500, test_samples=100), seed=1)
    assert t.num_classes == classes
    assert len(t.train_text) == 500 and 95 <= len(t.test_text) <= 105
    assert set(np.unique(t.test_labels)) == set(range(classes))
    assert not set(t.train_text) & set(t.test_text)
    again = load_task(TaskConfig(name=dataset, dataset=dataset, max_samples=500, test_samples=100), seed=1)
    assert again.train_text == t.train_text


def _tsv_column(path, column):
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        return [r[column].strip() for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def test_glue_sst2_from_shared_folder(shared_data_dir):
    t = load_task(TaskConfig(name="sst2", dataset="sst2", max_samples=300, test_samples=50), seed=0)
    assert t.num_classes == 2 and len(t.train_text) == 300


def test_sst2_tests_on_dev_sentences_and_trains_on_no_text_that_holds_one(shared_data_dir):
    """GLUE's split: test = dev.tsv sentences; no training phrase equals or contains a test sentence."""
    d = shared_data_dir / "glue" / "SST-2"
    dev, train_tsv = set(_tsv_column(d / "dev.tsv", "sentence")), set(_tsv_column(d / "train.tsv", "sentence"))
    t = load_task(TaskConfig(name="sst2", dataset="sst2", max_samples=0, test_samples=5000), seed=3)
    assert set(t.test_text) == dev and len(t.test_text) == 872
    assert set(t.train_text) <= train_tsv and len(t.train_text) > 60000
    joined = "\n".join(t.train_text)
    assert not [s for s in t.test_text if s in joined]
    small = load_task(TaskConfig(name="sst2", dataset="sst2", max_samples=500, test_samples=200), seed=3)
    assert set(small.test_text) <= dev and 195 <= len(small.test_text) <= 205
    assert abs(np.mean(small.test_labels) - np.mean(t.test_labels)) < 0.03  # stratified


def test_qnli_pairs_from_shared_folder(shared_data_dir):
    t = load_task(TaskConfig(name="qnli", dataset="qnli", max_samples=200, test_samples=50), seed=0)
    assert isinstance(t.train_text[0], tuple) and len(t.train_text[0]) == 2


def test_qnli_split_is_fixed_and_shares_no_question_or_sentence(shared_data_dir):
    """dev.tsv split once, independent of the experiment seed, by groups of linked pairs."""
    runs = [load_task(TaskConfig(name="qnli", dataset="qnli", max_samples=0, test_samples=5000), seed=s)
            for s in (0, 1)]
    assert set(runs[0].test_text) == set(runs[1].test_text)
    assert set(runs[0].train_text) == set(runs[1].train_text)
    t = runs[0]
    assert 2000 <= len(t.test_text) <= 2100 and len(t.train_text) + len(t.test_text) > 5400
    for part in (0, 1):
        assert not {p[part] for p in t.train_text} & {p[part] for p in t.test_text}
    assert not {p[0] for p in t.train_text} & {p[1] for p in t.test_text}


def test_user_csv_needs_columns(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("sentence,label\nhello,a\n")
    with pytest.raises(DataError, match="column 'text'"):
        load_task(TaskConfig(name="x", dataset=f"csv:{p}", test_samples=10), seed=0)


def test_dirichlet_shards_disjoint_cover_and_skew():
    labels = np.repeat(np.arange(4), 250)
    rng = np.random.default_rng(0)
    skewed = dirichlet_shards(labels, 20, 0.1, rng, min_size=10)
    flat = np.concatenate(skewed)
    assert len(flat) == len(set(flat.tolist())) == 1000
    assert min(len(s) for s in skewed) >= 10
    even = dirichlet_shards(labels, 20, 100.0, np.random.default_rng(0), min_size=10)

    def mean_max_share(shards):
        return np.mean([np.bincount(labels[s], minlength=4).max() / len(s) for s in shards])

    assert mean_max_share(skewed) > mean_max_share(even) + 0.2


def test_hf_names_what_it_loads_and_the_extra_it_needs(monkeypatch):
    """hf:sst2 / hf:qnli are GLUE; any other hf: name is an instruction set (Alpaca or Dolly columns)."""
    monkeypatch.setitem(sys.modules, "datasets", None)  # as without iovsim[online]: `import datasets` fails
    for name in ("hf:sst2", "hf:yahma/alpaca-cleaned"):
        with pytest.raises(DataError, match=r"needs the `datasets` package: pip install 'iovsim\[online\]'"):
            load_task(TaskConfig(name="s", dataset=name), seed=0)
