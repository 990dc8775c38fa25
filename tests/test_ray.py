"""The Ray training executor gives exactly the local executor's results (real model, real data, two actors)."""
import numpy as np
import pytest
import torch

from iovsim.fl.config import TaskConfig
from iovsim.fl.data import load_task
from iovsim.fl.model import AdapterModel
from iovsim.fl.train import LocalExecutor, TokenizedTask, TrainJob

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'iovsim[ray]'); make test installs it")

MODEL_ARGS = {"model_name": "minilm", "target_modules": ["query", "value"], "lora_alpha": 16.0, "threads": 1}


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local():
    threads = torch.get_num_threads()
    model = AdapterModel(**MODEL_ARGS)  # the actors' thread count, so that both sides run the same kernels
    data = load_task(TaskConfig(name="bbc", dataset="bbc_news", max_samples=300, test_samples=60), seed=0)
    tasks = [TokenizedTask(model, data, 48)]
    yield model, tasks
    torch.set_num_threads(threads)


def test_ray_executor_equals_local_executor(ray_session, local):
    from iovsim.fl.ray_executor import RayExecutor

    model, tasks = local
    g = torch.Generator().manual_seed(0)
    jobs = [TrainJob("v1", 0, model.init_state(4, 5, g), 4, 3, 8, 2e-3, 1e-2, np.arange(0, 60), [1, 1]),
            TrainJob("v2", 0, model.init_state(8, 5, g), 8, 3, 8, 2e-3, 1e-2, np.arange(60, 120), [1, 2])]
    expected = LocalExecutor(model, tasks).train(jobs)
    rex = RayExecutor(MODEL_ARGS, tasks, actors=2)  # no local model: evaluation runs on an actor too
    try:
        done = []
        got = rex.train(jobs, on_done=lambda j: done.append(j.vehicle_id))
        assert sorted(done) == ["v1", "v2"]
        for job, e, r in zip(jobs, expected, got):
            assert (r.vehicle_id, r.rank, r.num_samples, r.steps) == (e.vehicle_id, e.rank, e.num_samples, e.steps)
            assert (r.loss_before, r.loss_after) == (e.loss_before, e.loss_after)
            assert r.state.keys() == e.state.keys()
            assert all(torch.equal(r.state[k], e.state[k]) for k in e.state)
            assert any(not torch.equal(r.state[k], job.state[k]) for k in job.state if k.endswith("lora_B"))
        ev_local = LocalExecutor(model, tasks).evaluate(0, got[1].state, 8)
        ev_ray = rex.evaluate(0, got[1].state, 8)
        assert (ev_ray.accuracy, ev_ray.loss, ev_ray.num_examples) == (ev_local.accuracy, ev_local.loss,
                                                                        ev_local.num_examples)
    finally:
        rex.close()


def test_config_selects_the_ray_executor(ray_session, local):
    """`fl.executor: ray` reaches the engine's executor factory (actors from `fl.ray_actors`)."""
    from iovsim.fl.config import FlConfig
    from iovsim.fl.executors import make_executor
    from iovsim.fl.ray_executor import RayExecutor

    model, tasks = local
    ex = make_executor(FlConfig(model="minilm", executor="ray", ray_actors=1, threads=1), model, tasks)
    try:
        assert isinstance(ex, RayExecutor) and len(ex.actors) == 1
    finally:
        ex.close()
