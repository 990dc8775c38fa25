"""Real offline tasks and non-IID shards."""
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


def test_glue_sst2_from_shared_folder(shared_data_dir):
    t = load_task(TaskConfig(name="sst2", dataset="sst2", max_samples=300, test_samples=50), seed=0)
    assert t.num_classes == 2 and len(t.train_text) == 300


def test_qnli_pairs_from_shared_folder(shared_data_dir):
    t = load_task(TaskConfig(name="qnli", dataset="qnli", max_samples=200, test_samples=50), seed=0)
    assert isinstance(t.train_text[0], tuple) and len(t.train_text[0]) == 2


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
