"""Handover window: predicted time left in the serving cell along the route ahead, and its error stats."""
import math

import numpy as np
import pytest

from iovsim.channel import Channel, dwell_prediction_error
from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig

RSU_XY = np.array([[0.0, 0.0], [1000.0, 0.0]])



def _setup(**kw):
    cfg = ChannelConfig(los_model="los", shadowing=False, **kw)
    ch = Channel(cfg, RSU_XY, 0)
    link = ch.step(0.0, ["car", "far"], np.array([[100.0, 0.0], [1e6, 0.0]]))
    return ch, link


def _straight(t, x0=100.0, v=10.0):
    return np.c_[x0 + v * t, np.zeros_like(t)]


def test_straight_line_leaving_the_cell():
    ch, link = _setup()
    assert link.serving[0] == 0
    t = np.arange(1.0, 81.0)
    # RSU 1 becomes stronger past x = 500 m (equal distance): first sample x = 510 m at t = 41 s.
    d = ch.predict_dwell_s(link, np.array([0]), [_straight(t)], [t])
    assert d[0] == 41.0


def test_hysteresis_and_ttt_lengthen_the_window():
    t = np.arange(1.0, 81.0)
    ch, link = _setup(handover_hysteresis_db=3.0)
    xs = _straight(t)[:, 0]
    k = np.flatnonzero(plm.umi_los_db(xs, 5.9e9) - plm.umi_los_db(1000 - xs, 5.9e9) > 3.0)[0]
    assert ch.predict_dwell_s(link, np.array([0]), [_straight(t)], [t])[0] == t[k] == 45.0  # x ~ 543 m -> 550 m
    ch, link = _setup(handover_hysteresis_db=3.0, time_to_trigger_s=2.0)
    assert ch.predict_dwell_s(link, np.array([0]), [_straight(t)], [t])[0] == 47.0


def test_staying_in_the_cell_within_the_horizon_is_inf_and_route_matters():
    ch, link = _setup()
    t = np.arange(1.0, 21.0)
    assert ch.predict_dwell_s(link, np.array([0]), [_straight(t)], [t])[0] == math.inf
    # The route turns back before the cell edge (a straight-line extrapolation would leave at 41 s).
    t = np.arange(1.0, 81.0)
    back = np.c_[np.minimum(100 + 10 * t, 450) - np.maximum(100 + 10 * t - 450, 0), np.zeros_like(t)]
    assert ch.predict_dwell_s(link, np.array([0]), [back], [t])[0] == math.inf
    # Not connected: 0; several vehicles at once, empty prediction = inf.
    d = ch.predict_dwell_s(link, np.array([0, 1, 0]), [_straight(t), _straight(t), np.zeros((0, 2))],
                           [t, t, np.zeros(0)])
    assert list(d) == [41.0, 0.0, math.inf]


def test_leaving_coverage_ends_the_window():
    cfg = ChannelConfig(los_model="los", shadowing=False, min_rsrp_dbm=-80.0)
    ch = Channel(cfg, RSU_XY[:1], 0)
    link = ch.step(0.0, ["car"], np.array([[20.0, 0.0]]))
    t = np.arange(1.0, 100.0)
    xs = 20 + 10 * t
    k = np.flatnonzero(30 - plm.umi_los_db(xs, 5.9e9) < -80.0)[0]
    assert ch.predict_dwell_s(link, np.array([0]), [_straight(t, 20.0)], [t])[0] == t[k]


def test_default_channel_prediction_is_consistent_with_the_current_association():
    # With shadowing and stochastic LOS the prediction starts from today's measured state: a vehicle
    # predicted to stay where it stands (t = 0) never gets 0 s.
    ch = Channel(ChannelConfig(), RSU_XY, 4)
    n = 200
    ids = [f"v{i}" for i in range(n)]
    xy = np.c_[np.linspace(50, 950, n), np.zeros(n)]
    link = ch.step(0.0, ids, xy)
    t = np.arange(0.0, 30.0)
    d = ch.predict_dwell_s(link, np.arange(n), [np.repeat(xy[i:i + 1], len(t), 0) for i in range(n)], [t] * n)
    conn = link.serving >= 0
    assert conn.mean() > 0.8
    assert np.all(d[conn] == math.inf) and np.all(d[~conn] == 0.0)
    moving = ch.predict_dwell_s(link, np.arange(n), [np.c_[xy[i, 0] + 15 * t, np.zeros_like(t)] for i in range(n)], [t] * n)
    assert np.isfinite(moving[conn]).mean() > 0.3 and np.all(moving >= 0)


def test_dwell_prediction_error_stats():
    s = dwell_prediction_error([10.0, 20.0, math.inf, 5.0], [12.0, 16.0, 30.0, 50.0], [True, True, True, False])
    assert s["count"] == 3 and s["finite_predictions"] == 2 and s["infinite_predictions"] == 1
    assert s["mean_error_s"] == pytest.approx(1.0) and s["mae_s"] == pytest.approx(3.0)
    assert s["rmse_s"] == pytest.approx(math.sqrt((4 + 16) / 2))
    assert math.isnan(dwell_prediction_error([], [])["mae_s"])
