"""Optional tasks (`fl.tasks[i].optional`): one whose data is absent is skipped with one line; one whose
data is there is read once, by the check, and that data is what the run trains on."""
from collections import Counter

import iovsim.fl.data as fl_data
from iovsim.config import config_from_dict
from iovsim.engine import build
from iovsim.viz.progress import Progress

from conftest import tiny_config


def test_an_absent_optional_task_is_skipped_and_a_present_one_read_once(tmp_path, monkeypatch):
    tweets, bbc = tiny_config()["fl"]["tasks"]
    tasks = [{**tweets, "optional": True}, bbc,
             {"name": "sst2", "dataset": "sst2", "data_dir": str(tmp_path / "no-glue"), "test_samples": 60,
              "max_length": 32, "optional": True}]
    cfg = config_from_dict(tiny_config(**{"fl.tasks": tasks}), base_dir=tmp_path)
    reads = Counter()
    real_load = fl_data.load_task

    def counted(tc, *a, **k):  # the real loader, counted
        reads[tc.name] += 1
        return real_load(tc, *a, **k)

    monkeypatch.setattr(fl_data, "load_task", counted)
    messages = []
    kept, loaded = build.available_tasks(cfg, messages.append)
    assert [tc.name for tc in kept] == ["tweets", "bbc"]
    assert len(messages) == 1 and messages[0].startswith("optional task sst2 skipped: ")
    assert loaded[0] is not None and loaded[1] is None   # bbc is not optional: the check does not read it
    cfg.fl.tasks = kept
    learning = build.build_learning(cfg, Progress(quiet=True), None, None, loaded)
    assert reads == {"tweets": 1, "bbc": 1, "sst2": 1}
    assert learning.tasks[0].train_text == loaded[0].train_text
    assert [d.name for d in learning.tasks] == ["tweets", "bbc"]
