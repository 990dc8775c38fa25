"""The engine's error for the user, and user code's errors turned into it."""
from __future__ import annotations

from pathlib import Path


class RunError(RuntimeError):
    """A problem running an experiment, phrased for the user."""


def user_code_error(exc: BaseException, run_dir: Path | None) -> RunError | None:
    """A RunError at the user's file and line when `exc` was raised in a user's strategy file, else
    None; with a run folder, the line says what it keeps and how to resume."""
    from iovsim.strategies import describe_user_error, user_code_frame

    if user_code_frame(exc) is None:
        return None
    if run_dir is None:
        return RunError(f"{describe_user_error(exc)}: the strategy failed")
    ckpts = sorted(Path(run_dir).glob("checkpoints/round_*/state.json"))
    kept = f"last checkpoint {ckpts[-1].parent.name}" if ckpts else "no checkpoint yet"
    return RunError(f"{describe_user_error(exc)}: the strategy failed; {run_dir} keeps what was written "
                    f"({kept}); fix it, then iovsim run --resume {run_dir}")
