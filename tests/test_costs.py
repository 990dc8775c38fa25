"""Compute (FLOPs, time, energy) and communication (adapter / activation bits) cost model."""
import inspect

import numpy as np
import pytest

from iovsim.channel import Channel
from iovsim.channel.config import ChannelConfig
from iovsim.costs import CostModel, CostModelProtocol, ModelShape, default_device_tiers, tier_columns
from iovsim.costs import bits, flops

# all-MiniLM-L6-v2 with LoRA on query and value, 3 classes.
SHAPE = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                   lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 3, seq_len=128, batch_size=16)


def _model(shape=SHAPE, flops_per_s=1e11, power_w=10.0, f=0.0, kappa=0.0, cpf=0.0, rates=None, split_layer=0):
    return CostModel(shape, flops_per_s=flops_per_s, power_w=power_w, cpu_frequency_hz=f, kappa=kappa,
                     cycles_per_flop=cpf, rates=rates, split_layer=split_layer)


def _costs(f=0.0, kappa=0.0, cpf=0.0):
    ch = Channel(ChannelConfig(los_model="los", shadowing=False), np.array([[0.0, 0.0]]), 0)
    link = ch.step(0.0, ["a", "b", "c"], np.array([[100.0, 0.0], [300.0, 0.0], [5e5, 0.0]]))
    c = _model(flops_per_s=np.array([5e10, 2e11, 1e12]), power_w=np.array([8.0, 15.0, 40.0]), f=f, kappa=kappa,
               cpf=cpf, rates=ch.rates(link))
    return c, ch, link


def test_protocol_methods_exist_on_the_real_class_with_the_same_parameters():
    wanted = {n: inspect.signature(m) for n, m in vars(CostModelProtocol).items()
              if callable(m) and not n.startswith("_")}
    assert {"split_upload_bits", "split_download_bits", "device_compute_time_s", "upload_rate_bps"} <= set(wanted)
    for name, sig in wanted.items():
        real = inspect.signature(getattr(CostModel, name))
        assert list(real.parameters) == list(sig.parameters), name


def test_constructor_takes_the_tier_parameters_explicitly():
    params = inspect.signature(CostModel.__init__).parameters
    for name in ("flops_per_s", "power_w", "cpu_frequency_hz", "kappa", "cycles_per_flop", "rates"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY and params[name].default is inspect.Parameter.empty


def test_adapter_bits_by_hand():
    c, _, _ = _costs()
    for r in (1, 4, 8, 16):
        params = 6 * 2 * r * (384 + 384) + 1155
        assert bits.adapter_params(SHAPE, r) == params
        assert c.adapter_bits(r) == params * 32
    assert c.adapter_bits(8) == 2_396_256  # 6 x 2 x 8 x 768 + 1155 = 74,883 params x 32 bits
    half = ModelShape(**{**SHAPE.__dict__, "bytes_per_param": 2})
    assert _model(half).adapter_bits(8) == 74_883 * 16


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
    c, _, _ = _costs(f=f, kappa=kappa)
    v = np.arange(3)
    fl = c.flops_per_step(8) * 10
    e = c.compute_energy_j(v, np.full(3, 8), np.full(3, 10))
    cycles = fl * 2e9 / 5e10            # default cycles/FLOP = f / FLOP/s, so C / f = compute time
    assert e[0] == pytest.approx(1e-28 * cycles * (2e9) ** 2)
    assert e[1] == pytest.approx(15.0 * fl / 2e11)   # no frequency: power x time
    assert e[2] == pytest.approx(40.0 * fl / 1e12)   # no kappa: power x time
    c2, _, _ = _costs(f=f, kappa=kappa, cpf=np.full(3, 0.5))
    assert c2.compute_energy_j(v, np.full(3, 8), np.full(3, 10))[0] == pytest.approx(1e-28 * fl * 0.5 * 4e18)


def test_tier_columns_feed_the_kappa_model():
    tiers = default_device_tiers()
    tiers[2].cpu_frequency_hz, tiers[2].kappa = 2e9, 1e-28
    cols = tier_columns(tiers, [2, 0, 2])
    assert cols.flops_per_s.tolist() == [1e12, 5e10, 1e12] and cols.kappa.tolist() == [1e-28, 0.0, 1e-28]
    c = _model(flops_per_s=cols.flops_per_s, power_w=cols.power_w, f=cols.cpu_frequency_hz, kappa=cols.kappa,
               cpf=cols.cycles_per_flop)
    e = c.compute_energy_j(np.arange(3), np.full(3, 4), np.full(3, 2))
    fl = c.flops_per_step(4) * 2
    assert e[0] == pytest.approx(1e-28 * fl * (2e9 / 1e12) * 4e18) and e[1] == pytest.approx(8.0 * fl / 5e10)


def test_rates_come_from_the_channel_link():
    c, ch, link = _costs()
    v = np.array([0, 1, 2])
    p, bw = np.full(3, 0.1), np.full(3, 2e6)
    up = c.upload_rate_bps(v, p, bw)
    assert np.array_equal(up, ch.uplink_rate_bps(link, v, p, bw)) and up[1] > 0 and up[2] == 0  # c out of coverage
    assert np.array_equal(c.download_rate_bps(v, bw), ch.downlink_rate_bps(link, v, bw))
    assert ch.rates(link).max_tx_power_w == ch.max_tx_power_w


def test_split_costs_by_hand():
    c, _, _ = _costs()
    b, s, h = 16, 128, 384
    up, down = bits.split_activation_bits_per_step(SHAPE, 0)
    assert up == (b * s * h + b * h) * 32 and down == b * h * 32
    assert c.split_upload_bits(8, 10) == 10 * up + 1155 * 32      # only the head lives on the device
    assert c.split_download_bits(8, 10) == 10 * down + 1155 * 32
    assert c.device_flops_per_step(8) == pytest.approx(8 * b * s * h + 6 * 1155 * b)
    assert flops.server_flops_per_step(SHAPE, 0, 8) + c.device_flops_per_step(8) == pytest.approx(
        c.flops_per_step(8) + 8 * b * s * h)
    v = np.array([0, 1])
    assert np.all(c.device_compute_time_s(v, 8, 10) < c.compute_time_s(v, 8, 10))
    assert np.allclose(c.device_compute_energy_j(v, 8, 10), c.device_compute_time_s(v, 8, 10) * [8.0, 15.0])
    c2 = _model(split_layer=2)
    up2, down2 = bits.split_activation_bits_per_step(SHAPE, 2)
    assert down2 == (b * h + b * s * h) * 32                         # gradients return to trainable device layers
    assert c2.split_upload_bits(8, 1) == up2 + (2 * 2 * 8 * 768 + 1155) * 32
    with pytest.raises(ValueError):
        _model(split_layer=7)


def test_strategies_fallback_is_the_same_cost_model():
    from iovsim.strategies.common import FALLBACK_SHAPE, costs_of
    from test_strategies import make_state

    st = make_state(0, costs=False)
    c = costs_of(st)
    assert isinstance(c, CostModel) and c.shape is FALLBACK_SHAPE
    conn = st.connected()
    t = c.compute_time_s(conn, np.full(conn.size, 8), np.full(conn.size, 5))
    assert np.allclose(t, flops.flops_per_step(FALLBACK_SHAPE, 8) * 5 / st.device_flops_per_s[conn])
    # At the default power and the equal share the uplink rate is Shannon on the state's SINR.
    m = st.rsu[conn]
    share = st.rsu_bandwidth_hz[m] / st.rsu_load[m]
    up = c.upload_rate_bps(conn, np.full(conn.size, st.default_tx_power_w), share)
    assert np.allclose(up, share * np.log2(1 + 10 ** (st.sinr_db[conn] / 10)))
    assert np.allclose(c.download_rate_bps(conn, share / 2), st.downlink_rate_bps[conn] / 2)
