"""A round's training jobs spread over Ray actors (`fl.executor: ray`, `pip install 'iovsim[ray]'`).

Each actor loads the base model once and trains jobs with the reference `LocalExecutor`; a job
carries its start state, rank, data rows and seed, so it gives the same result on whichever actor
runs it. The tokenized tasks go to the object store once and are shared by the actors of a node.
Evaluation stays in the calling process when it holds a model (no adapter crosses the network).
"""
from __future__ import annotations

from iovsim.fl.train import EvalResult, LocalExecutor, TrainJob, TrainResult


class _Trainer:
    """The actor: one family model and the tokenized tasks, wrapped in the reference executor."""

    def __init__(self, model_args: dict, tasks):
        from iovsim.fl.families import load_model

        self.executor = LocalExecutor(load_model(**model_args), tasks)

    def train(self, index: int, job: TrainJob) -> tuple[int, TrainResult]:
        return index, self.executor.train([job])[0]

    def evaluate(self, task_index: int, state: dict, rank: int, batch_size: int) -> EvalResult:
        return self.executor.evaluate(task_index, state, rank, batch_size)


class RayExecutor:
    """`train(jobs, on_done=None)` and `evaluate(...)` as LocalExecutor, with training on `actors` Ray actors.

    model_args: `iovsim.fl.families.load_model`'s keyword arguments (model_name, target_modules, lora_alpha,
    device, threads, family, causal_eval).
    """

    def __init__(self, model_args: dict, tasks: list, actors: int | None = None, local_model=None,
                 address: str | None = None, gpus_per_actor: float = 0.0):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        threads = int(model_args.get("threads") or 1)
        model_args = {**model_args, "threads": threads}
        if not actors:
            actors = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        tasks_ref = ray.put(tasks)
        actor_cls = ray.remote(num_cpus=threads, num_gpus=gpus_per_actor)(_Trainer)
        self.actors = [actor_cls.remote(model_args, tasks_ref) for _ in range(actors)]
        self.local = LocalExecutor(local_model, tasks) if local_model is not None else None

    @classmethod
    def from_config(cls, fl_cfg, model, tokenized_tasks) -> "RayExecutor":
        """For `make_executor`: actors from `fl.ray_actors` (default: cluster CPUs // fl.threads), cluster
        from `fl.ray_address` (default: a running Ray session, else a local one)."""
        device = fl_cfg.device
        actors = fl_cfg.ray_actors or None
        gpus = 0.0
        if device == "cuda":
            gpus = 1.0 / (actors or 1)
        args = {"model_name": fl_cfg.model, "target_modules": list(model.target_modules),
                "lora_alpha": fl_cfg.lora_alpha, "device": device, "threads": fl_cfg.threads or 1,
                "family": model.family, "causal_eval": fl_cfg.causal_eval}
        return cls(args, tokenized_tasks, actors=actors, local_model=model,
                   address=fl_cfg.ray_address or None, gpus_per_actor=gpus)

    def train(self, jobs: list[TrainJob], on_done=None) -> list[TrainResult]:
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        for i, job in enumerate(jobs):
            pool.submit(lambda actor, item: actor.train.remote(*item), (i, job))
        results: list[TrainResult | None] = [None] * len(jobs)
        while pool.has_next():
            i, res = pool.get_next_unordered()
            results[i] = res
            if on_done is not None:
                on_done(jobs[i])
        return results

    def evaluate(self, task_index: int, state: dict, rank: int, batch_size: int = 64) -> EvalResult:
        if self.local is not None:
            return self.local.evaluate(task_index, state, rank, batch_size)
        import ray

        return ray.get(self.actors[0].evaluate.remote(task_index, state, rank, batch_size))

    def close(self) -> None:
        """End the actors (their models' memory goes with them)."""
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
