"""`cpuformer.nn.GRU`: torch.nn.GRU for inference on numpy float32 arrays (same engine as nn.LSTM)."""
from __future__ import annotations

from typing import Optional

from .recurrent import SingleStateRecurrent

__all__ = ["GRU"]


class GRU(SingleStateRecurrent):
    """Multi-layer GRU with torch.nn.GRU's arguments, parameter names and results (inference only).

    Gates in torch's order r, z, n: r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    ``forward(x, hx=None, lengths=None) -> (output, h_n)`` with x [T, B, input_size] ([B, T, input_size] when
    batch_first) or unbatched [T, input_size]; hx = h0 [L*dirs, B, hidden_size] ([L*dirs, hidden_size]
    unbatched) or None (zeros). ``lengths``, ``dropout`` and ``dtype`` as for nn.LSTM.
    """

    mode = "GRU"
    _torch_class = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, seed: Optional[int] = None, dtype: str = "float32"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         seed=seed, dtype=dtype)

