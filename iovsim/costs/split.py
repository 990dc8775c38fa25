"""Split training (split federated LoRA, arXiv 2407.02924) as a protocol: the sub-phases of one local
step, and their time and energy at given rates. The planner (strategies.split_lora) prices a round
with `round_cost`; the engine's transfer (engine.split_transfer) runs the same `step_segments` through
the simulation at each step's rates with the same `segment_rate`: one formula, two uses.

The device keeps the embedding, the first `split_layer` = L encoder layers (0 in the paper) and the
task head; the RSU's edge server runs the other N - L layers with their LoRA adapters. One local step
(batch B, sequence S, hidden h; f_fwd, f_bwd per token and layer from `flops.layer_pass_flops_per_token`;
a word is 8 x bytes_per_param bits), in order:

1. device  embedding + L layers forward          8 B S h + B S L f_fwd  FLOPs
2. up      the activations at the split          B S h                   words
3. edge    N - L layers forward                  B S (N - L) f_fwd       FLOPs
4. down    the encoder's pooled output           B h                     words
5. device  head forward, loss, head backward     6 B head_params         FLOPs
6. up      the gradient of the pooled output     B h                     words
7. edge    N - L layers backward (their update)  B S (N - L) f_bwd       FLOPs
8. down    the gradient at the split (L > 0)     B S h                   words
9. device  L layers backward + update (L > 0)    B S L f_bwd             FLOPs

The head sits above the encoder, so a step needs the pooled output down and its gradient up between
the edge's forward and backward passes. The sums are the cost model's split totals: device FLOPs =
`flops.device_flops_per_step`, edge FLOPs = `flops.server_flops_per_step`, bits =
`bits.split_activation_bits_per_step`. Segments of zero size (8 and 9 when L = 0) are left out.

A segment of size x takes x / rate: device FLOP/s, uplink or downlink rate, or the FLOP/s the edge
server gives the job (processor sharing, `edge_share`: 1/n of the RSU's server for n jobs on it at once).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iovsim.costs.bits import device_adapter_params
from iovsim.costs.flops import layer_pass_flops_per_token
from iovsim.costs.shape import ModelShape

# An RSU's edge server when none is configured: a T4-class edge GPU (65 TFLOP/s FP16 peak at ~30 % use).
# `rsu.edge_flops_per_s` defaults to the same figure (mobility's config cannot import costs).
DEFAULT_EDGE_FLOPS_PER_S = 2e13

DEVICE, UP, EDGE, DOWN = "device", "up", "edge", "down"


def edge_share(jobs_on_rsu):
    """The one rule for the share of its RSU's edge server a split job gets, planned and charged alike:
    processor sharing, 1/n of the server for n split jobs on it at once. The engine's transfer applies
    it at every instant to the jobs then in an edge sub-phase; a plan counts every split job it puts on
    the RSU (split_lora: the participants it expects there) as concurrent, an upper bound on the wait."""
    return 1.0 / np.maximum(np.asarray(jobs_on_rsu, dtype=float), 1.0)


def edge_flops_of(edge_flops_per_s, rsu):
    """The edge server FLOP/s of RSU(s) `rsu`: `rsu.edge_flops_per_s` is one number or one per RSU."""
    value = np.asarray(edge_flops_per_s, dtype=float)
    return value if value.ndim == 0 else value[np.asarray(rsu, dtype=int)]


@dataclass(frozen=True)
class Segment:
    kind: str       # device | up | edge | down
    amount: float   # FLOPs (device, edge) or bits (up, down)
    what: str       # what it is (docs, tests)


def step_segments(shape: ModelShape, split_layer: int, rank) -> tuple[Segment, ...]:
    """The sub-phases of one split step, in order (see the module docstring)."""
    s, L = shape, int(split_layer)
    tokens = s.batch_size * s.seq_len
    fwd, bwd = layer_pass_flops_per_token(s, rank)
    word = 8.0 * s.bytes_per_param
    act, pooled = tokens * s.hidden_size * word, s.batch_size * s.hidden_size * word
    seq = [Segment(DEVICE, 8.0 * tokens * s.hidden_size + tokens * L * fwd, "embedding + device layers forward"),
           Segment(UP, act, "activations at the split"),
           Segment(EDGE, tokens * (s.num_layers - L) * fwd, "edge layers forward"),
           Segment(DOWN, pooled, "pooled output"),
           Segment(DEVICE, 6.0 * s.head_params * s.batch_size, "head forward + backward"),
           Segment(UP, pooled, "gradient of the pooled output"),
           Segment(EDGE, tokens * (s.num_layers - L) * bwd, "edge layers backward"),
           Segment(DOWN, act if L > 0 else 0.0, "gradient at the split"),
           Segment(DEVICE, tokens * L * bwd, "device layers backward")]
    return tuple(x for x in seq if x.amount > 0)


def server_bound(segments: tuple[Segment, ...]) -> tuple[int, int]:
    """(first, last) index of the part of a step that needs the edge server's context of that step:
    from the activations' upload to the last download. A migration inside it restarts the step there."""
    radio = [i for i, x in enumerate(segments) if x.kind in (UP, DOWN)]
    return (radio[0], radio[-1]) if radio else (len(segments), -1)


def device_state_bits(shape: ModelShape, split_layer: int, rank) -> float:
    """What the device downloads at the round's start and uploads at its end: the head and the
    adapters of its own layers (the edge's adapters stay on the RSU)."""
    return float(device_adapter_params(shape, split_layer, rank)) * 8.0 * shape.bytes_per_param


def server_state_bits(shape: ModelShape, split_layer: int, rank, optimizer: bool = True) -> float:
    """The edge's part of the job: the LoRA adapters of the N - L edge layers, with AdamW's two moments
    per parameter while training (what a migration forwards over the backhaul)."""
    params = (shape.num_layers - int(split_layer)) * sum(a + b for a, b in shape.lora_targets) * float(rank)
    return params * (3.0 if optimizer else 1.0) * 8.0 * shape.bytes_per_param


def segment_rate(kind: str, device_flops_per_s, up_rate_bps, down_rate_bps, edge_flops_per_s):
    """How fast a segment of `kind` is worked off (FLOP/s or bit/s)."""
    return {DEVICE: device_flops_per_s, UP: up_rate_bps, DOWN: down_rate_bps, EDGE: edge_flops_per_s}[kind]


@dataclass
class RoundCost:
    """A split round at fixed rates (arrays broadcast over vehicles)."""

    time_s: object          # download + steps x step + upload
    step_s: object          # one local step
    uplink_s: object        # all uplink airtime: activations, pooled gradients, the device's update
    uplink_bits: object
    energy_j: object        # device compute of every step + transmit power x uplink airtime
    edge_s: object          # the edge's compute time of every step at the given edge FLOP/s


def round_cost(segments: tuple[Segment, ...], steps, state_bits, *, device_flops_per_s, energy_per_flop_j,
               tx_power_w, up_rate_bps, down_rate_bps, edge_flops_per_s) -> RoundCost:
    """Time and device energy of a split round: download `state_bits`, `steps` steps of `segments`,
    upload `state_bits`, every segment at its rate (`segment_rate`)."""
    zero = np.zeros(np.broadcast(np.asarray(up_rate_bps), np.asarray(down_rate_bps)).shape)
    by_kind = {k: zero.copy() for k in (DEVICE, UP, EDGE, DOWN)}
    amount = {k: 0.0 for k in by_kind}
    for seg in segments:
        rate = np.asarray(segment_rate(seg.kind, device_flops_per_s, up_rate_bps, down_rate_bps, edge_flops_per_s),
                          dtype=float)
        by_kind[seg.kind] = by_kind[seg.kind] + _seconds(seg.amount, rate)
        amount[seg.kind] += seg.amount
    step_s = sum(by_kind.values())
    n = np.asarray(steps, dtype=float)
    up_state, down_state = _seconds(state_bits, up_rate_bps), _seconds(state_bits, down_rate_bps)
    uplink_s = n * by_kind[UP] + up_state
    energy = n * amount[DEVICE] * np.asarray(energy_per_flop_j, float) + np.asarray(tx_power_w, float) * uplink_s
    return RoundCost(down_state + n * step_s + up_state, step_s, uplink_s, n * amount[UP] + state_bits + zero,
                     energy, n * by_kind[EDGE])


def _seconds(amount, rate):
    rate = np.asarray(rate, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, amount / np.where(rate > 0, rate, 1.0), np.inf) if amount > 0 else 0.0 * rate
