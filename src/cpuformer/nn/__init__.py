"""Layers with torch.nn's constructor arguments, weight names and call semantics, for inference on numpy arrays."""
from .lstm import LSTM

__all__ = ["LSTM"]
