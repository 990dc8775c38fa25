"""Wireless channel: path loss, association/handover, SINR and rates, bandwidth sharing (numpy; numba
compiles the per-step loops when installed, with the same results)."""
from iovsim.channel.dwell import dwell_prediction_error
from iovsim.channel.handover import HandoverEvent
from iovsim.channel.link import Channel
from iovsim.channel.resources import allocate_bandwidth
from iovsim.channel.state import LinkState

__all__ = ["Channel", "LinkState", "HandoverEvent", "allocate_bandwidth", "dwell_prediction_error"]
