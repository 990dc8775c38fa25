"""Handover-window prediction: time left in the serving cell along a predicted path, and its error."""
from __future__ import annotations

import numpy as np

from iovsim.channel import pathloss as plm
from iovsim.channel.kernel import LinkKernel
from iovsim.channel.rates import Radio
from iovsim.channel.state import LinkState


def predict_dwell_s(kernel: LinkKernel, radio: Radio, current: bool, link: LinkState, idx: np.ndarray,
                    future_xy_m: list[np.ndarray], future_t_s: list[np.ndarray]) -> np.ndarray:
    """Predicted time left in the serving cell for vehicles `idx`, from their predicted positions
    `future_xy_m[k]` (T_k, 2) at relative times `future_t_s[k]` (T_k,). `current`: `link` is the
    kernel's last step, so today's LOS states and shadowing condition the prediction.

    At each future point the expected RSRP of every RSU is the mean path loss (LOS probability
    conditioned on today's LOS state, which persists with probability exp(-d/d_los)) plus today's
    shadowing decayed by exp(-d/d_corr) (its conditional mean), d being the distance driven along
    the predicted path. The vehicle leaves when a neighbour beats the serving RSU by the A3
    hysteresis + offset for time-to-trigger, or the serving RSRP falls below min_rsrp_dbm.
    inf = stays within the horizon; 0 = not connected.
    """
    idx = np.asarray(idx, dtype=int)
    k = idx.size
    out = np.full(k, np.inf)
    serving = np.asarray(link.serving)[idx]
    out[serving < 0] = 0.0
    if k == 0 or kernel.num_rsus == 0:
        return out
    lens = np.asarray([len(t) for t in future_t_s], dtype=int)
    chunk = max(1, int(4_000_000 // max(kernel.num_rsus, 1)))
    start = 0
    while start < k:
        stop, tot = start, 0
        while stop < k and (tot == 0 or tot + lens[stop] <= chunk):
            tot += lens[stop]
            stop += 1
        _dwell_chunk(kernel, radio, link, idx, serving, future_xy_m, future_t_s, lens, start, stop, out, current)
        start = stop
    return out


def _dwell_chunk(kernel, radio, link, idx, serving, fxy, ft, lens, a, b, out, same):
    """Predictions for vehicles a:b; `same`: the kernel's per-link state is that of `link`."""
    cfg = kernel.cfg
    sel = [j for j in range(a, b) if serving[j] >= 0 and lens[j] > 0]
    if not sel:
        return
    xy = np.concatenate([np.asarray(fxy[j], dtype=float).reshape(-1, 2) for j in sel])
    t = np.concatenate([np.asarray(ft[j], dtype=float).reshape(-1) for j in sel])
    owner = np.repeat(np.arange(len(sel)), lens[sel])
    first = np.r_[True, owner[1:] != owner[:-1]]
    # Distance driven along the predicted path from the current position.
    cur = np.asarray(link.xy_m)[idx[sel]]
    prev = np.where(first[:, None], cur[owner], np.roll(xy, 1, axis=0))
    seg = np.sqrt(((xy - prev) ** 2).sum(1))
    cs = np.cumsum(seg)
    base = np.maximum.accumulate(np.where(first, cs - seg, 0.0))
    dist = cs - base
    d2d = kernel.distances_m(xy)
    pl = _expected_pathloss_db(kernel, link, idx[sel][owner], d2d, dist, same)
    rsrp = radio.rsu_tx_power_dbm[None, :] - radio.rsrp_offset_db[None, :] - pl
    s = serving[sel][owner]
    pr = np.arange(len(t))
    s_val = rsrp[pr, s]
    rsrp[pr, s] = -np.inf
    best = rsrp.max(1)
    a3 = (best > s_val + cfg.handover_hysteresis_db + cfg.handover_offset_db) & (best >= cfg.min_rsrp_dbm)
    prev_a3 = np.r_[False, a3[:-1]] & ~first
    run_start = np.maximum.accumulate(np.where(a3 & ~prev_a3, pr, 0))
    fire = (a3 & (t - t[run_start] >= cfg.time_to_trigger_s - 1e-9)) | (s_val < cfg.min_rsrp_dbm)
    res = np.full(len(sel), np.inf)
    np.minimum.at(res, owner[fire], np.maximum(t[fire], 0.0))
    out[np.asarray(sel)] = res


def _expected_pathloss_db(kernel, link, rows, d2d, dist, same):
    """Mean path loss at the future points (P, M), conditioned on the links' state now when `same`."""
    cfg = kernel.cfg
    pl_los, pl_nlos = kernel.model.los_nlos_db(d2d)
    lm = cfg.los_model
    if lm == "los" or cfg.pathloss_model == "freespace":
        pl = pl_los
    elif lm == "nlos":
        pl = pl_nlos
    else:
        p = plm.los_probability(cfg.pathloss_model, d2d, cfg.vehicle_height_m)
        if lm == "stochastic" and same and link.los is not None:
            u = kernel.u[rows]
            los_then = (d2d * d2d < u) if kernel.los_by_threshold else (u < p)
            keep = np.exp(-dist / cfg.los_correlation_distance_m)[:, None]
            p = keep * los_then + (1 - keep) * p
        pl = p * pl_los + (1 - p) * pl_nlos
    if same and (kernel.shadow_std_db[0] > 0 or kernel.shadow_std_db[1] > 0):
        los_now = link.los[rows]
        sh_now = kernel.g[rows] * np.where(los_now, kernel.shadow_std_db[0], kernel.shadow_std_db[1])
        dcor = np.where(los_now, kernel.shadow_decorrelation_m[0], kernel.shadow_decorrelation_m[1])
        pl = pl + sh_now * np.exp(-dist[:, None] / dcor)
    return pl


def dwell_prediction_error(predicted_s, actual_s, ended_by_handover=None) -> dict:
    """Error statistics of dwell-time predictions against the dwell times observed.

    `predicted_s`, `actual_s`: per prediction; `ended_by_handover` (bool, optional) marks dwells that
    ended with a handover (others ended because the vehicle left or the log stopped, so the actual
    time is only a lower bound and they are excluded). Infinite predictions are counted apart.
    """
    pred = np.asarray(predicted_s, dtype=float)
    act = np.asarray(actual_s, dtype=float)
    use = np.isfinite(act)
    if ended_by_handover is not None:
        use &= np.asarray(ended_by_handover, dtype=bool)
    fin = use & np.isfinite(pred)
    err = pred[fin] - act[fin]
    out = {"count": int(use.sum()), "finite_predictions": int(fin.sum()), "infinite_predictions": int((use & ~np.isfinite(pred)).sum())}
    if err.size:
        out.update(mean_error_s=float(err.mean()), mae_s=float(np.abs(err).mean()), rmse_s=float(np.sqrt((err ** 2).mean())),
                   median_abs_error_s=float(np.median(np.abs(err))),
                   mape=float(np.mean(np.abs(err) / np.maximum(act[fin], 1e-9))))
    else:
        out.update(mean_error_s=np.nan, mae_s=np.nan, rmse_s=np.nan, median_abs_error_s=np.nan, mape=np.nan)
    return out
