"""Strategy registry: `create(name, params)` builds a registered strategy or a user's `module:Class`.

A built-in strategy registers itself, in its own file, with `@register("name")`: every module of
this package is imported once, so a new file is all a new built-in needs.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import traceback
from pathlib import Path

from iovsim.strategies.base import Strategy

STRATEGIES: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a Strategy subclass available under `name`."""

    def deco(cls):
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # Importing each module of the package runs its @register decorators (imports are cached).
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


class StrategyLoadError(ValueError):
    """A strategy that cannot be loaded or built, phrased for the user; `field` is the strategy
    config field at fault (`name` or `params`)."""

    def __init__(self, message: str, field: str = "name"):
        super().__init__(message)
        self.field = field


#: Real paths of the users' strategy files loaded so far: their frames are the user's code.
USER_FILES: set[str] = set()


def user_code_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of `exc`'s traceback that lies in a user's strategy file, or None."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.realpath(frame.filename) in USER_FILES:
            return frame
    return None


def describe_user_error(exc: BaseException, fallback_file=None) -> str:
    """`FILE:LINE: Type: message (in function)` at the user's line, for one line on the terminal."""
    msg = (str(exc).strip().splitlines() or [""])[0]
    what = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename and os.path.realpath(exc.filename) in USER_FILES:
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frame = user_code_frame(exc)
    if frame is not None:
        return f"{frame.filename}:{frame.lineno}: {what} (in {frame.name})"
    return f"{fallback_file}: {what}" if fallback_file else what


def _import_user_module(mod_name: str, base_dir):
    """`package.module`, or a `.py` file (relative to base_dir, the config's folder)."""
    if not mod_name.endswith(".py"):
        try:
            spec = importlib.util.find_spec(mod_name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise StrategyLoadError(f"cannot load strategy module {mod_name!r}: no such module on the Python path")
        if spec.origin and not _is_ours(spec.origin):
            USER_FILES.add(os.path.realpath(spec.origin))
        return _exec_user(lambda: importlib.import_module(mod_name), spec.origin or mod_name)

    path = Path(mod_name)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise StrategyLoadError(f"cannot load strategy: file not found: {path}")
    USER_FILES.add(os.path.realpath(path))
    spec = importlib.util.spec_from_file_location(f"iovsim_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    return _exec_user(lambda: spec.loader.exec_module(module) or module, path)


def _is_ours(path: str) -> bool:
    """A file of the iovsim package itself (its errors are not the user's)."""
    package = os.path.realpath(Path(__file__).resolve().parent.parent)
    return os.path.realpath(path).startswith(package + os.sep)


def _exec_user(load, path):
    """Run a user module's import; any failure becomes one line at the user's file and line."""
    try:
        return load()
    except Exception as e:  # noqa: BLE001 - whatever the user's import raises is the user's to fix
        raise StrategyLoadError(f"cannot import strategy: {describe_user_error(e, path)}") from None


def create(name: str, params: dict | None = None, base_dir=None) -> Strategy:
    """Build strategy `name` with keyword `params`: a registered name, "package.module:ClassName",
    or "path/to/file.py:ClassName" (relative paths against `base_dir`, the config's folder).

    A class with `takes_base_dir = True` also gets `base_dir` (e.g. `policy`, whose params name a file).
    Raises StrategyLoadError (a ValueError) with a one-line message for an unknown name, a user
    file that does not import, or bad parameters.
    """
    _load_builtin()
    params = dict(params or {})
    if ":" in name:
        mod_name, _, cls_name = name.rpartition(":")
        module = _import_user_module(mod_name, base_dir)
        cls = getattr(module, cls_name, None)
        where = getattr(module, "__file__", None) or mod_name
        if cls is None:
            raise StrategyLoadError(f"cannot load strategy {name!r}: {where} has no class {cls_name!r}")
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise StrategyLoadError(f"cannot load strategy {name!r}: {where}: {cls_name!r} is not a subclass of "
                                    "iovsim.strategies.base.Strategy")
    else:
        cls = STRATEGIES.get(name)
        if cls is None:
            raise StrategyLoadError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    if "lora_alpha" in params:  # training (peft) and aggregation must scale adapters alike
        raise StrategyLoadError(f"strategy {name!r}: lora_alpha is not a strategy parameter; the LoRA scaling is "
                                "fl.lora_alpha, which the engine passes to every strategy's setup()", field="params")
    if getattr(cls, "takes_base_dir", False):  # its params name files relative to the config
        params.setdefault("base_dir", base_dir)
    try:
        return cls(**params)
    except Exception as e:  # noqa: BLE001 - a constructor of user code may raise anything
        if user_code_frame(e) is not None:
            raise StrategyLoadError(f"strategy {name!r} failed to start: {describe_user_error(e)}") from None
        if isinstance(e, (TypeError, ValueError)):
            raise StrategyLoadError(f"bad parameters for strategy {name!r}: {e}", field="params") from None
        raise


def names() -> list[str]:
    """Registered strategy names."""
    _load_builtin()
    return sorted(STRATEGIES)


__all__ = ["STRATEGIES", "register", "create", "names", "Strategy", "StrategyLoadError", "user_code_frame",
           "describe_user_error"]

# Register the built-ins on import, so `STRATEGIES` is complete for whoever reads it directly.
_load_builtin()
