"""`cpuformer.nn.RNN`: torch.nn.RNN (Elman, tanh or relu) for inference on numpy float32 arrays (same engine as
nn.LSTM)."""
from __future__ import annotations

from typing import Optional

from .recurrent import SingleStateRecurrent

__all__ = ["RNN", "check_nonlinearity"]


def check_nonlinearity(nonlinearity) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


class RNN(SingleStateRecurrent):
    """Multi-layer Elman RNN with torch.nn.RNN's arguments, parameter names and results (inference only):
    h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (relu with nonlinearity="relu").

    ``forward(x, hx=None, lengths=None) -> (output, h_n)`` as nn.GRU's.
    """

    _torch_class = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, seed: Optional[int] = None, dtype: str = "float32"):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         seed=seed, dtype=dtype)


    def _extra_repr_args(self):
        args = super()._extra_repr_args()
        return args[:1] + [("nonlinearity", "tanh")] + args[1:]
