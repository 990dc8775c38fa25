"""Compute and communication costs of local LoRA training: model shape, FLOPs, bits, device tiers."""
from iovsim.costs.model import CostModel
from iovsim.costs.protocol import CostModelProtocol, LinkRates
from iovsim.costs.shape import ModelShape, decoder_shape, encoder_shape
from iovsim.costs.tiers import DeviceTier, TierColumns, default_device_tiers, tier_columns

__all__ = ["CostModel", "CostModelProtocol", "LinkRates", "ModelShape", "decoder_shape", "encoder_shape", "DeviceTier",
           "TierColumns", "default_device_tiers", "tier_columns"]
