"""`cpuformer.nn.LSTM`: torch.nn.LSTM for inference on numpy float32 arrays.

Weights use torch's names and shapes, so a torch state_dict converted to numpy (``{k: v.numpy() for k, v in
sd.items()}``) loads as is. The whole sequence of every layer and direction runs in one C++ call with the GIL
released (see docs/ARCHITECTURE.md, "Recurrent layers"). Variable-length batches take ``lengths`` instead of a
PackedSequence.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .recurrent import RecurrentBase, state_array

__all__ = ["LSTM"]

State = Tuple[np.ndarray, np.ndarray]


class LSTM(RecurrentBase):
    """Multi-layer LSTM with torch.nn.LSTM's arguments, parameter names and results (inference only).

    Parameters start random like torch's (uniform in +-1/sqrt(hidden_size)); ``load_state_dict`` replaces them.
    ``forward(x, hx=None, lengths=None) -> (output, (h_n, c_n))`` with x [T, B, input_size] ([B, T, input_size]
    when batch_first) or unbatched [T, input_size]. ``lengths`` (ints, one per batch entry, each in [1, T])
    gives what pack_padded_sequence + pad_packed_sequence(total_length=T) would: output rows past a sequence's
    length are zero and h_n / c_n come from each sequence's last valid step (the reverse direction starts there).
    ``dropout`` is range-checked like torch's and otherwise ignored (inference is torch's eval mode).
    ``dtype`` ("float32", "bf16" or "int8") is how the packed weight matrices are stored (weight-only, as
    ops.PackedLinear: states, gates and sums stay float32); ``state_dict()`` still returns the float32 parameters.
    """

    mode = "LSTM"
    _torch_class = "LSTM"

    def forward(self, x: np.ndarray, hx: Optional[Sequence[np.ndarray]] = None,
                lengths: Optional[Sequence[int] | np.ndarray] = None) -> tuple[np.ndarray, State]:
        """x [T, B, input_size] ([B, T, input_size] if batch_first) or [T, input_size] -> (output, (h_n, c_n)).

        hx = (h0 [L*dirs, B, proj_size or hidden_size], c0 [L*dirs, B, hidden_size]) (no batch axis when x is
        unbatched), zeros when None. output: [T, B, dirs * (proj_size or hidden_size)] in x's layout.
        """
        # Types and shapes are checked in C++; here only what unbatched input and the hx tuple need.
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h0, c0) of numpy arrays")
            unbatched = self._unbatched(x)
            h0, c0 = state_array("h0", hx[0], unbatched), state_array("c0", hx[1], unbatched)
        out, h_n, c_n = self._run(x, h0, c0, lengths)
        return out, (h_n, c_n)

    __call__ = forward

    def _extra_repr_args(self):
        return super()._extra_repr_args() + [("proj_size", 0)]
