"""Wireless channel, association/handover, bandwidth sharing and cost models (numpy only)."""
from iovsim.channel.costs import CostModel, ModelShape
from iovsim.channel.link import Channel, HandoverEvent, LinkState, dwell_prediction_error
from iovsim.channel.resources import allocate_bandwidth

__all__ = ["Channel", "LinkState", "HandoverEvent", "CostModel", "ModelShape", "allocate_bandwidth",
           "dwell_prediction_error"]
