"""The encoder classifier under its first name; every model family lives in `iovsim.fl.families`.

`AdapterModel` is family `encoder` (all-MiniLM-L6-v2 by default); `load_model` builds the family
of any `fl.model` (the encoder classifier, or a causal LM such as `smollm2`).
"""
from __future__ import annotations

from iovsim.fl.families import detect_family, load_model  # noqa: F401
from iovsim.fl.families.encoder import AdapterModel, resolve_model_path  # noqa: F401
from iovsim.fl.families.lora import ModelError  # noqa: F401
