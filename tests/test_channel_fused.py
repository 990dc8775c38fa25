"""The compiled step (`iovsim.channel.fused`, numba) against the numpy step: bit for bit the same
links, association, handovers, SINR and rates, over configurations that take each branch of the
loops. Without numba the loops run as plain Python (slowly) and must agree all the same."""
import os
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest

from iovsim.channel import Channel
from iovsim.channel.config import ChannelConfig
from iovsim.channel.rows import DictRows, VehicleRows

ROOT = Path(__file__).resolve().parents[1]
LINK_FIELDS = ("serving", "rsrp_dbm", "pathloss_db", "los", "uplink_sinr_db", "downlink_sinr_db", "serving_gain",
               "uplink_interference_w_hz", "downlink_interference_w_hz", "uplink_fading", "downlink_fading")


def _traffic(steps, seed=1):
    """(ids, xy) per step: vehicles arrive and leave, about half stand still, the others drive 5-30 m."""
    rng = np.random.default_rng(seed)
    xy = {f"v{i}": rng.uniform(0, 1500, 2) for i in range(160)}
    nxt = 160
    for k in range(steps):
        for v in list(xy)[3 + k::19]:
            del xy[v]
        for _ in range(6):
            xy[f"v{nxt}"] = rng.uniform(0, 1500, 2)
            nxt += 1
        for v in xy:
            if rng.random() < 0.5:
                xy[v] = xy[v] + rng.normal(0, 15, 2)
        ids = sorted(xy, key=lambda v: rng.random()) if k == 3 else list(xy)  # one step in another order
        yield ids, np.array([xy[v] for v in ids])


def _assert_same_rates(a, b, la, lb):
    n = la.num_vehicles
    idx = np.arange(n)
    bw = np.where(np.arange(n) % 7 == 0, 0.0, 1e6)  # some vehicles get no band
    for inst in (False, True):
        for p in (0.2, np.linspace(0.01, 0.5, n)):
            assert np.array_equal(a.uplink_rate_bps(la, idx, p, bw, inst), b.uplink_rate_bps(lb, idx, p, bw, inst))
        assert np.array_equal(a.downlink_rate_bps(la, idx, bw, inst), b.downlink_rate_bps(lb, idx, bw, inst))
    sub = idx[::3]
    assert np.array_equal(a.uplink_rate_bps(la, sub, 0.2, 2e6), b.uplink_rate_bps(lb, sub, 0.2, 2e6))
    assert np.array_equal(a.downlink_rate_bps(la, sub, 2e6), b.downlink_rate_bps(lb, sub, 2e6))


CONFIGS = {
    "default": {},
    "uma, heights per RSU": {"pathloss_model": "uma", "rsu_height_m": [10.0, 25.0, 12.0, 18.0] * 3},
    "one decorrelation distance and sigma": {"shadowing_decorrelation_m": 20.0, "shadowing_std_db": 6.0},
    "filtered RSRP": {"rsrp_filter_k": 4},
    "hysteresis, TTT, RLF": {"handover_hysteresis_db": 2.0, "time_to_trigger_s": 2.0, "min_rsrp_dbm": -95.0},
    "no interference, gap": {"interference": False, "snr_gap_db": 3.0},
    "reuse 3": {"frequency_reuse": 3},
    "fading": {"fading": "rician", "max_spectral_efficiency_bps_hz": 0.0},
    "block errors": {"bler": "table", "fading": "rayleigh"},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_step_is_the_numpy_step_bit_for_bit(name):
    cfg = ChannelConfig(**CONFIGS[name])
    rsu = np.random.default_rng(0).uniform(0, 1500, (12, 2))
    a, b = Channel(cfg, rsu, 5, fused=False), Channel(cfg, rsu, 5, fused=True)
    a.kernel.block_links = b.kernel.block_links = 12 * 48  # several row blocks per step
    events = 0
    for k, (ids, xy) in enumerate(_traffic(10)):
        if k == 6:
            ids, xy = [], np.zeros((0, 2))  # an empty step in between
        la, lb = a.step(float(k), ids, xy), b.step(float(k), ids, xy)
        for f in LINK_FIELDS:
            assert np.array_equal(getattr(la, f), getattr(lb, f)), (k, f)
        assert [astuple(e) for e in la.handovers] == [astuple(e) for e in lb.handovers], k
        assert [type(e.ping_pong) for e in lb.handovers] == [bool] * len(lb.handovers)
        assert np.array_equal(a.kernel.g, b.kernel.g) and np.array_equal(a.kernel.u, b.kernel.u)
        for f in ("serving", "cand", "cand_since", "last_from", "last_to", "last_ho_s"):
            assert np.array_equal(getattr(a.association, f), getattr(b.association, f)), (k, f)
        _assert_same_rates(a, b, la, lb)
        events += len(la.handovers)
    assert events > 20  # the scenario does exercise the handover logic
    assert (a.handover_count, a.ping_pong_count, a.rlf_count) == (b.handover_count, b.ping_pong_count, b.rlf_count)


def test_vehicle_rows_give_each_vehicle_its_previous_row():
    rng = np.random.default_rng(2)
    rows, prev_ids = VehicleRows(), []
    pool = [f"car{i}" for i in range(400)]
    for step in range(60):
        ids = list(rng.choice(pool, size=int(rng.integers(0, 120)), replace=False))
        if step == 30:
            ids = []
        want = dict(zip(prev_ids, range(len(prev_ids))))
        got = rows.update([str(v) for v in ids])  # fresh string objects, as SUMO gives
        assert got.tolist() == [want.get(v, -1) for v in ids], step
        prev_ids = ids
    assert rows.previous_ids() == [str(v) for v in prev_ids]


def test_vehicle_rows_match_the_dict_rows_with_repeats_unicode_and_a_nul_id():
    rng = np.random.default_rng(3)
    fast, ref = VehicleRows(), DictRows()
    pool = [f"car{i}" for i in range(300)] + ["Straße.1", "", "Ω"]
    for step in range(40):
        ids = [str(v) for v in rng.choice(pool, size=int(rng.integers(0, 90)), replace=step >= 12)]  # repeats from 12
        if step % 3:
            ids.sort()  # the order libsumo gives: most ids match the row after the previous match
        if step == 25:
            ids.append("bad\0id")  # the encoded buffer cannot hold it: dicts from here on
        assert fast.update(ids).tolist() == ref.update(ids).tolist(), step
        assert fast.previous_ids() == ids
    assert fast._dict is not None


def test_compiled_goodput_is_the_numpy_goodput_bit_for_bit():
    from iovsim.channel.bler import BlockErrors

    cfg = ChannelConfig(bler="table")
    rng = np.random.default_rng(4)
    mean = 10 ** rng.uniform(-1.5, 3.0, (40, 25))
    mean[0, :5] = [0.0, np.inf, 10 ** -0.67, 10 ** 2.27, np.nan]  # none, beyond the table, on thresholds, NaN
    faded = mean * rng.exponential(1.0, mean.shape)
    for harq in (1, 4):
        ref, com = (BlockErrors(cfg.mcs_sinr_db, cfg.mcs_efficiency_bps_hz, 1.5, harq, fused) for fused in (False, True))
        for bw in (2e6, rng.uniform(1e5, 2e7, mean.shape)):
            a, b = ref.goodput_bps(bw, mean, faded), com.goodput_bps(bw, mean, faded)
            assert np.array_equal(a, b, equal_nan=True) and a.shape == b.shape


def test_without_numba_the_channel_runs_the_numpy_step():
    code = ("import numpy as np; from iovsim.channel import Channel, fused; from iovsim.channel.config import ChannelConfig; "
            "ch = Channel(ChannelConfig(), np.zeros((2, 2)) + [[0, 0], [500, 0]], 1); "
            "l = ch.step(0.0, ['a', 'b'], np.array([[10.0, 0], [490, 0]])); l = ch.step(1.0, ['a', 'b'], np.array([[20.0, 0], [480, 0]])); "
            "print(fused.AVAILABLE, ch._links is None, l.serving.tolist())")
    env = dict(os.environ, IOVSIM_NUMBA="0", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "[0,", "1]"]


@pytest.mark.parametrize("fused", [False, True])
def test_a_tie_between_two_rsus_is_no_handover(fused):
    """Equal RSRP from the serving RSU and another: A3 needs the neighbour to be *better* by the
    hysteresis (0 dB), so the vehicle stays (both paths; argmax picks the first RSU of a tie)."""
    cfg = ChannelConfig(shadowing=False, los_model="los")
    ch = Channel(cfg, np.array([[0.0, 0.0], [400.0, 0.0]]), 1, fused=fused)
    first = ch.step(0.0, ["v"], np.array([[300.0, 5.0]]))
    tie = ch.step(1.0, ["v"], np.array([[200.0, 5.0]]))
    assert first.serving[0] == 1 and tie.rsrp_dbm[0, 0] == tie.rsrp_dbm[0, 1]
    assert tie.serving[0] == 1 and tie.handovers == []
    past = ch.step(2.0, ["v"], np.array([[199.0, 5.0]]))
    assert past.serving[0] == 0 and len(past.handovers) == 1
