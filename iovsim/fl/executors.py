"""Choosing the local-training executor from the FL configuration."""
from __future__ import annotations

import warnings

import torch

from iovsim.fl import gpu_share
from iovsim.fl.gpu_share import GPU_PASS_BYTES
from iovsim.fl.heap import MIN_MMAP_THRESHOLD_BYTES, MMAP_THRESHOLD_BYTES, return_freed_memory
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
    pass_bytes, trainable = CPU_PASS_BYTES, CPU_TRAINABLE_BYTES
    if model.device.type == "cuda":  # the process's share of the GPU (fl.gpu_memory_fraction) bounds both
        pass_bytes, trainable = gpu_share.device_budgets(model.device, fl_cfg.gpu_memory_fraction)
    tokens = max_tokens_per_pass(fl_cfg.max_tokens_per_pass, model.device,
                                 activation_bytes_per_token(model, tokenized_tasks), pass_bytes)
    if model.device.type == "cpu":  # a pass's hidden states go back to the OS when freed (fl/heap.py)
        return_freed_memory(pass_mmap_threshold(tokens * int(model.config.hidden_size) * 4))
    return BatchedExecutor(model, tokenized_tasks, precision=precision, max_tokens=tokens,
                           max_trainable_bytes=trainable)


CPU_MAX_TOKENS = 2048
"""Most tokens per pass on a CPU: the activations a pass keeps for its backward (~95 KiB a token for
MiniLM, fp32) stay near 200 MiB, and the matmuls (2,048 x 384 rows and up) already run near the
speed of larger ones (tools/bench_memory.py)."""
GPU_MAX_TOKENS = 65536
"""Most tokens per pass on a GPU: large passes keep it busy; ~6 GiB of MiniLM activations at most."""
CPU_PASS_BYTES = 384 * 2**20
"""Activations a CPU pass may keep for its backward, by the cost model's count
(`costs.memory.activation_bytes_per_layer`, fp32): MiniLM's 2,048 tokens count 302 MB, below it;
SmolLM2-135M's 1.0 MB a token (30 layers, a gated MLP of 1,536) allows 398 tokens, about one job's
batch of the LLM configs (tools/results/bench_memory.md: its passes of 2,048 tokens kept 2 GB)."""
# The GPU's (gpu_share.GPU_PASS_BYTES, 12 GiB: above MiniLM's 65,536 tokens, 9.7 GB by the count) shrinks
# with the process's share of the GPU (gpu_share.budgets).


CPU_TRAINABLE_BYTES = 512 * 2**20
"""Trainable state (adapters, heads, gradients, AdamW moments) of the jobs a CPU trains at once
(`batched.job_groups`): six rank-16 SmolLM2 adapters (78 MB each); MiniLM's rank-16 query/value
adapter is 2.4 MB, so its rounds up to ~200 participants train in one group."""
# The GPU's: gpu_share.GPU_TRAINABLE_BYTES (8 GiB), likewise bounded by the process's share.


def activation_bytes_per_token(model, tasks: list) -> float:
    """Bytes one token of a training pass keeps for the backward through every layer, by the cost
    model's count (the first task's shape at one token: the attention scores' S^2 term is left out)."""
    from iovsim.costs.memory import activation_bytes_per_layer

    shape = model.shape(1, 1, task=tasks[0] if tasks else None)
    return float(shape.num_layers * activation_bytes_per_layer(shape))


def max_tokens_per_pass(configured: int, device: torch.device, bytes_per_token: float = 0.0,
                        pass_bytes: float | None = None) -> int:
    """`fl.max_tokens_per_pass`, or for 0 the device's default: its most tokens, fewer where they would
    keep more than `pass_bytes` of activations (None: the device's fixed budget; `bytes_per_token`, 0:
    not known)."""
    if configured:
        return int(configured)
    most, budget = (GPU_MAX_TOKENS, GPU_PASS_BYTES) if device.type == "cuda" else (CPU_MAX_TOKENS, CPU_PASS_BYTES)
    if pass_bytes is not None:
        budget = pass_bytes
    if bytes_per_token > 0:
        return max(1, min(most, int(budget // bytes_per_token)))
    return most


def pass_mmap_threshold(hidden_state_bytes: int) -> int:
    """glibc's mmap threshold for passes whose hidden states (tokens x hidden x 4 bytes) are this large:
    half of that, so that every hidden state a pass keeps is mapped and returned on free, and at most
    `heap.MMAP_THRESHOLD_BYTES` (MiniLM's 2,048-token passes: unchanged)."""
    return int(max(MIN_MMAP_THRESHOLD_BYTES, min(MMAP_THRESHOLD_BYTES, hidden_state_bytes // 2)))
