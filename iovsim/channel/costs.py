"""Compute and communication costs of a local LoRA round (numbers in, numbers out).

FLOPs of one local step of a transformer encoder with a frozen base and LoRA adapters, counting
the matrix products (2 FLOPs per multiply-add; layer norms, softmax and other element-wise work are
left out, as in Kaplan et al. 2020 "Scaling laws", whose forward cost is 2 N per token):

* forward, per token and layer: Q, K, V, O projections 8 h^2, feed-forward 4 h I, attention scores
  and their weighted sum 4 S h;
* backward with the base frozen: no weight gradients, but activation gradients flow through every
  layer down to the first adapter: 1x the forward cost of each frozen linear, 2x that of the two
  attention products (both operands are activations);
* each LoRA target (in -> r -> out): 2 r (in + out) forward, 4 r (in + out) backward (weight and
  activation gradients), i.e. 6 r (in + out) per token;
* the task head (on the pooled token): 6 x its parameters per sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


class CostModel:
    """Latency and energy of compute and radio for the vehicles of one `LinkState`.

    Per-vehicle arrays (`device_flops_per_s`, `device_power_w`, and the optional DeviceTier-derived
    `cpu_frequency_hz`, `kappa`, `cycles_per_flop`) are aligned with `link.vehicle_ids`; methods take
    `vehicle` as row indices into them. `split_layer` is the number of encoder layers kept on the
    device in split training (0 = embedding and head only, as in split federated LoRA, arXiv 2407.02924).
    """

    def __init__(self, shape: ModelShape, device_flops_per_s: np.ndarray, device_power_w: np.ndarray, channel,
                 link, default_tx_power_w: float, cpu_frequency_hz: np.ndarray | None = None,
                 kappa: np.ndarray | None = None, cycles_per_flop: np.ndarray | None = None, split_layer: int = 0):
        self.shape = shape
        self.channel = channel
        self.link = link
        n = len(link.vehicle_ids) if link is not None else np.size(device_flops_per_s)
        self.device_flops_per_s = np.broadcast_to(np.asarray(device_flops_per_s, dtype=float), (n,))
        self.device_power_w = np.broadcast_to(np.asarray(device_power_w, dtype=float), (n,))
        self.default_tx_power_w = float(default_tx_power_w)
        z = np.zeros(n)
        self.cpu_frequency_hz = z if cpu_frequency_hz is None else np.broadcast_to(np.asarray(cpu_frequency_hz, dtype=float), (n,))
        self.kappa = z if kappa is None else np.broadcast_to(np.asarray(kappa, dtype=float), (n,))
        cpf = z if cycles_per_flop is None else np.broadcast_to(np.asarray(cycles_per_flop, dtype=float), (n,))
        # Default C/f = FLOPs / FLOP/s, so the kappa energy and the compute time describe the same run.
        self.cycles_per_flop = np.where(cpf > 0, cpf, self.cpu_frequency_hz / self.device_flops_per_s)
        self.use_kappa = (self.kappa > 0) & (self.cpu_frequency_hz > 0)
        if not 0 <= split_layer <= shape.num_layers:
            raise ValueError(f"split_layer must be in 0..{shape.num_layers}, got {split_layer}")
        self.split_layer = int(split_layer)

    # ------------------------------------------------------------------ FLOPs
    def _layer_flops_per_token(self) -> tuple[float, float]:
        s = self.shape
        h, i = s.hidden_size, s.intermediate_size
        linear = 8.0 * h * h + 4.0 * h * i
        attn = 4.0 * s.seq_len * h
        return linear, attn

    def frozen_layer_flops_per_token(self) -> float:
        """Forward + activation-gradient FLOPs of one frozen layer for one token."""
        linear, attn = self._layer_flops_per_token()
        return 2.0 * linear + 3.0 * attn

    def lora_flops_per_token_per_rank(self) -> float:
        """LoRA FLOPs of one layer per token and per unit of rank: 6 sum(in + out)."""
        return 6.0 * sum(a + b for a, b in self.shape.lora_targets)

    def flops_per_step(self, rank) -> float | np.ndarray:
        """FLOPs of one local step (batch) at LoRA rank `rank` (scalar or array)."""
        s = self.shape
        tokens = s.batch_size * s.seq_len
        base = tokens * s.num_layers * self.frozen_layer_flops_per_token() + 6.0 * s.head_params * s.batch_size
        per_rank = tokens * s.num_layers * self.lora_flops_per_token_per_rank()
        out = base + per_rank * np.asarray(rank, dtype=float)
        return float(out) if np.ndim(out) == 0 else out

    # ------------------------------------------------------------------ bits
    def adapter_params(self, rank) -> float | np.ndarray:
        """Parameters of an adapter of rank r: r (in + out) per target per layer, plus the head."""
        s = self.shape
        out = s.num_layers * sum(a + b for a, b in s.lora_targets) * np.asarray(rank, dtype=float) + s.head_params
        return float(out) if np.ndim(out) == 0 else out

    def adapter_bits(self, rank) -> float | np.ndarray:
        """Bits of an adapter of rank r (A and B of every target in every layer + head) at bytes_per_param."""
        return self.adapter_params(rank) * 8.0 * self.shape.bytes_per_param

    # ------------------------------------------------------------------ compute
    def compute_time_s(self, vehicle, rank, steps) -> np.ndarray:
        """Time for `steps` local steps at `rank` on each vehicle's device."""
        v = np.asarray(vehicle, dtype=int)
        return self.flops_per_step(np.asarray(rank)) * np.asarray(steps, dtype=float) / self.device_flops_per_s[v]

    def _energy_of(self, v, flops, time_s):
        cycles = flops * self.cycles_per_flop[v]
        kappa_e = self.kappa[v] * cycles * self.cpu_frequency_hz[v] ** 2
        return np.where(self.use_kappa[v], kappa_e, self.device_power_w[v] * time_s)

    def compute_energy_j(self, vehicle, rank, steps) -> np.ndarray:
        """power x time, or kappa C f^2 (C = FLOPs x cycles per FLOP) where a tier gives kappa and f."""
        v = np.asarray(vehicle, dtype=int)
        flops = self.flops_per_step(np.asarray(rank)) * np.asarray(steps, dtype=float)
        return self._energy_of(v, flops, flops / self.device_flops_per_s[v])

    # ------------------------------------------------------------------ radio
    def upload_rate_bps(self, vehicle, tx_power_w, bandwidth_hz) -> np.ndarray:
        return self.channel.uplink_rate_bps(self.link, np.asarray(vehicle, dtype=int), tx_power_w, bandwidth_hz)

    def download_rate_bps(self, vehicle, bandwidth_hz) -> np.ndarray:
        return self.channel.downlink_rate_bps(self.link, np.asarray(vehicle, dtype=int), bandwidth_hz)

    def upload_time_s(self, vehicle, rank, tx_power_w, bandwidth_hz, bits=None) -> np.ndarray:
        """Time to upload an adapter of `rank` (or `bits`); inf where the rate is 0."""
        b = self.adapter_bits(np.asarray(rank)) if bits is None else np.asarray(bits, dtype=float)
        r = self.upload_rate_bps(vehicle, tx_power_w, bandwidth_hz)
        with np.errstate(divide="ignore"):
            return np.where(r > 0, b / np.where(r > 0, r, 1.0), np.inf)

    def upload_energy_j(self, vehicle, rank, tx_power_w, bandwidth_hz, bits=None) -> np.ndarray:
        """p x t of the upload (radio energy)."""
        t = self.upload_time_s(vehicle, rank, tx_power_w, bandwidth_hz, bits)
        return np.minimum(np.asarray(tx_power_w, dtype=float), self.channel.max_tx_power_w) * t

    def download_time_s(self, vehicle, rank, bandwidth_hz, bits=None) -> np.ndarray:
        """Time to download the global adapter of `rank` (or `bits`); inf where the rate is 0."""
        b = self.adapter_bits(np.asarray(rank)) if bits is None else np.asarray(bits, dtype=float)
        r = self.download_rate_bps(vehicle, bandwidth_hz)
        with np.errstate(divide="ignore"):
            return np.where(r > 0, b / np.where(r > 0, r, 1.0), np.inf)

    # ------------------------------------------------------------------ split training
    def split_activation_bits_per_step(self) -> tuple[float, float]:
        """(uplink, downlink) bits of one step in split training at `split_layer`.

        Up: the activations at the split (B S h) and the gradient of the pooled output the head
        needs to send back (B h). Down: the encoder's pooled output (B h), and the gradient at the
        split (B S h) only when the device holds trainable layers below it (split_layer > 0).
        """
        s = self.shape
        bits = 8.0 * s.bytes_per_param
        act = s.batch_size * s.seq_len * s.hidden_size * bits
        pooled = s.batch_size * s.hidden_size * bits
        return act + pooled, pooled + (act if self.split_layer > 0 else 0.0)

    def device_adapter_params(self, rank) -> float | np.ndarray:
        """Trainable parameters held by the device in split training: head + adapters of its layers."""
        s = self.shape
        return self.split_layer * sum(a + b for a, b in s.lora_targets) * np.asarray(rank, dtype=float) + s.head_params

    def split_upload_bits(self, rank, steps) -> float | np.ndarray:
        """Uplink bits of a split-training round: per-step activations + the device's trainable part."""
        up, _ = self.split_activation_bits_per_step()
        out = up * np.asarray(steps, dtype=float) + self.device_adapter_params(rank) * 8.0 * self.shape.bytes_per_param
        return float(out) if np.ndim(out) == 0 else out

    def split_download_bits(self, rank, steps) -> float | np.ndarray:
        _, down = self.split_activation_bits_per_step()
        out = down * np.asarray(steps, dtype=float) + self.device_adapter_params(rank) * 8.0 * self.shape.bytes_per_param
        return float(out) if np.ndim(out) == 0 else out

    def device_flops_per_step(self, rank) -> float | np.ndarray:
        """Device-side FLOPs of one split step: embedding sum + layer norm (~8 FLOPs per element),
        `split_layer` layers with their adapters, and the head."""
        s = self.shape
        tokens = s.batch_size * s.seq_len
        out = (8.0 * tokens * s.hidden_size + 6.0 * s.head_params * s.batch_size
               + tokens * self.split_layer * (self.frozen_layer_flops_per_token()
                                              + self.lora_flops_per_token_per_rank() * np.asarray(rank, dtype=float)))
        return float(out) if np.ndim(out) == 0 else out

    def server_flops_per_step(self, rank) -> float | np.ndarray:
        """Edge-server FLOPs of one split step (the encoder layers above the split, with adapters)."""
        s = self.shape
        tokens = s.batch_size * s.seq_len
        out = tokens * (s.num_layers - self.split_layer) * (self.frozen_layer_flops_per_token()
                                                            + self.lora_flops_per_token_per_rank() * np.asarray(rank, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    def device_compute_time_s(self, vehicle, rank, steps) -> np.ndarray:
        v = np.asarray(vehicle, dtype=int)
        return self.device_flops_per_step(np.asarray(rank)) * np.asarray(steps, dtype=float) / self.device_flops_per_s[v]

    def device_compute_energy_j(self, vehicle, rank, steps) -> np.ndarray:
        v = np.asarray(vehicle, dtype=int)
        flops = self.device_flops_per_step(np.asarray(rank)) * np.asarray(steps, dtype=float)
        return self._energy_of(v, flops, flops / self.device_flops_per_s[v])
