"""Compute (FLOPs, time, energy) and communication (adapter / activation bits) cost model."""
import numpy as np
import pytest

from iovsim.channel import Channel, CostModel, ModelShape
from iovsim.channel.config import ChannelConfig

# all-MiniLM-L6-v2 with LoRA on query and value, 3 classes.
SHAPE = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                   lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 3, seq_len=128, batch_size=16)


class Rsu:
    height_m, tx_power_dbm, bandwidth_hz, noise_figure_db = 10.0, 30.0, 20e6, 5.0


def _costs(**kw):
    ch = Channel(ChannelConfig(los_model="los", shadowing=False), Rsu(), np.array([[0.0, 0.0]]), 0)
    link = ch.step(0.0, ["a", "b", "c"], np.array([[100.0, 0.0], [300.0, 0.0], [5e5, 0.0]]))
    return CostModel(SHAPE, np.array([5e10, 2e11, 1e12]), np.array([8.0, 15.0, 40.0]), ch, link, 0.1, **kw), ch, link


def test_adapter_bits_by_hand():
    c, _, _ = _costs()
    for r in (1, 4, 8, 16):
        params = 6 * 2 * r * (384 + 384) + 1155
        assert c.adapter_params(r) == params
        assert c.adapter_bits(r) == params * 32
    assert c.adapter_bits(8) == 2_396_256  # 6 x 2 x 8 x 768 + 1155 = 74,883 params x 32 bits
    half = ModelShape(**{**SHAPE.__dict__, "bytes_per_param": 2})
    assert CostModel(half, 1e11, 10.0, None, None, 0.1).adapter_bits(8) == 74_883 * 16


def test_flops_by_hand_and_scaling_with_rank():
    c, _, _ = _costs()
    h, i, s, b, layers = 384, 1536, 128, 16, 6
    tokens = b * s
    frozen = tokens * layers * (2 * (8 * h * h + 4 * h * i) + 3 * 4 * s * h)   # forward + activation grads
    head = 6 * 1155 * b
    per_rank = tokens * layers * 6 * (768 + 768)                           # 2 targets, 6 r (in + out) per token
    assert c.flops_per_step(0) == pytest.approx(frozen + head)
    for r in (1, 8, 32):
        assert c.flops_per_step(r) == pytest.approx(frozen + head + r * per_rank)
    f = np.array([c.flops_per_step(r) for r in (2, 4, 8, 16)])
    assert np.all(np.diff(f) > 0) and np.allclose(np.diff(f) / np.array([2, 4, 8]), per_rank)
    assert np.allclose(c.flops_per_step(np.array([2, 8])), [c.flops_per_step(2), c.flops_per_step(8)])
    # Frozen-base training is cheaper than full fine-tuning (~3x forward): here ~2x forward.
    fwd = tokens * layers * (8 * h * h + 4 * h * i + 4 * s * h)
    assert 1.9 < c.flops_per_step(8) / fwd < 2.5


def test_compute_time_and_energy():
    c, _, _ = _costs()
    v = np.array([0, 1, 2])
    t = c.compute_time_s(v, np.array([8, 8, 4]), np.array([10, 10, 5]))
    assert np.allclose(t, [c.flops_per_step(8) * 10 / 5e10, c.flops_per_step(8) * 10 / 2e11, c.flops_per_step(4) * 5 / 1e12])
    e = c.compute_energy_j(v, np.array([8, 8, 4]), np.array([10, 10, 5]))
    assert np.allclose(e, t * np.array([8.0, 15.0, 40.0]))


def test_kappa_energy_model():
    f = np.array([2e9, 0.0, 2e9])
    kappa = np.array([1e-28, 1e-28, 0.0])
    c, _, _ = _costs(cpu_frequency_hz=f, kappa=kappa)
    v = np.arange(3)
    flops = c.flops_per_step(8) * 10
    e = c.compute_energy_j(v, np.full(3, 8), np.full(3, 10))
    cycles = flops * 2e9 / 5e10            # default cycles/FLOP = f / FLOP/s, so C / f = compute time
    assert e[0] == pytest.approx(1e-28 * cycles * (2e9) ** 2)
    assert e[1] == pytest.approx(15.0 * flops / 2e11)   # no frequency: power x time
    assert e[2] == pytest.approx(40.0 * flops / 1e12)   # no kappa: power x time
    c2, _, _ = _costs(cpu_frequency_hz=f, kappa=kappa, cycles_per_flop=np.full(3, 0.5))
    assert c2.compute_energy_j(v, np.full(3, 8), np.full(3, 10))[0] == pytest.approx(1e-28 * flops * 0.5 * 4e18)


def test_upload_download_time_and_energy():
    c, ch, link = _costs()
    v = np.array([0, 1, 2])
    p = np.full(3, 0.1)
    bw = np.full(3, 2e6)
    rate = ch.uplink_rate_bps(link, v, p, bw)
    assert np.allclose(c.upload_rate_bps(v, p, bw), rate)
    t = c.upload_time_s(v, np.full(3, 8), p, bw)
    assert np.allclose(t[:2], c.adapter_bits(8) / rate[:2]) and t[2] == np.inf    # c is out of coverage
    assert np.allclose(c.upload_energy_j(v, np.full(3, 8), p, bw)[:2], 0.1 * t[:2])
    d = c.download_time_s(v, np.full(3, 8), bw)
    assert np.allclose(d[:2], c.adapter_bits(8) / ch.downlink_rate_bps(link, v, bw)[:2])


def test_split_costs_by_hand():
    c, _, _ = _costs()
    b, s, h = 16, 128, 384
    up, down = c.split_activation_bits_per_step()
    assert up == (b * s * h + b * h) * 32 and down == b * h * 32
    assert c.split_upload_bits(8, 10) == 10 * up + 1155 * 32      # only the head lives on the device
    assert c.device_flops_per_step(8) == pytest.approx(8 * b * s * h + 6 * 1155 * b)
    assert c.server_flops_per_step(8) + c.device_flops_per_step(8) == pytest.approx(
        c.flops_per_step(8) + 8 * b * s * h)
    assert np.all(c.device_compute_time_s(np.array([0, 1]), 8, 10) < c.compute_time_s(np.array([0, 1]), 8, 10))
    c2 = CostModel(SHAPE, 1e11, 10.0, None, None, 0.1, split_layer=2)
    up2, down2 = c2.split_activation_bits_per_step()
    assert down2 == (b * h + b * s * h) * 32                         # gradients return to trainable device layers
    assert c2.split_upload_bits(8, 1) == up2 + (2 * 2 * 8 * 768 + 1155) * 32
    with pytest.raises(ValueError):
        CostModel(SHAPE, 1e11, 10.0, None, None, 0.1, split_layer=7)
