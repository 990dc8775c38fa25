"""`IovEnv`: one experiment as a Gymnasium environment, one FL round per step."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np

from iovsim.config import ExperimentConfig, load_config
from iovsim.engine.errors import RunError
from iovsim.engine.learning import evaluate
from iovsim.env.config import EnvConfig
from iovsim.env.reward import reward, reward_terms
from iovsim.env.spaces import action_space, observation_space
from iovsim.experiment import Experiment
from iovsim.strategies.policy import ActionSpec, encode_state

MAX_SEED = 2**31 - 1   # SUMO's seed range


class IovEnv(gym.Env):
    """Federated LoRA fine-tuning over SUMO mobility as an RL environment (docs/rl_env.md).

    `reset(seed=...)` starts the experiment (SUMO, channel, model, data) at its first round and
    returns that round's observation; `step(action)` runs the round exactly as `iovsim run` does
    (the `policy` strategy turns the action into the plan) and returns the next round's observation,
    the reward, `terminated` (the last round has run), `truncated` (SUMO reached `mobility.end_s`
    first) and `info` with the round's metrics.csv rows. The run folder is written as by `iovsim run`.

    libsumo runs one simulation per process: with `mobility.backend: libsumo` keep one open IovEnv
    per process (vectorised training: a subprocess vector env), or use `traci`.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: ExperimentConfig | str | Path, env_config: EnvConfig | None = None,
                 run_dir: str | Path | None = None, progress=None):
        self.base_cfg = config if isinstance(config, ExperimentConfig) else load_config(Path(config))
        self.env_cfg = env_config or EnvConfig()
        cfg, ec = self.base_cfg, self.env_cfg
        max_vehicles = ec.max_vehicles or cfg.mobility.fl_vehicles
        if max_vehicles < 1:
            raise ValueError("IovEnv needs a vehicle cap: set mobility.fl_vehicles or EnvConfig.max_vehicles")
        self.spec_ = ActionSpec(max_vehicles, ec.max_rsus or cfg.rsu.count, tuple(cfg.fl.lora_ranks),
                                ec.power_fractions, ec.bandwidth_weights, ec.transfer_mode)
        self.num_tasks = len(cfg.fl.tasks)
        self.observation_space = observation_space(self.spec_, self.num_tasks, len(cfg.devices))
        self.action_space = action_space(self.spec_)
        self.run_dir = Path(run_dir) if run_dir else default_run_dir(cfg)
        self.progress = progress
        self.episode = 0
        self._exp: Experiment | None = None
        self._model = None          # the loaded base model, kept across episodes (the slowest part to load)
        self._state = None
        self._accuracy = 0.0
        self._over = True

    # ------------------------------------------------------------------ the spaces' link to the strategy
    def policy_params(self) -> dict:
        """`strategy.params` of the `policy` strategy that sees and acts as this env (add `policy: module:fn`)."""
        s = self.spec_
        return {"max_vehicles": s.max_vehicles, "max_rsus": s.max_rsus, "ranks": list(s.ranks),
                "power_fractions": list(s.power_fractions), "bandwidth_weights": list(s.bandwidth_weights),
                "transfer_mode": s.transfer_mode}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.close()
        if seed is not None:
            run_seed = int(seed)
        elif self.episode == 0:
            run_seed = self.base_cfg.seed
        else:  # a new traffic/channel/data draw, reproducible from the first seeded reset
            run_seed = int(self.np_random.integers(MAX_SEED + 1))
        if not 0 <= run_seed <= MAX_SEED:
            raise ValueError(f"seed must lie in [0, {MAX_SEED}], got {run_seed}")
        self.episode += 1
        exp = self._open(run_seed)
        learning = exp.world.learning
        evals = evaluate(learning.executor, exp.global_states, exp.cfg.fl.eval_batch_size, exp.progress, 0)
        self._accuracy = float(np.mean([e.accuracy for e in evals]))
        self._state, self._over = exp.observe(), False
        return self._obs(), {"round": self._state.round_index, "time_s": float(self._state.time_s),
                             "vehicle_ids": list(self._state.vehicle_ids), "seed": run_seed,
                             "run_dir": str(exp.run_dir), "accuracy": self._accuracy}

    def step(self, action: dict):
        if self._exp is None or self._over:
            raise RuntimeError("IovEnv.step: call reset() first (the episode has ended or not started)")
        exp = self._exp
        exp.world.learning.strategy.set_action(action)
        round_index = self._state.round_index
        rows = exp.play_round(self._state)
        terms = reward_terms(rows, self._accuracy)
        self._accuracy = terms["accuracy"]
        terminated = exp.next_round > exp.cfg.fl.rounds
        truncated = not terminated and exp.done()
        self._state = exp.observe()
        obs = self._obs()
        if terminated or truncated:
            self._over = True
            self.close()
        info = {"round": round_index, "metrics": [dict(r) for r in rows], "reward_terms": terms,
                "vehicle_ids": list(self._state.vehicle_ids)}   # the next observation's slots
        return obs, reward(terms, self.env_cfg), terminated, truncated, info

    def close(self):
        """Stop SUMO and write summary.json (`finished` only when the episode reached its end)."""
        exp, self._exp = self._exp, None
        if exp is not None:
            exp.close()
            exp.summary(final=self._over)

    # ------------------------------------------------------------------ helpers
    def _open(self, run_seed: int) -> Experiment:
        cfg = copy.deepcopy(self.base_cfg)
        cfg.seed = run_seed
        cfg.strategy.name, cfg.strategy.params = "policy", self.policy_params()
        folder = self.run_dir / f"episode-{self.episode:04d}" if self.env_cfg.episode_folders else self.run_dir
        clear_run_dir(folder)
        exp = Experiment(cfg, folder, progress=self.progress, model=self._model)
        exp.open()
        self._exp, self._model = exp, exp.world.learning.model
        m = len(exp.world.sites)
        if m > self.spec_.max_rsus:
            self.close()
            raise RunError(f"{m} RSUs were placed but the observation has {self.spec_.max_rsus} slots; "
                           "set EnvConfig.max_rsus")
        return exp

    def _obs(self) -> dict:
        return encode_state(self._state, self.spec_, self.num_tasks)


def default_run_dir(cfg: ExperimentConfig) -> Path:
    """`output.runs_dir / output.run_name`, or `<name>-env` when no run name is set."""
    return cfg.output.runs_path() / (cfg.output.run_name or f"{cfg.name}-env")


def clear_run_dir(folder: Path) -> None:
    """Empty a previous episode's run folder; refuse to empty a folder that is not a run folder."""
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not (folder / "config.yaml").exists() and not (folder / "metrics.csv").exists():
        raise RunError(f"{folder}: exists and is not a run folder; choose another run folder for the env")
    shutil.rmtree(folder)
