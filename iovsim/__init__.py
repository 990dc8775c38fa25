"""iovsim: co-simulation of federated LoRA fine-tuning in Internet-of-Vehicles networks."""
__version__ = "0.1.0"
