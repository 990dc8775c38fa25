"""Bits a vehicle exchanges in a round: adapters, and activations in split training.

Every value on the radio is `shape.bytes_per_param` bytes: the precision adapters (and split
training's activations and gradients) are sent in, `fl.transfer_dtype` (`with_transfer_dtype`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from iovsim.costs.shape import ModelShape

#: `fl.transfer_dtype` -> bits per value sent: IEEE fp32, bfloat16 (8-bit exponent, 7-bit mantissa),
#: IEEE fp16 (5-bit exponent, 10-bit mantissa).
BITS_PER_PARAM = {"fp32": 32, "bf16": 16, "fp16": 16}


def bits_per_param(transfer_dtype: str) -> int:
    """Bits of one value sent in `transfer_dtype` (fp32 | bf16 | fp16)."""
    try:
        return BITS_PER_PARAM[transfer_dtype]
    except KeyError:
        raise ValueError(f"transfer dtype must be one of {', '.join(BITS_PER_PARAM)}, got {transfer_dtype!r}") from None


def with_transfer_dtype(shape: ModelShape, transfer_dtype: str) -> ModelShape:
    """`shape` with the values it sends in `transfer_dtype` (the same object for its own precision)."""
    nbytes = bits_per_param(transfer_dtype) // 8
    return shape if nbytes == shape.bytes_per_param else replace(shape, bytes_per_param=nbytes)


def _scalar_or_array(out):
    return float(out) if np.ndim(out) == 0 else out


def adapter_params(shape: ModelShape, rank) -> float | np.ndarray:
    """Parameters of an adapter of rank r: r (in + out) per target per layer, plus the head."""
    s = shape
    out = s.num_layers * sum(a + b for a, b in s.lora_targets) * np.asarray(rank, dtype=float) + s.head_params
    return _scalar_or_array(out)


def adapter_bits(shape: ModelShape, rank) -> float | np.ndarray:
    """Bits of an adapter of rank r (A and B of every target in every layer + head) at bytes_per_param."""
    return adapter_params(shape, rank) * 8.0 * shape.bytes_per_param


def delta_bits(shape: ModelShape) -> float:
    """Bits of a dense update of every adapted linear (out x in per target per layer), e.g. FLoRA's
    merged delta that a vehicle which missed the stacking rounds must download."""
    return float(shape.num_layers * sum(a * b for a, b in shape.lora_targets) * 8.0 * shape.bytes_per_param)


def split_activation_bits_per_step(shape: ModelShape, split_layer: int) -> tuple[float, float]:
    """(uplink, downlink) bits of one step in split training at `split_layer`.

    Up: the activations at the split (B S h) and the gradient of the pooled output the head
    needs to send back (B h). Down: the encoder's pooled output (B h), and the gradient at the
    split (B S h) only when the device holds trainable layers below it (split_layer > 0).
    """
    s = shape
    bits = 8.0 * s.bytes_per_param
    act = s.batch_size * s.seq_len * s.hidden_size * bits
    pooled = s.batch_size * s.hidden_size * bits
    return act + pooled, pooled + (act if split_layer > 0 else 0.0)


def device_adapter_params(shape: ModelShape, split_layer: int, rank) -> float | np.ndarray:
    """Trainable parameters held by the device in split training: head + adapters of its layers."""
    s = shape
    return split_layer * sum(a + b for a, b in s.lora_targets) * np.asarray(rank, dtype=float) + s.head_params


def split_upload_bits(shape: ModelShape, split_layer: int, rank, steps) -> float | np.ndarray:
    """Uplink bits of a split-training round: per-step activations + the device's trainable part."""
    up, _ = split_activation_bits_per_step(shape, split_layer)
    out = up * np.asarray(steps, dtype=float) + device_adapter_params(shape, split_layer, rank) * 8.0 * shape.bytes_per_param
    return _scalar_or_array(out)


def split_download_bits(shape: ModelShape, split_layer: int, rank, steps) -> float | np.ndarray:
    """Downlink bits of a split-training round: per-step pooled outputs (and split gradients) + the device's part."""
    _, down = split_activation_bits_per_step(shape, split_layer)
    out = down * np.asarray(steps, dtype=float) + device_adapter_params(shape, split_layer, rank) * 8.0 * shape.bytes_per_param
    return _scalar_or_array(out)
