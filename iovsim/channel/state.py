"""What one channel step returns: every vehicle's links, serving RSU, SINR and handovers."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from iovsim.channel.handover import HandoverEvent


@dataclass
class LinkState:
    time_s: float
    vehicle_ids: list[str]
    xy_m: np.ndarray             # (N, 2)
    serving: np.ndarray          # (N,) RSU index, -1 = not connected
    rsrp_base_dbm: np.ndarray    # (M,) float32 RSU power (per RE) in dBm: rsrp_dbm = rsrp_base_dbm - pathloss_db
    pathloss_db: np.ndarray      # (N, M) including shadowing
    uplink_sinr_db: np.ndarray   # (N,) at the default vehicle power over the serving RSU's full bandwidth;
                                 # mean SINR: small-scale fading is in uplink_fading, not here
    downlink_sinr_db: np.ndarray  # (N,) mean SINR (without downlink_fading)
    handovers: Sequence[HandoverEvent]  # a list, or `HandoverEvents` (columns; objects built when read)
    los: np.ndarray | None = None                  # (N, M) bool LOS state of each link
    serving_gain: np.ndarray | None = None         # (N,) linear channel gain to the serving RSU (0 if none)
    uplink_interference_w_hz: np.ndarray | None = None    # (N,) interference PSD at the serving RSU
    downlink_interference_w_hz: np.ndarray | None = None  # (N,) interference PSD at the vehicle
    uplink_fading: np.ndarray | None = None        # (N,) small-scale power gain |h|^2 of this step; None = no fading
    downlink_fading: np.ndarray | None = None      # (N,) independent of the uplink's
    _index: dict | None = field(default=None, repr=False)
    _rsrp: np.ndarray | None = field(default=None, repr=False)

    @property
    def rsrp_dbm(self) -> np.ndarray:
        """(N, M) downlink RSRP from every RSU, rsrp_base_dbm - pathloss_db (float32 as the association
        reads it), computed when first read: nothing in a run reads it per step."""
        if self._rsrp is None:
            self._rsrp = np.subtract(self.rsrp_base_dbm, self.pathloss_db)
        return self._rsrp

    def index(self) -> dict[str, int]:
        """vehicle id -> row."""
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.vehicle_ids)}
        return self._index

    @property
    def num_vehicles(self) -> int:
        return len(self.vehicle_ids)
