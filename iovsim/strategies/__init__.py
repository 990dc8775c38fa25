"""Strategy registry: `create(name, params)` builds a registered strategy or a user's `module:Class`.

A built-in strategy registers itself, in its own file, with `@register("name")`: every module of
this package is imported once, so a new file is all a new built-in needs.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
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


def _import_user_module(mod_name: str, base_dir):
    """`package.module`, or a `.py` file (relative to base_dir, the config's folder)."""
    if not mod_name.endswith(".py"):
        return importlib.import_module(mod_name)

    path = Path(mod_name)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        raise ImportError(f"file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"iovsim_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create(name: str, params: dict | None = None, base_dir=None) -> Strategy:
    """Build strategy `name` with keyword `params`: a registered name, "package.module:ClassName",
    or "path/to/file.py:ClassName" (relative paths against `base_dir`, the config's folder).

    A class with `takes_base_dir = True` also gets `base_dir` (e.g. `policy`, whose params name a file).
    Raises ValueError with a one-line message for an unknown name or bad parameters.
    """
    _load_builtin()
    params = dict(params or {})
    if ":" in name:
        mod_name, _, cls_name = name.rpartition(":")
        try:
            cls = getattr(_import_user_module(mod_name, base_dir), cls_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load strategy {name!r}: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ValueError(f"strategy {name!r} is not a subclass of iovsim.strategies.base.Strategy")
    else:
        cls = STRATEGIES.get(name)
        if cls is None:
            raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    if getattr(cls, "takes_base_dir", False):  # its params name files relative to the config
        params.setdefault("base_dir", base_dir)
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad parameters for strategy {name!r}: {e}") from None


def names() -> list[str]:
    """Registered strategy names."""
    _load_builtin()
    return sorted(STRATEGIES)


__all__ = ["STRATEGIES", "register", "create", "names", "Strategy"]

# Register the built-ins on import, so `STRATEGIES` is complete for whoever reads it directly.
_load_builtin()
