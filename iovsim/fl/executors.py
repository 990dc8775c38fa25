"""Choosing the local-training executor from the FL configuration."""
from __future__ import annotations

import warnings

import torch

from iovsim.fl.train import LocalExecutor


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 matmuls natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def make_executor(fl_cfg, model, tokenized_tasks: list):
    """`fl.executor`: `batched` (default), `sequential` (the reference) or `ray`, at `fl.precision` on the model's device."""
    kind, precision = fl_cfg.executor, fl_cfg.precision
    if kind == "ray":
        from iovsim.fl.ray_executor import RayExecutor

        return RayExecutor.from_config(fl_cfg, model, tokenized_tasks)
    if kind == "sequential":
        if precision != "fp32":
            warnings.warn("fl.precision is applied by the batched executor only; the sequential one runs fp32")
        return LocalExecutor(model, tokenized_tasks)
    from iovsim.fl.batched import BatchedExecutor

    if precision == "bf16" and not native_bf16(model.device):
        # Emulated bf16 matmuls run ~20x slower than fp32 on AVX2 CPUs: not worth it.
        warnings.warn(f"fl.precision bf16: no native bf16 on this {model.device.type}; training in fp32")
        precision = "fp32"
    return BatchedExecutor(model, tokenized_tasks, precision=precision,
                           max_tokens=max_tokens_per_pass(fl_cfg.max_tokens_per_pass, model.device))


CPU_MAX_TOKENS = 2048
"""Tokens per pass on a CPU: the activations a pass keeps for its backward (~95 KiB a token for
MiniLM, fp32) stay near 200 MiB, and the matmuls (2,048 x 384 rows and up) already run near the
speed of larger ones (tools/bench_memory.py)."""
GPU_MAX_TOKENS = 65536
"""Tokens per pass on a GPU: large passes keep it busy; ~6 GiB of MiniLM activations at most."""


def max_tokens_per_pass(configured: int, device: torch.device) -> int:
    """`fl.max_tokens_per_pass`, or for 0 the device's default."""
    if configured:
        return int(configured)
    return GPU_MAX_TOKENS if device.type == "cuda" else CPU_MAX_TOKENS
