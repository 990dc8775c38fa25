"""Adapters on the radio: the precision `fl.transfer_dtype` they are sent in.

A vehicle downloads the global adapter and uploads its update in that precision; the server keeps
and aggregates fp32. So the engine rounds the state a vehicle starts from and the update the
aggregation receives through the transfer dtype and back (`as_sent`): the accuracy then shows what
the bits saved by bf16 or fp16 cost. fp32 leaves the state as it is (the same dict).
"""
from __future__ import annotations


def as_sent(state: dict, transfer_dtype: str) -> dict:
    """`state` as it arrives after being sent in `transfer_dtype`: every floating tensor rounded to
    it and back to its own dtype; other entries unchanged. fp32: `state` itself."""
    if transfer_dtype == "fp32":
        return state
    import torch

    wire = {"bf16": torch.bfloat16, "fp16": torch.float16}[transfer_dtype]
    return {k: v.to(wire).to(v.dtype) if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in state.items()}
