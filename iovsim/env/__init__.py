"""Gymnasium environment for learned schedulers (`pip install 'iovsim[gym]'`; docs/rl_env.md).

It sits beside the cli on top of the engine: the engine never imports it. The observation and
action encoding live in `iovsim.strategies.policy` (numpy only), shared with the `policy` strategy
that runs a trained policy in `iovsim run` / `iovsim compare`.
"""
from iovsim.env.config import EnvConfig

try:
    from iovsim.env.env import IovEnv
    from iovsim.env.wrappers import FlatActions
except ModuleNotFoundError as e:  # gymnasium is an optional extra
    if e.name != "gymnasium":
        raise
    raise ModuleNotFoundError("iovsim.env needs gymnasium: pip install 'iovsim[gym]'", name="gymnasium") from None

__all__ = ["IovEnv", "EnvConfig", "FlatActions"]
