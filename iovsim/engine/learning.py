"""Local training of the delivered updates and evaluation of the global adapters, through the executor."""
from __future__ import annotations

import math

from iovsim.engine.precision import as_sent
from iovsim.fl.aggregate import state_rank


def train_jobs(delivered, fleet, strategy, global_states: list, fl, seed: int, round_index: int) -> list:
    """One TrainJob per delivered participant, starting from the strategy's client adapter as the
    vehicle received it (`fl.transfer_dtype`, engine.precision)."""
    from iovsim.fl.train import TrainJob  # torch/transformers: loaded when a run trains

    jobs = []
    for p in delivered:
        info = fleet[p.vehicle_id]
        start = as_sent(strategy.client_state(global_states[info.task], p.rank), fl.transfer_dtype)
        jobs.append(TrainJob(p.vehicle_id, info.task, start, p.rank, p.steps, fl.batch_size, fl.learning_rate,
                             fl.head_learning_rate, info.shard, [seed, 4, round_index, info.index], p.options))
    return jobs


def train(executor, jobs: list, progress, round_index: int) -> dict:
    """Run the jobs; the results by vehicle id."""
    with progress.task(f"Round {round_index}: local training", total=len(jobs)) as t:
        results = executor.train(jobs, on_done=lambda job: t.advance(1))
    return {res.vehicle_id: res for res in results}


def skipped_evals(n_tasks: int) -> list:
    """The EvalResults of a round that is not evaluated: no test examples, accuracy and loss NaN."""
    from iovsim.fl.train import EvalResult

    return [EvalResult(math.nan, math.nan, 0) for _ in range(n_tasks)]


def evaluate(executor, global_states: list, batch_size: int, progress, round_index: int) -> list:
    """Each task's global adapter on its test set (EvalResult per task)."""
    evals = []
    with progress.task(f"Round {round_index}: evaluation", total=len(global_states)) as t:
        for ti, state in enumerate(global_states):
            evals.append(executor.evaluate(ti, state, state_rank(state), batch_size))
            t.advance(1)
    return evals
