"""What cpuformer.nn.LSTM, GRU and RNN share (torch's RNNBase): the arguments, torch's parameter names and shapes,
state_dict loading, and the forward call on one packed C++ object (`_core.PackedRecurrent`, one call for every
layer and direction with the GIL released; see docs/ARCHITECTURE.md, "Recurrent layers")."""
from __future__ import annotations

import math
import numbers
from typing import Mapping, Optional, Sequence

import numpy as np

from .. import _core
from ..dtypes import check_dtype

__all__ = ["RecurrentBase"]

# Gate row blocks per unit in torch's weights: LSTM i, f, g, o; GRU r, z, n; RNN one.
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def check_dropout(dropout) -> float:
    """torch's range check; the value itself is unused, as in torch's eval mode (inference only)."""
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number):
        raise TypeError(f"dropout must be a number in [0, 1], got {type(dropout).__name__}")
    if not 0.0 <= float(dropout) <= 1.0:
        raise ValueError(f"dropout must be a number in [0, 1] (ignored: inference runs as torch's eval mode), "
                         f"got {dropout}")
    return float(dropout)


def random_parameters(shapes: Mapping[str, tuple[int, ...]], hidden_size: int,
                      seed: Optional[int]) -> dict[str, np.ndarray]:
    """torch's initialisation: every parameter uniform in +-1/sqrt(hidden_size)."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(hidden_size)
    return {name: rng.uniform(-bound, bound, shape).astype(np.float32) for name, shape in shapes.items()}


def checked_state_dict(owner, expected: Mapping[str, tuple[int, ...]],
                       state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 C-contiguous copies of `expected`'s keys; KeyError naming missing / unexpected keys, TypeError for
    non-float values (shapes are checked by the packing, whose messages name torch's parameter)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(k for k in state_dict if k not in expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {missing}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected}")
        raise KeyError(f"state_dict does not match {owner!r}: " + "; ".join(parts))
    params = {}
    for name in expected:
        value = np.asarray(state_dict[name])
        if value.dtype.kind != "f":
            raise TypeError(f"state_dict[{name!r}] must hold floating-point values, got dtype {value.dtype}")
        params[name] = np.array(value, dtype=np.float32, order="C", copy=True)
    return params


def state_array(name: str, value, unbatched: bool) -> np.ndarray:
    """A hidden / cell state given by the caller: a numpy array, 2-D for an unbatched input (dtype and the
    batched shape are checked in C++)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32, got {type(value).__name__}")
    if unbatched and value.ndim != 2:
        raise ValueError(f"{name} must be 2-D for a 2-D input (unbatched), got shape {value.shape}")
    return value


class RecurrentBase:
    """Multi-layer, optionally bidirectional recurrent layer with torch's arguments and parameter names.

    Subclasses set `mode` (torch's RNNBase mode) and `_torch_class`; LSTM adds proj_size and the (h, c) state.
    """

    mode = "LSTM"
    _torch_class = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, seed: Optional[int] = None, dtype: str = "float32"):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.proj_size = check_int("proj_size", proj_size)
        # Sizes are checked in C++ (ops/recurrent.cc); before drawing weights shaped by them.
        _core.PackedRecurrent.check_sizes(self.mode, self.input_size, self.hidden_size, self.num_layers,
                                          self.proj_size)
        self.dropout = check_dropout(dropout)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        self._install(random_parameters(self.parameter_shapes(), self.hidden_size, seed))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def isa(self) -> str:
        """The kernel ISA the weights were packed for (the active one at the last load)."""
        return self._packed.isa

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """torch's parameter names, in its order, with their shapes."""
        h, p, rows = self.hidden_size, self.proj_size, GATES[self.mode] * self.hidden_size
        h_out = p or h
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.num_directions * h_out
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes[f"weight_ih_l{layer}{suffix}"] = (rows, layer_in)
                shapes[f"weight_hh_l{layer}{suffix}"] = (rows, h_out)
                if self.bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (rows,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (rows,)
                if p:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (p, h)
        return shapes

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Loads torch's parameters (numpy arrays, any float dtype; cast to float32).

        Every expected key must be present and no other key may appear; errors name them. Shapes are checked by
        the packing (the message names torch's parameter). On any error the layer keeps its old weights.
        """
        self._install(checked_state_dict(self, self.parameter_shapes(), state_dict))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under torch's names."""
        return {name: value.copy() for name, value in self._params.items()}

    def _install(self, params: dict[str, np.ndarray]) -> None:
        weights = []
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[: self.num_directions]:
                key = f"l{layer}{suffix}"
                weights.append((params[f"weight_ih_{key}"], params[f"weight_hh_{key}"],
                                params.get(f"bias_ih_{key}"), params.get(f"bias_hh_{key}"),
                                params.get(f"weight_hr_{key}")))
        self._packed = _core.PackedRecurrent(self.mode, self.input_size, self.hidden_size, self.num_layers,
                                             self.bidirectional, weights, self.proj_size, self.dtype)
        self._params = params

    def _run(self, x: np.ndarray, h0, c0, lengths):
        """(output, h_n, c_n) for batched or unbatched x; h0 / c0 already checked to match x's rank."""
        if self._unbatched(x):  # unbatched [T, I]: one sequence, no batch axes anywhere
            if lengths is not None:
                raise ValueError("lengths needs a batched (3-D) input; an unbatched x is one sequence of x.shape[0] "
                                 "steps")
            h0 = None if h0 is None else h0[:, None, :]
            c0 = None if c0 is None else c0[:, None, :]
            out, h_n, c_n = self._packed.forward(x[:, None, :], h0, c0, None, False)
            return out[:, 0], h_n[:, 0], None if c_n is None else c_n[:, 0]
        if lengths is not None and not isinstance(lengths, np.ndarray):
            lengths = np.asarray(lengths)
        return self._packed.forward(x, h0, c0, lengths, self.batch_first)

    @staticmethod
    def _unbatched(x) -> bool:
        return isinstance(x, np.ndarray) and x.ndim == 2

    def _extra_repr_args(self) -> list[tuple[str, object]]:
        return [("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                ("bidirectional", False)]

    def __repr__(self) -> str:
        args = [str(self.input_size), str(self.hidden_size)]
        for name, default in self._extra_repr_args():
            value = getattr(self, name)
            if value != default:
                args.append(f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}")
        return f"{self._torch_class}({', '.join(args)})"


class SingleStateRecurrent(RecurrentBase):
    """Layers whose state is h alone (GRU, RNN): ``forward(x, hx=None, lengths=None) -> (output, h_n)``."""

    def forward(self, x: np.ndarray, hx: Optional[np.ndarray] = None,
                lengths: Optional[Sequence[int] | np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        h0 = None if hx is None else state_array("hx", hx, self._unbatched(x))
        out, h_n, _ = self._run(x, h0, None, lengths)
        return out, h_n

    __call__ = forward
