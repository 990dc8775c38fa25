"""The SUMO road network: loaded once the same way everywhere, and geographic positions on it."""
from __future__ import annotations

from pathlib import Path

from iovsim.mobility.scenario import ScenarioError


def load_net(net_path: str | Path):
    """sumolib net with lane shapes, without internal edges; a one-line ScenarioError if absent or unreadable."""
    import sumolib

    net_path = Path(net_path)
    if not net_path.exists():
        raise ScenarioError(f"{net_path}: net file not found")
    try:
        net = sumolib.net.readNet(str(net_path), withInternal=False)
    except Exception as e:  # noqa: BLE001 - sumolib raises assorted errors on bad XML
        raise ScenarioError(f"{net_path}: not a readable SUMO net ({' '.join(str(e).split())})") from None
    if not net.getEdges():
        raise ScenarioError(f"{net_path}: no roads (expected a SUMO net with <edge> elements, as netconvert writes)")
    return net


def check_lonlat(lon: float, lat: float, where: str, *, lon_name: str = "lon", lat_name: str = "lat",
                 kind: str = "field", error: type[ScenarioError] = ScenarioError):
    """Raise `error` (`WHERE: field 'lat': expected degrees in [-90, 90], got 144`) unless lon/lat are degrees."""
    if not -90.0 <= lat <= 90.0:  # NaN fails too
        raise error(f"{where}: {kind} '{lat_name}': expected degrees in [-90, 90], got {lat:g}")
    if not -180.0 <= lon <= 180.0:
        raise error(f"{where}: {kind} '{lon_name}': expected degrees in [-180, 180], got {lon:g}")
