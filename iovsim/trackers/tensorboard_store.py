"""TensorBoard: scalars per round, the config as hparams (and as text), figures as images, in RUN_DIR/tensorboard/."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUBDIR = "tensorboard"


class TensorboardTracker:
    """Event files written by torch's SummaryWriter; read them with TensorBoard or its EventAccumulator."""

    def __init__(self, run_dir: Path, params: dict | None, resume_round: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides what the interrupted run logged from this step on, so the
        # rounds replayed after the checkpoint appear once.
        purge = resume_round + 1 if resume_round is not None else None
        self.writer = SummaryWriter(str(run_dir / SUBDIR), purge_step=purge)
        if params:
            self._log_params(params)

    def _log_params(self, params: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        # Written into this run's own event file (SummaryWriter.add_hparams would open a sub-run).
        for summary in hparams(params, {}):
            self.writer.file_writer.add_summary(summary)
        text = "\n".join(f"    {k}: {v}" for k, v in params.items())  # indented: markdown code block
        self.writer.add_text("config", text, global_step=0)

    def log_round(self, round_index: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=round_index)
        self.writer.flush()

    def log_figures(self, pngs: list[Path], round_index: int) -> None:
        from PIL import Image

        for p in pngs:
            with Image.open(p) as im:
                pixels = np.asarray(im.convert("RGB"))
            self.writer.add_image(f"figures/{Path(p).stem}", pixels, global_step=round_index, dataformats="HWC")
        self.writer.flush()

    def close(self, finished: bool = True) -> None:
        self.writer.close()
