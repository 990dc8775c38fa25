"""FLOPs of one local step of a transformer (encoder or decoder) with a frozen base and LoRA adapters.

Matrix products only (2 FLOPs per multiply-add; layer norms, softmax, rotary embeddings and other
element-wise work are left out, as in Kaplan et al. 2020 "Scaling laws", whose forward cost is 2 N
per token):

* forward, per token and layer: every frozen linear of the layer, 2 sum(in x out) over
  `shape.layer_linears` (the encoder: Q, K, V, O 8 h^2 + feed-forward 4 h I; a llama decoder with
  grouped-query attention: q h x n_heads d, k and v h x n_kv d, o, and gate, up, down 3 x h x I);
  attention scores and their weighted sum 4 S x (n_heads x head_dim), the full S x S products
  (a causal mask does not skip the upper triangle in the eager and SDPA-math kernels);
* backward with the base frozen: no weight gradients, but activation gradients flow through every
  layer down to the first adapter: 1x the forward cost of each frozen linear, 2x that of the two
  attention products (both operands are activations);
* each LoRA target (in -> r -> out): 2 r (in + out) forward, 4 r (in + out) backward (weight and
  activation gradients), i.e. 6 r (in + out) per token;
* the encoder's task head (on the pooled token): 6 x its parameters per sample;
* a causal LM's frozen vocabulary projection (`lm_head_size` = V): 2 h V forward and 2 h V backward
  (the gradient reaching the last hidden state) per position it runs on, `lm_head_tokens` of each
  sequence: the causal LM family applies it to the last hidden state at the answer positions only
  (`CausalLM.outputs`, the positions `causal_task.head_positions` marks, which are the ones the
  loss scores), never to the prompt or the padding, so that is what is counted.

`split_layer` is the number of encoder layers kept on the device in split training (0 = embedding
and head only, as in split federated LoRA, arXiv 2407.02924); the split protocol is the encoder's
(pooled head), a causal LM's vocabulary projection is not placed by it.
"""
from __future__ import annotations

import numpy as np

from iovsim.costs.shape import ModelShape, query_dim


def _scalar_or_array(out):
    return float(out) if np.ndim(out) == 0 else out


def linear_flops_per_token(shape: ModelShape) -> float:
    """Forward FLOPs of one layer's frozen linears for one token: 2 sum(in x out)."""
    if shape.frozen_linears is None:  # the encoder's four h x h projections and two MLP matrices
        h, i = shape.hidden_size, shape.intermediate_size
        return 8.0 * h * h + 4.0 * h * i
    return 2.0 * float(sum(a * b for a, b in shape.frozen_linears))


def attention_flops_per_token(shape: ModelShape) -> float:
    """Forward FLOPs of one layer's two attention products for one token: 4 S (n_heads x head_dim)."""
    return 4.0 * shape.seq_len * query_dim(shape)


def lm_head_flops_per_token(shape: ModelShape) -> float:
    """Forward + activation-gradient FLOPs of a frozen vocabulary projection at one position: 4 h V."""
    return 4.0 * shape.hidden_size * shape.lm_head_size


def frozen_layer_flops_per_token(shape: ModelShape) -> float:
    """Forward + activation-gradient FLOPs of one frozen layer for one token."""
    linear, attn = linear_flops_per_token(shape), attention_flops_per_token(shape)
    return 2.0 * linear + 3.0 * attn


def layer_pass_flops_per_token(shape: ModelShape, rank) -> tuple[float, float]:
    """(forward, backward) FLOPs of one adapted layer for one token at `rank`: forward = the linears
    + the attention products + 2 r sum(in + out); backward = the linears' activation gradients + 2x
    the attention products + 4 r sum(in + out). Their sum is frozen + LoRA of `flops_per_step`."""
    linear, attn = linear_flops_per_token(shape), attention_flops_per_token(shape)
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
    if s.lm_head_size:  # a causal LM's vocabulary projection, at the answer positions of each sequence
        base = base + s.batch_size * s.lm_head_tokens * lm_head_flops_per_token(s)
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
