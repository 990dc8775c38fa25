"""Model families: one module each, behind one seam the engine and the executors call without knowing which.

A family module has `NAME`, `DEFAULT_TARGETS` (or a function of the architecture), `claims_name(name)`
(keywords such as `minilm` or `smollm2`), `claims_config(hf_config)` (an architecture it serves) and
`Family`, the model class. A family model owns everything that differs between kinds of model:

- the cost shape: `shape(seq_len, batch_size, num_classes, task)` (an `iovsim.costs.ModelShape`;
  `task` is what `make_task` made, so a shape charges what the family computes on it, e.g. a causal
  LM's output layer at the answer tokens only), `num_layers`, `max_rank()`;
- the LoRA targets (its defaults when `fl.target_modules` is empty) and `init_state(rank,
  num_classes, generator)`, the plain state dict of strategies/base.py;
- tokenization and prompting: `make_task(data, max_length)` returns the task the executors draw
  batches from (`rows`, `batch`, `row_widths`, `width`) and score with (`score_set(split, rows)`,
  an `iovsim.fl.families.scores.ScoreSet`);
- the loss and the outputs: `features(batch)` (the base's forward as it stands: peft adapter on,
  or bare with the batched executor's hooks), `outputs(head, features, y)` / `slot_outputs(...)`,
  `loss(outputs, y)`; `load`/`export`/`head_parameters` (sequential) and `slot_head`/`export_head`
  (batched) for the trainable tensors besides LoRA (`extra_keys`).

The LoRA mechanics they share (targets by name, peft adapters by rank, `.delta` merging, the bare
base) are `iovsim.fl.families.lora.LoraModel`.
"""
from __future__ import annotations

import importlib

from iovsim.fl.families.lora import ModelError

FAMILIES = {"encoder": "iovsim.fl.families.encoder", "causal_lm": "iovsim.fl.families.causal_lm"}
"""Family name -> module. `fl.family: auto` asks them in this order after the keywords (the
encoder claims whatever no other family does)."""
DETECT_ORDER = ("causal_lm", "encoder")


def family_module(name: str):
    if name not in FAMILIES:
        raise ModelError(f"unknown model family {name!r} (expected one of {', '.join(FAMILIES)})", field="family")
    return importlib.import_module(FAMILIES[name])


def _peek_config(model_name: str):
    """The model's transformers config, or None when it cannot be read here (the family's own
    loading then reports why, in one line)."""
    from iovsim.fl.families.causal_load import peek_config

    return peek_config(model_name)


def detect_family(model_name: str) -> str:
    """The family of `fl.model`: a keyword a family claims, else the architecture of its config."""
    for name in DETECT_ORDER:
        if family_module(name).claims_name(model_name):
            return name
    cfg = _peek_config(model_name)
    for name in DETECT_ORDER:
        if cfg is not None and family_module(name).claims_config(cfg):
            return name
    return DETECT_ORDER[-1]


def load_model(model_name: str, target_modules=(), lora_alpha: float = 16.0, device: str = "cpu",
               threads: int = 0, family: str = "auto", **options):
    """The family model of `model_name` (`family` = `auto`: detected), LoRA on `target_modules`
    (empty: the family's defaults for the architecture); `options` are family settings (causal_eval)."""
    name = detect_family(model_name) if family == "auto" else family
    cls = family_module(name).Family
    return cls(model_name, list(target_modules), lora_alpha, device=device, threads=threads, **options)
