"""The engine's error for the user."""


class RunError(RuntimeError):
    """A problem running an experiment, phrased for the user."""
