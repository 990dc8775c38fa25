"""`iovsim gui` end to end under Xvfb: the real experiment in sumo-gui, a screenshot per round."""
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import iovsim, tiny_config
from test_gui_overlay import xvfb_display  # noqa: F401 - fixture

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_iovsim_gui_writes_a_screenshot_per_round(xvfb_display, tmp_path):  # noqa: F811
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"fl.round_interval_s": 15})))
    shots = tmp_path / "shots"
    env = dict(os.environ, DISPLAY=xvfb_display)
    out = iovsim("gui", cfg, "--out", tmp_path / "run", "--screenshots", shots, "--gif", "--quiet", env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    frames = [shots / "round_0001.png", shots / "round_0002.png"]
    images = []
    for f in frames:
        assert f.exists(), f
        a = np.asarray(Image.open(f).convert("RGB"), dtype=float)
        assert a.shape[0] > 300 and a.shape[1] > 300
        assert a.std() > 10, f"{f} looks blank"
        assert len(np.unique(a.reshape(-1, 3)[::37], axis=0)) > 20, f"{f} has too few colours"
        images.append(a)
    assert np.abs(images[0] - images[1]).mean() > 0.1, "the two rounds look identical"
    assert (shots / "rounds.gif").exists()
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "gui-settings.xml").exists()
