"""fl.max_tokens_per_pass: 0 picks the device's pass size; a number given is used as it is."""
import torch

from iovsim.fl.config import FlConfig
from iovsim.fl.executors import CPU_MAX_TOKENS, GPU_MAX_TOKENS, max_tokens_per_pass


def test_the_default_is_by_device():
    assert FlConfig.__dataclass_fields__["max_tokens_per_pass"].default == 0
    assert max_tokens_per_pass(0, torch.device("cpu")) == CPU_MAX_TOKENS == 2048
    assert max_tokens_per_pass(0, torch.device("cuda")) == GPU_MAX_TOKENS == 65536


def test_a_configured_size_wins():
    assert max_tokens_per_pass(5000, torch.device("cpu")) == 5000
    assert max_tokens_per_pass(1, torch.device("cuda")) == 1


def test_a_model_with_large_activations_gets_fewer_tokens_per_pass():
    # SmolLM2-135M by the cost model's count, per token and layer (fp32): 4 x (2 x 576 norms + 576 + 2 x 576
    # + 2 x 192 attention + 576 + 2 x 1536 + 1536 gated MLP) + 4 x 9 heads (scores at one token) = 33,828
    per_token = 30 * 33_828
    assert max_tokens_per_pass(0, torch.device("cpu"), per_token) == 384 * 2**20 // per_token == 396
    assert max_tokens_per_pass(0, torch.device("cuda"), per_token) == 12 * 2**30 // per_token == 12_696
    # MiniLM's ~150 kB a token would allow 2,684: the device's most tokens stay the limit
    assert max_tokens_per_pass(0, torch.device("cpu"), 150_000) == 2048
    assert max_tokens_per_pass(0, torch.device("cuda"), 150_000) == 65536
    assert max_tokens_per_pass(5000, torch.device("cpu"), per_token) == 5000  # configured: as given


def test_the_mmap_threshold_follows_the_pass():
    from iovsim.fl.executors import pass_mmap_threshold

    assert pass_mmap_threshold(2048 * 384 * 4) == 2**20              # MiniLM: 1.5 MiB / 2 -> the 1 MiB cap
    assert pass_mmap_threshold(396 * 576 * 4) == 456_192             # SmolLM2: half a pass's hidden states
    assert pass_mmap_threshold(10 * 576 * 4) == 128 * 2**10          # tiny passes: the floor
