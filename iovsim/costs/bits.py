"""Bits a vehicle exchanges in a round: adapters, and activations in split training."""
from __future__ import annotations

import numpy as np

from iovsim.costs.shape import ModelShape


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
