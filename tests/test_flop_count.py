"""tools/flop_count.py: the CPU flash-attention kernel's FLOPs, against the math backend's matmuls and a hand count."""
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

spec = importlib.util.spec_from_file_location("flop_count", Path(__file__).resolve().parents[1] / "tools" / "flop_count.py")
flop_count = importlib.util.module_from_spec(spec)
spec.loader.exec_module(flop_count)

B, H, S, D = 3, 4, 24, 8   # BERT-like: batch, heads, tokens, head size


def attention_pass(counter, backend):
    """Forward and backward of masked self-attention (padding mask as an encoder uses); counted FLOPs."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.ones(B, 1, S, S, dtype=torch.bool)
    mask[0, :, :, S // 2:] = False
    with sdpa_kernel(backend), counter:
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
    return counter.get_total_flops()


def test_torch_misses_the_cpu_flash_kernel():
    assert attention_pass(FlopCounterMode(display=False), SDPBackend.FLASH_ATTENTION) == 0


def test_cpu_flash_kernel_counts_as_the_math_backend_and_by_hand():
    hand = 4 * B * H * S * S * D + 8 * B * H * S * S * D  # forward Q K^T, P V; backward dV, dP, dQ, dK
    assert attention_pass(FlopCounterMode(display=False), SDPBackend.MATH) == hand
    assert attention_pass(flop_count.counter(), SDPBackend.FLASH_ATTENTION) == hand
