"""`cpuformer.nn.LSTMCell`, `GRUCell`, `RNNCell`: torch's one-step cells for inference on numpy float32 arrays.

Each cell packs its weights once (a one-layer, one-step `_core.PackedRecurrent`: the same gate packing and fused
gate kernels as the sequence layers) and reuses them on every call, so a Python loop over steps pays no repacking.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ..dtypes import check_dtype
from .recurrent import GATES, check_int, checked_state_dict, random_parameters
from .rnn import check_nonlinearity

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]


def _state(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32, got {type(value).__name__}")
    if value.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {value.dtype}")
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    return value


class _Cell:
    """What the three cells share: torch's arguments and parameter names (weight_ih, weight_hh, bias_ih,
    bias_hh), state_dict loading, the input checks and the one-step call."""

    mode = "LSTM"
    _torch_class = "LSTMCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, seed: Optional[int] = None,
                 dtype: str = "float32"):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        _core.PackedRecurrent.check_sizes(self.mode, self.input_size, self.hidden_size, 1)
        self.bias = bool(bias)
        self.dtype = check_dtype(dtype)
        self._install(random_parameters(self.parameter_shapes(), self.hidden_size, seed))

    @property
    def isa(self) -> str:
        """The kernel ISA the weights were packed for (the active one at the last load)."""
        return self._packed.isa

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """torch's parameter names, in its order, with their shapes."""
        rows = GATES[self.mode] * self.hidden_size
        shapes = {"weight_ih": (rows, self.input_size), "weight_hh": (rows, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        return shapes

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Loads torch's cell parameters (numpy arrays, any float dtype; cast to float32); errors name missing,
        unexpected or misshapen keys, and the cell keeps its old weights."""
        params = checked_state_dict(self, self.parameter_shapes(), state_dict)
        for name, shape in self.parameter_shapes().items():
            if params[name].shape != shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {shape}, got {params[name].shape} "
                                 f"(torch.nn.{self._torch_class}'s {name})")
        self._install(params)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under torch's names."""
        return {name: value.copy() for name, value in self._params.items()}

    def _install(self, params: dict[str, np.ndarray]) -> None:
        weights = [(params["weight_ih"], params["weight_hh"], params.get("bias_ih"), params.get("bias_hh"), None)]
        self._packed = _core.PackedRecurrent(self.mode, self.input_size, self.hidden_size, 1, False, weights, 0,
                                             self.dtype)
        self._params = params

    def _input(self, x) -> tuple[np.ndarray, bool]:
        """x as [B, input_size] and whether it came unbatched ([input_size])."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray of dtype float32, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (batch, {self.input_size}) or ({self.input_size},), got {x.shape}")
        return (x[None], True) if x.ndim == 1 else (x, False)

    def _step(self, x: np.ndarray, h: Optional[np.ndarray], c: Optional[np.ndarray]):
        """One step on [B, I], [B, H] -> (h', c' or None), each [B, H]."""
        _, h_n, c_n = self._packed.forward(x[None], None if h is None else h[None], None if c is None else c[None])
        return h_n[0], None if c_n is None else c_n[0]

    def _state(self, name: str, value, batch: int, unbatched: bool) -> np.ndarray:
        shape = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        value = _state(name, value, shape)
        return value[None] if unbatched else value

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"{self._torch_class}({self.input_size}, {self.hidden_size}{extra})"


class LSTMCell(_Cell):
    """torch.nn.LSTMCell: ``forward(x, hx=None) -> (h', c')`` with x [B, input_size] or [input_size], hx = (h, c)
    each [B, hidden_size] ([hidden_size] unbatched) or None (zeros). Gates i, f, g, o in torch's order."""

    mode = "LSTM"
    _torch_class = "LSTMCell"

    def forward(self, x: np.ndarray, hx: Optional[Sequence[np.ndarray]] = None) -> Tuple[np.ndarray, np.ndarray]:
        x, unbatched = self._input(x)
        h = c = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h, c) of numpy arrays")
            h = self._state("h", hx[0], x.shape[0], unbatched)
            c = self._state("c", hx[1], x.shape[0], unbatched)
        h_new, c_new = self._step(x, h, c)
        return (h_new[0], c_new[0]) if unbatched else (h_new, c_new)

    __call__ = forward


class GRUCell(_Cell):
    """torch.nn.GRUCell: ``forward(x, hx=None) -> h'`` with x [B, input_size] or [input_size], hx [B, hidden_size]
    ([hidden_size] unbatched) or None (zeros). Gates r, z, n in torch's order (see nn.GRU)."""

    mode = "GRU"
    _torch_class = "GRUCell"

    def forward(self, x: np.ndarray, hx: Optional[np.ndarray] = None) -> np.ndarray:
        x, unbatched = self._input(x)
        h = None if hx is None else self._state("hx", hx, x.shape[0], unbatched)
        h_new, _ = self._step(x, h, None)
        return h_new[0] if unbatched else h_new

    __call__ = forward


class RNNCell(_Cell):
    """torch.nn.RNNCell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (relu with nonlinearity="relu");
    ``forward(x, hx=None) -> h'`` as GRUCell's."""

    _torch_class = "RNNCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 seed: Optional[int] = None, dtype: str = "float32"):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, seed=seed, dtype=dtype)

    def forward(self, x: np.ndarray, hx: Optional[np.ndarray] = None) -> np.ndarray:
        x, unbatched = self._input(x)
        h = None if hx is None else self._state("hx", hx, x.shape[0], unbatched)
        h_new, _ = self._step(x, h, None)
        return h_new[0] if unbatched else h_new

    __call__ = forward

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self.nonlinearity == "tanh" else text[:-1] + ", nonlinearity='relu')"
