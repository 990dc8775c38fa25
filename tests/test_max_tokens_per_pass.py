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
