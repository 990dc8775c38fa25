"""Device memory of a local training job: what a vehicle's accelerator must hold to train at a rank.

training_bytes = weights + trainable state + activations (+ a causal LM's logits), with
e = `shape.compute_bytes` (fp32 4, bf16 2), B sequences of S tokens, hidden h, a heads:

* weights: the frozen base, `base_params` x e; frozen, so no gradients and no optimizer state;
* trainable: the LoRA factors and the head (`bits.adapter_params`) x 16 bytes: the fp32 value, its
  gradient and AdamW's two moments, 4 bytes each;
* activations kept for the backward pass, per layer:
      e B S [2h                          the two norms' inputs
             + h + 2 q + 2 kv            attention: projections' input, Q, K, V, output projection's input
             + h + (2I gated | I) + I]   MLP: input, the activation's input(s), the down projection's input
      + e B a S^2                        the softmax output
      + with dropout: B S 2h + B a S^2 one-byte masks, and e B a S^2 the dropped-out probabilities.
  This is the count of Korthikanti et al. 2022 ("Reducing activation recomputation in large
  transformer models", Sec. 4.1) generalised to grouped-query attention (q = n_heads x head_dim,
  kv = n_kv x head_dim), gated MLPs and any MLP width I: for multi-head attention, I = 4h, e = 2 and
  dropout it is their S B h (34 + 5 a S / h) bytes per layer (tested). K and V are counted at the
  projections' width, before any repetition of the KV heads;
* a causal LM's logits: 2 x B T V x 4 bytes, the fp32 logits and the log-softmax the cross
  entropy keeps, at the T = `lm_head_tokens` answer positions of each sequence (the family computes
  no others; T is the task's mean, so a batch of longer answers holds more).

Left out: the embedding's output, optimizer scratch, the framework's workspace and fragmentation,
so this is a lower bound of what a real job allocates. A split-training participant holds less
(only its layers); the whole job is what is counted.
"""
from __future__ import annotations

import numpy as np

from iovsim.costs.bits import adapter_params
from iovsim.costs.shape import ModelShape, key_value_dim, layer_linears, query_dim

#: fp32 value + gradient + AdamW's two moments, per trainable parameter.
TRAINABLE_BYTES_PER_PARAM = 16
#: the causal LM family computes the logits in fp32 for the loss: them and the log-softmax it keeps.
LOGITS_BYTES_PER_VALUE = 2 * 4


def base_params(shape: ModelShape) -> int:
    """The frozen base's parameters: `shape.base_params`, else the vocabulary embedding and every
    layer's linears (V h + L sum(in x out); biases, norms and positions are small and left out)."""
    if shape.base_params:
        return int(shape.base_params)
    return shape.vocab_size * shape.hidden_size + shape.num_layers * sum(a * b for a, b in layer_linears(shape))


def activation_bytes_per_layer(shape: ModelShape) -> float:
    """Bytes one layer keeps for the backward pass of a batch (module docstring)."""
    s = shape
    h, i, e = s.hidden_size, s.intermediate_size, s.compute_bytes
    q, kv = query_dim(s), key_value_dim(s)
    per_token = 2 * h + (h + 2 * q + 2 * kv) + (h + (2 * i if s.gated_mlp else i) + i)
    tokens, scores = s.batch_size * s.seq_len, s.batch_size * s.num_heads * s.seq_len * s.seq_len
    out = float(e * tokens * per_token + e * scores)
    if s.dropout:
        out += tokens * 2 * h + scores * (1 + e)
    return out


def logits_bytes(shape: ModelShape) -> float:
    """Bytes of a causal LM's logits for the loss, at its answer positions (0 without a vocabulary projection)."""
    return float(LOGITS_BYTES_PER_VALUE * shape.batch_size * shape.lm_head_tokens * shape.lm_head_size)


def training_bytes(shape: ModelShape, rank) -> float | np.ndarray:
    """Device memory of a training job at LoRA rank `rank` (scalar or array), in bytes."""
    s = shape
    fixed = (base_params(s) * float(s.compute_bytes) + s.num_layers * activation_bytes_per_layer(s)
             + logits_bytes(s))
    out = fixed + TRAINABLE_BYTES_PER_PARAM * np.asarray(adapter_params(s, rank), dtype=float)
    return float(out) if np.ndim(out) == 0 else out
