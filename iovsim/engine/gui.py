"""sumo-gui hooks of a run (`iovsim gui`): RSUs, vehicle colours by phase, handovers, screenshots."""
from __future__ import annotations

from pathlib import Path


WINDOW_PX = (1280, 900)


def gui_args(run_dir: Path, view: str = "auto") -> list[str]:
    """sumo-gui options: iovsim's view settings, start at once, quit at the end."""
    from iovsim.viz.gui import write_gui_settings
    from iovsim.viz.gui_view import parse_view

    settings = run_dir / "gui-settings.xml"
    # Vehicles drawn larger only when the whole net is in view; zoomed in, their true size reads.
    write_gui_settings(settings, vehicle_exaggeration=6.0 if parse_view(view).kind == "net" else 2.0)
    return ["--gui-settings-file", str(settings), "--start", "true", "--quit-on-end", "true",
            "--window-size", f"{WINDOW_PX[0]},{WINDOW_PX[1]}"]


class GuiHooks:
    """Draws on a running sumo-gui; every method is called by the round loop at its moment."""

    def __init__(self, api, rsu_xy_m, radius_m: float, net_boundary, screenshots_dir: Path | None,
                 screenshot_handovers: bool, view: str = "auto"):
        from iovsim.viz.gui import GuiOverlay
        from iovsim.viz.gui_view import parse_view

        self.overlay = GuiOverlay(api, rsu_xy_m, radius_m, net_boundary, view=parse_view(view),
                                  aspect=WINDOW_PX[0] / WINDOW_PX[1])
        self.overlay.draw_rsus()
        self.screenshots_dir = screenshots_dir
        self.screenshot_handovers = screenshot_handovers
        if screenshots_dir:
            screenshots_dir.mkdir(parents=True, exist_ok=True)

    def on_step(self, view, phases: dict[str, str]):
        for ev in view.link.handovers:
            self.overlay.highlight_handover(ev.vehicle_id, ev.x_m, ev.y_m, ev.time_s)
            if self.screenshots_dir and self.screenshot_handovers:
                self.overlay.screenshot(str(self.screenshots_dir / f"handover_{ev.time_s:08.1f}_{ev.vehicle_id}.png"))
        ids = view.snap.vehicle_ids
        self.overlay.color_vehicles(ids, view.link.serving, [phases.get(v, "idle") for v in ids], xy_m=view.snap.xy_m)

    def on_round_start(self, round_index: int):
        # One picture per round, early in it, while the participants' phases show.
        if self.screenshots_dir:
            self.overlay.screenshot(str(self.screenshots_dir / f"round_{round_index:04d}.png"))

    def on_round_end(self, round_index: int, participants: int, accuracy_by_task: dict, statuses: dict | None = None):
        self.overlay.show_status(round_index, participants, accuracy_by_task, statuses)

    def close(self):
        try:
            self.overlay.flush()  # sumo-gui writes a pending screenshot only at the next step
        except Exception:  # noqa: BLE001 - the user may have closed the window
            pass
