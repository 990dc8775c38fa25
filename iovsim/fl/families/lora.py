"""The LoRA mechanics every model family shares: one frozen base, adapters by rank, plain state dicts.

One frozen base model is shared by every task and vehicle; an adapter of each rank in use is
registered with peft under the name `r<rank>` (the sequential executor trains through it); the
batched executor adds the LoRA paths itself through forward hooks on `target_linears()`. A
vehicle's or a task's adapter is a plain dict of tensors (strategies/base.py):

    <module>.lora_A (rank, in_features), <module>.lora_B (out_features, rank),
    <module>.delta (out_features, in_features), optional: merged into the frozen weight

The frozen weights are never written: a merged delta is a new tensor swapped in for the weight
(`merged_weight`) and the original swapped back, so the base may share its weight tensors with
another model (`causal_load` hands out one set per process) and no second copy of them is kept.

whatever the layer type: nn.Linear, or transformers' Conv1D (GPT-2), whose weight is stored
transposed (in_features x out_features); `layer_dims` and `merged_weight` hide that difference.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path

import torch


class ModelError(ValueError):
    """A model that cannot be loaded or adapted, phrased for the user; `field` is the fl config
    field at fault (`model`, `family` or `target_modules`)."""

    def __init__(self, message: str, field: str = "model"):
        super().__init__(message)
        self.field = field


def is_conv1d(module) -> bool:
    """transformers' Conv1D (GPT-2 and kin): a linear layer whose weight is (in_features, out_features)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def is_adaptable(module) -> bool:
    return isinstance(module, torch.nn.Linear) or is_conv1d(module)


def layer_dims(module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear or a Conv1D."""
    if is_conv1d(module):
        return int(module.weight.shape[0]), int(module.nf)
    return int(module.in_features), int(module.out_features)


def merged_weight(module, weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """A new tensor, `weight` + delta (out x in), transposed for a Conv1D's (in x out) weight."""
    d = delta.to(weight.dtype).to(weight.device)
    return weight.clone().add_(d.T if is_conv1d(module) else d)


class LoraModel:
    """A frozen base with LoRA on the layers named `target_modules` (last name component, as peft)."""

    def __init__(self, base, target_modules: list[str], lora_alpha: float, device: torch.device,
                 model_name: str, scope=None):
        """`scope`: the module whose layers may be adapted (default: all of `base`; a causal LM
        passes its decoder so the output head is never adapted)."""
        base.requires_grad_(False)
        self.device = device
        self.base = base.to(device)
        self.config = base.config
        self.target_modules = list(target_modules)
        self.lora_alpha = float(lora_alpha)
        self.peft = None
        self.ranks: set[int] = set()
        scope = base if scope is None else scope
        prefix = next(n for n, m in base.named_modules() if m is scope)
        prefix = prefix + "." if prefix else ""
        self.module_names = [prefix + n for n, m in scope.named_modules()
                             if is_adaptable(m) and n.split(".")[-1] in self.target_modules]
        found = {n.split(".")[-1] for n in self.module_names}
        missing = [t for t in self.target_modules if t not in found]
        if missing:
            names = sorted({n.split(".")[-1] for n, m in scope.named_modules() if is_adaptable(m)})
            raise ModelError(f"no linear layer named {', '.join(map(repr, missing))} in model {model_name}; "
                             f"its linear layers are: {', '.join(names)}", field="target_modules")
        mods = dict(base.named_modules())
        self._base_weight = {n: mods[n].weight.data for n in self.module_names}  # the originals (not copies)
        self._delta_active = False

    @property
    def max_positions(self) -> int | None:
        """Tokens the model's position embeddings cover (None: no such limit in its config)."""
        c = self.config
        n = getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", None)
        return int(n) if n else None

    def max_rank(self) -> tuple[int, str]:
        """The largest LoRA rank every adapted layer takes (its smaller side), and that layer."""
        mods = dict(self.base.named_modules())
        name = min(self.module_names, key=lambda n: min(layer_dims(mods[n])))
        d_in, d_out = layer_dims(mods[name])
        return min(d_in, d_out), f"{name} ({d_in} x {d_out})"

    def layer0_dims(self) -> list[tuple[int, int]]:
        """(in, out) of each adapted layer of the first block (the cost model's per-layer targets)."""
        mods = dict(self.base.named_modules())
        layer0 = [n for n in self.module_names if ".0." in n or n.startswith("0.")]
        return [layer_dims(mods[n]) for n in (layer0 or self.module_names[:1])]

    # ---------------------------------------------------------------- adapters
    def ensure_rank(self, rank: int):
        if rank in self.ranks:
            return
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=rank, lora_alpha=self.lora_alpha, target_modules=self.module_names, lora_dropout=0.0)
        with warnings.catch_warnings():  # transformers' deprecation notices; peft's Conv1D fan_in_fan_out note
            warnings.simplefilter("ignore")
            if self.peft is None:
                self.peft = get_peft_model(self.base, cfg, adapter_name=f"r{rank}")
            else:
                self.peft.add_adapter(f"r{rank}", cfg)
        self.ranks.add(rank)

    def lora_init(self, rank: int, generator: torch.Generator) -> dict:
        """A fresh adapter: A Kaiming-uniform (as peft), B zero."""
        mods = dict(self.base.named_modules())
        state = {}
        for n in self.module_names:
            d_in, d_out = layer_dims(mods[n])
            bound = 1.0 / math.sqrt(d_in)  # kaiming_uniform_(a=sqrt(5)) bound
            state[f"{n}.lora_A"] = (torch.rand(rank, d_in, generator=generator) * 2 - 1) * bound
            state[f"{n}.lora_B"] = torch.zeros(d_out, rank)
        return state

    def load_lora(self, state: dict, rank: int) -> list[torch.nn.Parameter]:
        """Put `state` into the rank-`rank` peft adapter and activate it; the LoRA parameters."""
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
        return params

    def export_lora(self, rank: int, delta_from: dict | None = None) -> dict:
        """The active rank-`rank` adapter (and the `.delta` entries of `delta_from`) as CPU tensors."""
        name = f"r{rank}"
        out = {}
        for mod_name, module in self.peft.base_model.model.named_modules():
            if mod_name in self._base_weight and hasattr(module, "lora_A"):
                out[f"{mod_name}.lora_A"] = module.lora_A[name].weight.detach().cpu().clone()
                out[f"{mod_name}.lora_B"] = module.lora_B[name].weight.detach().cpu().clone()
        for k, v in (delta_from or {}).items():
            if k.endswith(".delta"):
                out[k] = v
        return out

    def _apply_delta(self, state: dict):
        """Each layer's weight: the original plus its `<module>.delta` in `state` (a new tensor), or the
        original itself (the original tensors are never written)."""
        has = any(k.endswith(".delta") for k in state)
        if not has and not self._delta_active:
            return
        mods = dict(self.peft.base_model.model.named_modules())
        with torch.no_grad():
            for n, w0 in self._base_weight.items():
                layer = mods[n].base_layer if hasattr(mods[n], "base_layer") else mods[n]
                delta = state.get(f"{n}.delta")
                layer.weight.data = w0 if delta is None else merged_weight(layer, w0, delta.to(self.device))
        self._delta_active = has

    # ---------------------------------------------------------------- the bare base
    def target_linears(self) -> dict[str, torch.nn.Module]:
        """The frozen layer of every adapted module (under peft's wrapper when there is one)."""
        mods = dict(self.base.named_modules())
        return {n: getattr(mods[n], "base_layer", mods[n]) for n in self.module_names}

    @contextlib.contextmanager
    def bare(self):
        """The frozen base alone (peft adapters off, merged deltas removed), in eval mode."""
        if self._delta_active:
            self._apply_delta({})
        ctx = self.peft.disable_adapter() if self.peft is not None else contextlib.nullcontext()
        self.base.eval()
        with ctx:
            yield self.base

    def train_mode(self):
        """Eval mode (no dropout) for training with the active peft adapter (the sequential executor)."""
        self.peft.eval()


@contextlib.contextmanager
def offline(flag: bool):
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


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def quiet_transformers(threads: int = 0):
    """transformers' logging and progress bars off; torch's CPU threads when given."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def is_local(path: str) -> bool:
    return Path(path).exists()
