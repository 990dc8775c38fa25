"""torch's FlopCounterMode with the CPU flash-attention kernel counted (tools/bench_efficiency.py).

FlopCounterMode has formulas for the CUDA attention kernels but none for
`aten._scaled_dot_product_flash_attention_for_cpu` (and its backward), the kernel that
`F.scaled_dot_product_attention` runs on a CPU: its matmuls went uncounted. They are real work
done by the kernel, so a FLOP/s figure that leaves them out understates what ran; `counter()`
adds them, with the same count as the math backend's own matmuls (what FlopCounterMode counts
when attention is composed of bmm's; tests/test_flop_count.py checks it against that):

- forward: Q K^T and P V, 2 * 2 b h s_q s_k d = 4 b h s_q s_k d (d = head size, one multiply-add = 2 FLOPs);
- backward: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: 8 b h s_q s_k d.

Not counted (conservative): the flash backward's recomputation of Q K^T (another 2 b h s_q s_k d
it does execute), softmax, scaling and masking (not matmuls, as nowhere else in the count).
"""
from __future__ import annotations

import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch
from torch.utils.flop_counter import FlopCounterMode, bmm_flop, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Q K^T and P V of one forward (torch's own formula for the CUDA kernels)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                             **kwargs) -> int:
    """dV, dP, dQ, dK: torch's backward formula less its recomputed Q K^T (the math backend keeps P)."""
    b, h, s_q, d = query_shape
    s_k = key_shape[2]
    recompute = bmm_flop((b * h, s_q, d), (b * h, d, s_k))
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape) - recompute


CPU_ATTENTION = {aten._scaled_dot_product_flash_attention_for_cpu: attention_flops,
                 aten._scaled_dot_product_flash_attention_for_cpu_backward: attention_backward_flops}


def counter() -> FlopCounterMode:
    """A FlopCounterMode (no display) that also counts the CPU flash-attention kernel."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)
