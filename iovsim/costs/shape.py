"""The dimensions of a transformer encoder with LoRA adapters, as the cost model needs them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelShape:
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    vocab_size: int
    lora_targets: list[tuple[int, int]]   # (in_features, out_features) of each LoRA-wrapped linear in ONE layer
    head_params: int
    seq_len: int
    batch_size: int
    bytes_per_param: int = 4
