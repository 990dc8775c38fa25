"""FLOPs of one local step of a transformer encoder with a frozen base and LoRA adapters.

Matrix products only (2 FLOPs per multiply-add; layer norms, softmax and other element-wise work
are left out, as in Kaplan et al. 2020 "Scaling laws", whose forward cost is 2 N per token):

* forward, per token and layer: Q, K, V, O projections 8 h^2, feed-forward 4 h I, attention scores
  and their weighted sum 4 S h;
* backward with the base frozen: no weight gradients, but activation gradients flow through every
  layer down to the first adapter: 1x the forward cost of each frozen linear, 2x that of the two
  attention products (both operands are activations);
* each LoRA target (in -> r -> out): 2 r (in + out) forward, 4 r (in + out) backward (weight and
  activation gradients), i.e. 6 r (in + out) per token;
* the task head (on the pooled token): 6 x its parameters per sample.

`split_layer` is the number of encoder layers kept on the device in split training (0 = embedding
and head only, as in split federated LoRA, arXiv 2407.02924).
"""
from __future__ import annotations

import numpy as np

from iovsim.costs.shape import ModelShape


def _scalar_or_array(out):
    return float(out) if np.ndim(out) == 0 else out


def frozen_layer_flops_per_token(shape: ModelShape) -> float:
    """Forward + activation-gradient FLOPs of one frozen layer for one token."""
    h, i = shape.hidden_size, shape.intermediate_size
    linear = 8.0 * h * h + 4.0 * h * i
    attn = 4.0 * shape.seq_len * h
    return 2.0 * linear + 3.0 * attn


def layer_pass_flops_per_token(shape: ModelShape, rank) -> tuple[float, float]:
    """(forward, backward) FLOPs of one adapted layer for one token at `rank`: forward = the linears
    + the attention products + 2 r sum(in + out); backward = the linears' activation gradients + 2x
    the attention products + 4 r sum(in + out). Their sum is frozen + LoRA of `flops_per_step`."""
    h, i = shape.hidden_size, shape.intermediate_size
    linear = 8.0 * h * h + 4.0 * h * i
    attn = 4.0 * shape.seq_len * h
    lora = sum(a + b for a, b in shape.lora_targets) * float(rank)
    return linear + attn + 2.0 * lora, linear + 2.0 * attn + 4.0 * lora


def lora_flops_per_token_per_rank(shape: ModelShape) -> float:
    """LoRA FLOPs of one layer per token and per unit of rank: 6 sum(in + out)."""
    return 6.0 * sum(a + b for a, b in shape.lora_targets)


def flops_per_step(shape: ModelShape, rank) -> float | np.ndarray:
    """FLOPs of one local step (batch) at LoRA rank `rank` (scalar or array)."""
    s = shape
    tokens = s.batch_size * s.seq_len
    base = tokens * s.num_layers * frozen_layer_flops_per_token(s) + 6.0 * s.head_params * s.batch_size
    per_rank = tokens * s.num_layers * lora_flops_per_token_per_rank(s)
    return _scalar_or_array(base + per_rank * np.asarray(rank, dtype=float))


def device_flops_per_step(shape: ModelShape, split_layer: int, rank) -> float | np.ndarray:
    """Device-side FLOPs of one split step: embedding sum + layer norm (~8 FLOPs per element),
    `split_layer` layers with their adapters, and the head."""
    s = shape
    tokens = s.batch_size * s.seq_len
    out = (8.0 * tokens * s.hidden_size + 6.0 * s.head_params * s.batch_size
           + tokens * split_layer * (frozen_layer_flops_per_token(s)
                                     + lora_flops_per_token_per_rank(s) * np.asarray(rank, dtype=float)))
    return _scalar_or_array(out)


def server_flops_per_step(shape: ModelShape, split_layer: int, rank) -> float | np.ndarray:
    """Edge-server FLOPs of one split step (the encoder layers above the split, with adapters)."""
    s = shape
    tokens = s.batch_size * s.seq_len
    out = tokens * (s.num_layers - split_layer) * (frozen_layer_flops_per_token(s)
                                                   + lora_flops_per_token_per_rank(s) * np.asarray(rank, dtype=float))
    return _scalar_or_array(out)
