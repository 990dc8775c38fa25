"""sumo-gui under Xvfb: RSUs, coverage, vehicles coloured by nearest RSU, handover marks, status text,
screenshots that are written, not blank, and different between two times."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest

from iovsim.viz.gui import COVERAGE_EDGE_ALPHA, COVERAGE_FILL_ALPHA, GuiOverlay, frames_to_gif, rsu_color, write_gui_settings
from iovsim.viz.gui_view import PARTICIPANT_WEIGHT, ViewSpec

pytestmark = pytest.mark.gui


def _sumo_home() -> Path:
    sumo = pytest.importorskip("sumo")
    return Path(sumo.SUMO_HOME)


@pytest.fixture
def xvfb_display():
    """A private Xvfb server (display number chosen by Xvfb itself, so parallel runs never clash)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed (run tools/ensure_xvfb.sh as root to install it)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            num = f.readline().strip()
        if not num:
            pytest.skip("Xvfb did not start")
        yield f":{num}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gui_conn(xvfb_display, tmp_path, monkeypatch):
    """sumo-gui on the A10KW net through traci, closed (and killed if need be) after the test."""
    import traci

    home = _sumo_home()
    net = home / "tools" / "game" / "A10KW" / "osm.net.xml"
    routes = [home / "tools" / "game" / "A10KW" / f for f in ("osm.passenger.rou.xml", "osm.passenger_mw.rou.xml")]
    if not net.is_file() or not all(r.is_file() for r in routes):
        pytest.skip("A10KW scenario absent from the eclipse-sumo wheel")
    settings = write_gui_settings(tmp_path / "gui-settings.xml")
    monkeypatch.setenv("DISPLAY", xvfb_display)
    label = f"viz-{uuid.uuid4().hex[:8]}"
    cmd = [str(home / "bin" / "sumo-gui"), "-n", str(net), "-r", ",".join(map(str, routes)),
           "--begin", "0", "--start", "true", "--quit-on-end", "true", "--gui-settings-file", str(settings),
           "--window-size", "1024,768", "--window-pos", "0,0", "--no-step-log", "true", "--no-warnings", "true",
           "--ignore-route-errors", "true", "--time-to-teleport", "300", "--seed", "7"]
    try:
        traci.start(cmd, label=label, stdout=subprocess.DEVNULL)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"sumo-gui could not start under Xvfb: {e}")
    conn = traci.getConnection(label)
    proc = getattr(conn, "_process", None)
    try:
        yield conn, net
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_file(path: Path, conn, timeout_s: float = 20.0):
    """sumo-gui writes a screenshot at the next step; step once, then wait for the file to be complete."""
    conn.simulationStep()
    t0 = time.time()
    last = -1
    while time.time() - t0 < timeout_s:
        if path.is_file():
            size = path.stat().st_size
            if size > 0 and size == last:
                return
            last = size
        time.sleep(0.2)
    raise AssertionError(f"screenshot {path} not written")


def _positions(conn):
    ids = list(conn.vehicle.getIDList())
    xy = np.array([conn.vehicle.getPosition(v) for v in ids], dtype=float).reshape(-1, 2)
    return ids, xy


def _fleet_and_serving(conn, rsu_xy: np.ndarray, radius_m: float = 420.0):
    """The FL fleet (a third of the traffic, by id hash): ids, positions and each one's nearest RSU
    within radius_m (-1 outside every cell)."""
    ids, xy = _positions(conn)
    keep = [k for k, v in enumerate(ids) if zlib.crc32(v.encode()) % 3 == 0]
    ids, xy = [ids[k] for k in keep], xy[keep]
    if not ids:
        return ids, xy, np.zeros(0, dtype=int)
    d = np.linalg.norm(xy[:, None, :] - rsu_xy[None, :, :], axis=2)
    return ids, xy, np.where(d.min(axis=1) <= radius_m, d.argmin(axis=1), -1)


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_gui_overlay_screenshots(gui_conn, tmp_path):
    import sumolib

    conn, net_file = gui_conn
    net = sumolib.net.readNet(str(net_file), withInternal=False)
    rsu_xy = np.array([[900.0, 600.0], [1600.0, 1400.0], [2100.0, 2050.0], [1300.0, 2600.0]])
    overlay = GuiOverlay(conn, rsu_xy, 420.0, net.getBoundary())
    overlay.draw_rsus()
    shots = []
    serving_prev: dict[str, int] = {}
    handovers = 0
    phases_cycle = ["idle", "download", "train", "upload", "done", "migrated", "early", "lost"]
    for step in range(1, 241):
        conn.simulationStep()
        ids, xy, serving = _fleet_and_serving(conn, rsu_xy)
        if not ids:
            continue
        phase = [phases_cycle[(zlib.crc32(v.encode()) // 3 + step // 40) % len(phases_cycle)] for v in ids]
        overlay.color_vehicles(ids, serving, phase, xy_m=xy)
        for v, s, p in zip(ids, serving, xy):
            if v in serving_prev and serving_prev[v] >= 0 and s >= 0 and s != serving_prev[v]:
                overlay.highlight_handover(v, p[0], p[1], conn.simulation.getTime())
                handovers += 1
            serving_prev[v] = int(s)
        if step == 236 and ids:  # one handover for sure in the second picture
            overlay.highlight_handover(ids[0], xy[0, 0], xy[0, 1], conn.simulation.getTime())
            handovers += 1
        if step in (120, 240):
            overlay.show_status(step // 120, int((serving >= 0).sum()),
                                {"tweets": 0.41 + 0.1 * (step // 120), "bbc": 0.55},
                                {"ok": 3, "migrated": 2, "early": 1, "lost_handover": 1})
            path = tmp_path / "shots" / f"round_{step // 120:04d}.png"
            overlay.screenshot(path)
            _wait_file(path, conn)
            shots.append(path)
    assert len(shots) == 2
    keep = os.environ.get("IOVSIM_KEEP_SCREENSHOTS")  # to look at them
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in shots:
            shutil.copy(p, Path(keep) / p.name)
    a, b = _pixels(shots[0]), _pixels(shots[1])
    for im in (a, b):
        assert im.shape[0] >= 300 and im.shape[1] >= 300
        assert im.std() > 15, "screenshot looks blank"
        colours = np.unique(im.reshape(-1, 3)[::5], axis=0)
        assert len(colours) > 30, f"only {len(colours)} colours"
        # every RSU colour (coverage tint or symbol) is on the picture
        for i in range(len(rsu_xy)):
            from iovsim.viz.gui import RSU_COLORS

            c = np.array(RSU_COLORS[i])
            near = (np.abs(im - c).max(axis=2) < 30).sum()
            assert near > 30, f"RSU {i} colour not visible ({near} px)"
    rings = [p for p in conn.polygon.getIDList() if p.startswith("iovsim_ho_ring_")]
    assert rings, "the handover of step 236 has no mark at step 240"
    assert all(0 < conn.polygon.getColor(p)[3] < 255 for p in rings), "the handover mark is not fading"
    assert a.shape == b.shape
    diff = (np.abs(a - b).max(axis=2) > 40).sum()
    assert diff > 200, f"screenshots at two times differ in only {diff} pixels"
    gif = frames_to_gif(shots, tmp_path / "shots" / "rounds.gif")
    from PIL import Image

    with Image.open(gif) as g:
        assert g.n_frames == 2
    if keep:  # a close-up for a human to check vehicle colours and phase marks
        conn.gui.setBoundary(conn.gui.DEFAULT_VIEW, 1450, 2050, 2050, 2500)
        overlay.screenshot(Path(keep) / "closeup.png")
        _wait_file(Path(keep) / "closeup.png", conn)
    last = tmp_path / "shots" / "last.png"
    overlay.screenshot(last)
    assert overlay.flush() is True and overlay.flush() is False  # one step, then nothing pending
    _wait_file(last, conn)
    overlay.clear()
    conn.simulationStep()


def _weight(phase):
    return np.array([PARTICIPANT_WEIGHT if p in ("download", "train", "upload") else 1.0 for p in phase])


def test_auto_view_coverage_outlines_and_fading_handovers(gui_conn):
    """The auto view holds the busiest FL vehicles at the asked width, coverage is a light fill plus an
    outline in each RSU's colour, phase rings are sized to the view, and a handover mark fades out."""
    import sumolib

    conn, net_file = gui_conn
    net = sumolib.net.readNet(str(net_file), withInternal=False)
    rsu_xy = np.array([[900.0, 600.0], [1600.0, 1400.0], [2100.0, 2050.0], [1300.0, 2600.0]])
    width_m, fade_s = 600.0, 5.0
    overlay = GuiOverlay(conn, rsu_xy, 420.0, net.getBoundary(), view=ViewSpec("auto", width_m=width_m),
                         aspect=1024 / 768, handover_fade_s=fade_s)
    overlay.draw_rsus()
    for i in range(len(rsu_xy)):
        fill, edge = f"iovsim_cov_{i}", f"iovsim_covedge_{i}"
        assert conn.polygon.getFilled(fill) and not conn.polygon.getFilled(edge)
        assert tuple(conn.polygon.getColor(fill)) == rsu_color(i) + (COVERAGE_FILL_ALPHA,) and COVERAGE_FILL_ALPHA <= 60
        assert tuple(conn.polygon.getColor(edge)) == rsu_color(i) + (COVERAGE_EDGE_ALPHA,)
        assert COVERAGE_EDGE_ALPHA >= 3 * COVERAGE_FILL_ALPHA  # the outline reads, the fill stays a wash
        assert conn.polygon.getLineWidth(edge) > 0
    moves, boxes_checked, alphas, ho = 0, 0, [], None
    phases_cycle = ["idle", "download", "train", "upload", "done"]
    for step in range(1, 181):
        conn.simulationStep()
        ids, xy, serving = _fleet_and_serving(conn, rsu_xy)
        if not ids:
            continue
        phase = [phases_cycle[(zlib.crc32(v.encode()) // 3 + step // 30) % len(phases_cycle)] for v in ids]
        before = overlay.view_box
        overlay.color_vehicles(ids, serving, phase, xy_m=xy)
        if overlay.view_box != before:
            moves += 1
            (x0, y0), (x1, y1) = conn.gui.getBoundary(overlay.view_id)
            assert width_m - 1 <= x1 - x0 <= 1.6 * width_m, "the view is not zoomed to the asked width"
            w = _weight(phase)
            shown = ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
            h = width_m / overlay.aspect
            best = max(w[(np.abs(xy[:, 0] - x) <= width_m / 2) & (np.abs(xy[:, 1] - y) <= h / 2)].sum() for x, y in xy)
            assert w[shown].sum() >= best, "a box of the same size elsewhere holds more FL vehicles"
            boxes_checked += 1
        if step == 120:
            ho = overlay._ho_count + 1
            overlay.highlight_handover(ids[0], float(xy[0, 0]), float(xy[0, 1]), conn.simulation.getTime())
            t_ho = conn.simulation.getTime()
        if ho is not None and f"iovsim_ho_ring_{ho}" in conn.polygon.getIDList():
            alphas.append((conn.simulation.getTime() - t_ho, conn.polygon.getColor(f"iovsim_ho_ring_{ho}")[3]))
    assert moves >= 2 and boxes_checked == moves, "the view never followed the vehicles"
    ring = next(p for p in conn.polygon.getIDList() if p.startswith("iovsim_phase_"))
    shape = np.array(conn.polygon.getShape(ring))
    radius = np.linalg.norm(shape - shape.mean(axis=0), axis=1).mean()
    assert 0.005 * width_m < radius < 0.03 * width_m, f"phase ring of {radius:.1f} m in a {width_m:.0f} m view"
    a = [x for _, x in alphas]
    assert len(a) >= 3 and all(p > q for p, q in zip(a, a[1:])), f"handover mark does not fade: {alphas}"
    assert max(t for t, _ in alphas) < fade_s
    assert f"iovsim_ho_ring_{ho}" not in conn.polygon.getIDList() and f"iovsim_ho_label_{ho}" not in conn.poi.getIDList()
    overlay.clear()
    conn.simulationStep()


def test_split_training_sub_phases_have_their_own_rings(gui_conn):
    """A split participant's ring tells the vehicle computing (gold, as unsplit training) from the
    activations going up, the RSU's edge server computing and the results coming down."""
    from iovsim.viz.gui import PHASE_MARKER

    conn, net_file = gui_conn
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    rsu_xy = np.array([[900.0, 600.0], [1600.0, 1400.0], [2100.0, 2050.0], [1300.0, 2600.0]])
    overlay = GuiOverlay(conn, rsu_xy, 420.0, net.getBoundary())
    overlay.draw_rsus()
    ids = []
    for _ in range(200):
        conn.simulationStep()
        ids, xy, serving = _fleet_and_serving(conn, rsu_xy)
        if (serving >= 0).sum() >= 4:
            break
    keep = np.flatnonzero(serving >= 0)[:4]
    assert keep.size == 4, "fewer than 4 connected vehicles"
    ids, xy, serving = [ids[k] for k in keep], xy[keep], serving[keep]
    phases = ["train", "split_up", "split_edge", "split_down"]
    overlay.color_vehicles(ids, serving, phases, xy_m=xy)
    rings = {ph: tuple(conn.polygon.getColor(f"iovsim_phase_{v}")) for v, ph in zip(ids, phases)}
    assert rings == {ph: PHASE_MARKER[ph] for ph in phases}
    assert len(set(rings.values())) == 4, rings
    for v, srv in zip(ids, serving):  # in a round: the body in the serving RSU's full colour
        assert tuple(conn.vehicle.getColor(v)) == rsu_color(int(srv)) + (255,)
    overlay.clear()
    conn.simulationStep()


def test_write_gui_settings(tmp_path):
    import xml.etree.ElementTree as ET

    p = write_gui_settings(tmp_path / "s.xml", boundary=[0, 0, 1000, 800])
    root = ET.parse(p).getroot()
    assert root.tag == "viewsettings"
    assert root.find("scheme").get("name") == "iovsim"
    assert root.find("scheme/pois").get("poiType_show") == "1"
    assert float(root.find("delay").get("value")) == 0
    assert root.find("viewport") is not None


def test_frames_to_gif(tmp_path):
    from PIL import Image

    frames = []
    for i, c in enumerate([(255, 0, 0), (0, 0, 255), (0, 200, 0)]):
        p = tmp_path / f"f{i}.png"
        Image.new("RGB", (120 + 40 * (i == 1), 80), c).save(p)
        frames.append(p)
    out = frames_to_gif(frames, tmp_path / "a.gif", duration_ms=200)
    with Image.open(out) as g:
        assert g.n_frames == 3 and g.size == (120, 80)
