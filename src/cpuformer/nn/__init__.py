"""Layers with torch.nn's constructor arguments, weight names and call semantics, for inference on numpy arrays."""
from .cells import GRUCell, LSTMCell, RNNCell
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]
