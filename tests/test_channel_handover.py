"""Association and A3 handover: hysteresis, time-to-trigger, ping-pong, coverage (TS 38.331 A3 event)."""
import numpy as np
import pytest

from iovsim.channel import Channel
from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig

FC = 5.9e9
RSU_XY = np.array([[0.0, 0.0], [1000.0, 0.0]])



def _drive(cfg, xs, dt=1.0, vid="car"):
    ch = Channel(cfg, RSU_XY, 0)
    links = [ch.step(k * dt, [vid], np.array([[x, 0.0]])) for k, x in enumerate(xs)]
    return ch, links


def _deterministic(**kw):
    return ChannelConfig(los_model="los", shadowing=False, **kw)


def _first_x_where_b_beats_a_by(margin_db, xs):
    pl_a = plm.umi_los_db(np.asarray(xs), FC)
    pl_b = plm.umi_los_db(1000.0 - np.asarray(xs), FC)
    return int(np.flatnonzero(pl_a - pl_b > margin_db)[0])


def test_strongest_rsrp_by_default_and_first_attach_is_not_a_handover():
    xs = np.arange(100.0, 900.0, 10.0)
    ch, links = _drive(_deterministic(), xs)
    serving = np.array([l.serving[0] for l in links])
    assert serving[0] == 0 and links[0].handovers == []
    k = _first_x_where_b_beats_a_by(0.0, xs)
    assert xs[k] == 510.0
    assert np.all(serving[:k] == 0) and np.all(serving[k:] == 1)
    events = [e for l in links for e in l.handovers]
    assert len(events) == 1 and ch.handover_count == 1
    e = events[0]
    assert (e.time_s, e.vehicle_id, e.from_rsu, e.to_rsu, e.x_m, e.y_m) == (float(k), "car", 0, 1, 510.0, 0.0)
    assert e.rsrp_to_dbm > e.rsrp_from_dbm
    assert e.rsrp_from_dbm == pytest.approx(30 - plm.umi_los_db(510.0, FC), abs=0.01)


def test_no_handover_while_the_difference_stays_below_the_hysteresis():
    xs = np.array([450.0, 505.0, 520.0, 530.0, 520.0, 505.0, 530.0])  # B at most ~2.4 dB stronger
    _, links = _drive(_deterministic(handover_hysteresis_db=3.0), xs)
    assert all(l.serving[0] == 0 for l in links)
    assert not any(l.handovers for l in links)


def test_hysteresis_moves_the_handover_point():
    xs = np.arange(100.0, 900.0, 1.0)
    _, links = _drive(_deterministic(handover_hysteresis_db=3.0), xs)
    k = next(i for i, l in enumerate(links) if l.handovers)
    assert k == _first_x_where_b_beats_a_by(3.0, xs)
    assert 540.0 < xs[k] < 546.0  # d_A/d_B > 10^(3/40) beyond the breakpoint: x ~ 543 m
    e = links[k].handovers[0]
    assert e.rsrp_to_dbm - e.rsrp_from_dbm > 3.0


@pytest.mark.parametrize("ttt", [0.0, 2.0, 5.0])
def test_time_to_trigger_delays_the_handover(ttt):
    xs = np.arange(400.0, 800.0, 5.0)
    _, links = _drive(_deterministic(time_to_trigger_s=ttt), xs)
    k0 = _first_x_where_b_beats_a_by(0.0, xs)
    k = next(i for i, l in enumerate(links) if l.handovers)
    assert k == k0 + int(ttt)


def test_ttt_restarts_when_the_condition_breaks():
    xs = [450.0, 520.0, 480.0, 520.0, 530.0, 540.0]  # condition true at 1, false at 2, true from 3
    _, links = _drive(_deterministic(time_to_trigger_s=2.0), xs)
    ks = [i for i, l in enumerate(links) if l.handovers]
    assert ks == [5]


def test_ping_pong_counted_within_the_window():
    xs = [490.0, 510.0, 490.0, 510.0]
    ch, links = _drive(_deterministic(ping_pong_window_s=1.0), xs)
    events = [e for l in links for e in l.handovers]
    assert [(e.from_rsu, e.to_rsu) for e in events] == [(0, 1), (1, 0), (0, 1)]
    assert [e.ping_pong for e in events] == [False, True, True]
    assert ch.handover_count == 3 and ch.ping_pong_count == 2
    # The same moves 2 s apart are not ping-pongs with a 1 s window, but are with 5 s.
    ch, _ = _drive(_deterministic(ping_pong_window_s=1.0), xs, dt=2.0)
    assert ch.handover_count == 3 and ch.ping_pong_count == 0
    ch, _ = _drive(_deterministic(ping_pong_window_s=5.0), xs, dt=2.0)
    assert ch.ping_pong_count == 2


def test_coverage_loss_and_reattach():
    # Far beyond coverage: RSRP below min_rsrp_dbm, not connected; the loss is not a handover.
    cfg = _deterministic(min_rsrp_dbm=-90.0)
    ch = Channel(cfg, np.array([[0.0, 0.0]]), 0)
    xs = [50.0, 5000.0, 60.0]
    links = [ch.step(float(k), ["car"], np.array([[x, 0.0]])) for k, x in enumerate(xs)]
    assert [int(l.serving[0]) for l in links] == [0, -1, 0]
    assert not any(l.handovers for l in links)
    assert links[1].uplink_sinr_db[0] == -np.inf
    assert ch.uplink_rate_bps(links[1], np.array([0]), np.array([0.2]), np.array([1e6]))[0] == 0.0


def test_rlf_reattaches_to_a_stronger_rsu_below_hysteresis():
    # Serving RSRP falls under min_rsrp while the neighbour is only 1 dB stronger (< 3 dB hysteresis).
    cfg = _deterministic(handover_hysteresis_db=3.0)
    rsrp_mid = 30 - plm.umi_los_db(500.0, FC)
    cfg.min_rsrp_dbm = float(rsrp_mid)
    xs = [300.0, 520.0]  # A ~0.7 dB under the threshold, B ~0.7 dB over it
    ch, links = _drive(cfg, xs)
    e = links[1].handovers
    assert links[1].serving[0] == 1 and len(e) == 1 and e[0].kind == "rlf" and ch.rlf_count == 1


def test_absent_vehicles_are_forgotten_and_state_follows_ids():
    cfg = _deterministic()
    ch = Channel(cfg, RSU_XY, 0)
    ch.step(0.0, ["a", "b"], np.array([[100.0, 0.0], [900.0, 0.0]]))
    link = ch.step(1.0, ["b", "c"], np.array([[900.0, 0.0], [600.0, 0.0]]))
    assert link.index() == {"b": 0, "c": 1}
    assert list(link.serving) == [1, 1] and not link.handovers   # c attaches: not a handover
    link = ch.step(2.0, ["a"], np.array([[950.0, 0.0]]))          # a comes back: a new vehicle
    assert link.serving[0] == 1 and not link.handovers


def test_l3_filter_smooths_measurements():
    cfg = ChannelConfig(rsrp_filter_k=4)
    ch = Channel(cfg, RSU_XY, 0)
    n = 300
    ids = [f"v{i}" for i in range(n)]
    for k in range(40):
        ch.step(float(k), ids, np.c_[np.full(n, 480.0 + 2 * (k % 2)), np.linspace(-50, 50, n)])
    filtered = ch.handover_count
    ch = Channel(ChannelConfig(), RSU_XY, 0)
    for k in range(40):
        ch.step(float(k), ids, np.c_[np.full(n, 480.0 + 2 * (k % 2)), np.linspace(-50, 50, n)])
    assert filtered < ch.handover_count
