"""The cost model of one round: FLOPs and bits of the model shape, on each vehicle's device and link."""
from __future__ import annotations

import numpy as np

from iovsim.costs import bits as _bits
from iovsim.costs import flops as _flops
from iovsim.costs import memory as _memory
from iovsim.costs import split as _split
from iovsim.costs.protocol import LinkRates
from iovsim.costs.shape import ModelShape


class CostModel:
    """Latency and energy of compute and radio for the vehicles of one link snapshot.

    Per-vehicle arrays (`flops_per_s`, `power_w`, and the kappa energy model's `cpu_frequency_hz`,
    `kappa`, `cycles_per_flop`; see `iovsim.costs.tiers.DeviceTier`) are aligned with the vehicles;
    methods take `vehicle` as row indices into them. `rates` gives the achievable link rates of the
    same vehicles (None: the radio methods are unavailable). `split_layer` is the number of encoder
    layers kept on the device in split training (0 = embedding and head only, arXiv 2407.02924);
    `edge_flops_per_s` is an RSU's edge server (one number, or one per RSU), which runs the other layers
    (`iovsim.costs.split`).
    Implements `iovsim.costs.protocol.CostModelProtocol`.
    """

    def __init__(self, shape: ModelShape, *, flops_per_s, power_w, cpu_frequency_hz, kappa, cycles_per_flop,
                 rates: LinkRates | None, split_layer: int = 0, row_shapes: list[ModelShape] | None = None,
                 edge_flops_per_s: float | list[float] = _split.DEFAULT_EDGE_FLOPS_PER_S):
        if not 0 <= split_layer <= shape.num_layers:
            raise ValueError(f"split_layer must be in 0..{shape.num_layers}, got {split_layer}")
        self.shape = shape
        # Each vehicle's own task shape (its sequence length and head) for compute; None = `shape` for all.
        self.row_shapes = None if row_shapes is None else list(row_shapes)
        self.rates = rates
        self.split_layer = int(split_layer)
        self.edge_flops_per_s = np.asarray(edge_flops_per_s, dtype=float)  # one number, or one per RSU
        cols = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float))
                                     for x in (flops_per_s, power_w, cpu_frequency_hz, kappa, cycles_per_flop)))
        self.device_flops_per_s, self.device_power_w, self.cpu_frequency_hz, self.kappa, cpf = cols
        # Default C/f = FLOPs / FLOP/s, so the kappa energy and the compute time describe the same run.
        self.cycles_per_flop = np.where(cpf > 0, cpf, self.cpu_frequency_hz / self.device_flops_per_s)
        self.use_kappa = (self.kappa > 0) & (self.cpu_frequency_hz > 0)

    # ------------------------------------------------------------------ FLOPs and bits
    def flops_per_step(self, rank) -> float | np.ndarray:
        return _flops.flops_per_step(self.shape, rank)

    def device_flops_per_step(self, rank) -> float | np.ndarray:
        return _flops.device_flops_per_step(self.shape, self.split_layer, rank)

    def adapter_bits(self, rank, vehicle=None) -> float | np.ndarray:
        """Bits of an adapter at `rank` (`costs.bits.adapter_bits`). With `vehicle` (row indices,
        broadcast with `rank`): on each vehicle's own task shape, whose head has its task's classes
        (what the engine charges and the strategies plan with); without: on `shape`."""
        if vehicle is None:
            return _bits.adapter_bits(self.shape, rank)
        v, r = np.broadcast_arrays(np.asarray(vehicle, dtype=int), np.asarray(rank))
        out = np.asarray([_bits.adapter_bits(self._shape_of(int(i)), ri) for i, ri in zip(v.ravel(), r.ravel())],
                         dtype=float).reshape(v.shape)
        return float(out) if out.ndim == 0 else out

    def delta_bits(self) -> float:
        return _bits.delta_bits(self.shape)

    def split_upload_bits(self, rank, steps) -> float | np.ndarray:
        return _bits.split_upload_bits(self.shape, self.split_layer, rank, steps)

    def split_download_bits(self, rank, steps) -> float | np.ndarray:
        return _bits.split_download_bits(self.shape, self.split_layer, rank, steps)

    def training_memory_bytes(self, vehicle, rank) -> np.ndarray:
        """Device memory a training job of each vehicle `vehicle` (its task's shape) needs at `rank`
        (`costs.memory.training_bytes`)."""
        v = np.atleast_1d(np.asarray(vehicle, dtype=int))
        r = np.broadcast_to(np.asarray(rank), v.shape)
        return np.asarray([_memory.training_bytes(self._shape_of(int(i)), int(ri)) for i, ri in zip(v, r)], dtype=float)

    # ------------------------------------------------------------------ compute
    def _step_flops(self, v: np.ndarray, rank, device_only: bool) -> np.ndarray:
        """FLOPs of one step for each vehicle `v` at `rank`, on its own task's shape."""
        fn = ((lambda sh, r: _flops.device_flops_per_step(sh, self.split_layer, r)) if device_only
              else _flops.flops_per_step)
        if self.row_shapes is None:
            return np.asarray(fn(self.shape, np.asarray(rank)), dtype=float)
        r = np.broadcast_to(np.asarray(rank), v.shape)
        return np.asarray([fn(self.row_shapes[int(i)], int(ri)) for i, ri in zip(v.ravel(), r.ravel())],
                          dtype=float).reshape(v.shape)

    def _energy_of(self, v, flops, time_s):
        cycles = flops * self.cycles_per_flop[v]
        kappa_e = self.kappa[v] * cycles * self.cpu_frequency_hz[v] ** 2
        return np.where(self.use_kappa[v], kappa_e, self.device_power_w[v] * time_s)

    def compute_time_s(self, vehicle, rank, steps) -> np.ndarray:
        """Time for `steps` local steps at `rank` on each vehicle's device."""
        v = np.asarray(vehicle, dtype=int)
        return self._step_flops(v, rank, False) * np.asarray(steps, dtype=float) / self.device_flops_per_s[v]

    def compute_energy_j(self, vehicle, rank, steps) -> np.ndarray:
        """power x time, or kappa C f^2 (C = FLOPs x cycles per FLOP) where a tier gives kappa and f."""
        v = np.asarray(vehicle, dtype=int)
        flops = self._step_flops(v, rank, False) * np.asarray(steps, dtype=float)
        return self._energy_of(v, flops, flops / self.device_flops_per_s[v])

    def device_compute_time_s(self, vehicle, rank, steps) -> np.ndarray:
        """Device-side time of `steps` split-training steps."""
        v = np.asarray(vehicle, dtype=int)
        return self._step_flops(v, rank, True) * np.asarray(steps, dtype=float) / self.device_flops_per_s[v]

    def device_compute_energy_j(self, vehicle, rank, steps) -> np.ndarray:
        v = np.asarray(vehicle, dtype=int)
        flops = self._step_flops(v, rank, True) * np.asarray(steps, dtype=float)
        return self._energy_of(v, flops, flops / self.device_flops_per_s[v])

    def device_energy_per_flop_j(self, vehicle) -> np.ndarray:
        """Compute energy per FLOP of each vehicle's device (both energy models are linear in FLOPs)."""
        v = np.asarray(vehicle, dtype=int)
        return self._energy_of(v, np.ones(v.shape), 1.0 / self.device_flops_per_s[v])

    # ------------------------------------------------------------------ split training, per step
    def _shape_of(self, vehicle: int) -> ModelShape:
        return self.shape if self.row_shapes is None else self.row_shapes[int(vehicle)]

    def split_segments(self, vehicle: int, rank: int) -> tuple:
        """The sub-phases of one split step of `vehicle` (its task's shape) at `rank` (`costs.split`)."""
        return _split.step_segments(self._shape_of(vehicle), self.split_layer, int(rank))

    def split_state_bits(self, vehicle: int, rank: int) -> tuple[float, float, float]:
        """(the device's part: downloaded at the start, uploaded at the end; the edge's adapters with
        their optimizer moments, forwarded by a migration while training; the edge's adapters alone)."""
        shape = self._shape_of(vehicle)
        return (_split.device_state_bits(shape, self.split_layer, int(rank)),
                _split.server_state_bits(shape, self.split_layer, int(rank)),
                _split.server_state_bits(shape, self.split_layer, int(rank), optimizer=False))

    def split_round_cost(self, vehicle, rank, steps, tx_power_w, up_rate_bps, down_rate_bps, edge_share, rsu=0):
        """`costs.split.round_cost` per vehicle: time, uplink airtime and bits, device energy, edge time,
        with `edge_share` (0..1], `costs.split.edge_share`) of its RSU `rsu`'s edge server; arrays over `vehicle`."""
        v = np.atleast_1d(np.asarray(vehicle, dtype=int))
        args = np.broadcast_arrays(v, rank, steps, tx_power_w, up_rate_bps, down_rate_bps, edge_share, rsu)
        epf = self.device_energy_per_flop_j(args[0])
        rows = [_split.round_cost(self.split_segments(i, r), n, self.split_state_bits(i, r)[0],
                                  device_flops_per_s=self.device_flops_per_s[i], energy_per_flop_j=e, tx_power_w=p,
                                  up_rate_bps=u, down_rate_bps=d,
                                  edge_flops_per_s=float(_split.edge_flops_of(self.edge_flops_per_s, m)) * sh)
                for i, r, n, p, u, d, sh, m, e in zip(*args, epf)]
        return _split.RoundCost(*(np.asarray([getattr(c, f) for c in rows], dtype=float)
                                  for f in ("time_s", "step_s", "uplink_s", "uplink_bits", "energy_j", "edge_s")))

    # ------------------------------------------------------------------ radio
    def upload_rate_bps(self, vehicle, tx_power_w, bandwidth_hz) -> np.ndarray:
        return self.rates.uplink_rate_bps(np.asarray(vehicle, dtype=int), tx_power_w, bandwidth_hz)

    def download_rate_bps(self, vehicle, bandwidth_hz) -> np.ndarray:
        return self.rates.downlink_rate_bps(np.asarray(vehicle, dtype=int), bandwidth_hz)
