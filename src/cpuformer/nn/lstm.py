"""`cpuformer.nn.LSTM`: torch.nn.LSTM for inference on numpy float32 arrays.

Weights use torch's names and shapes, so a torch state_dict converted to numpy (``{k: v.numpy() for k, v in
sd.items()}``) loads as is. The whole sequence of every layer and direction runs in one C++ call with the GIL
released (see docs/ARCHITECTURE.md, "LSTM"). Variable-length batches take ``lengths`` instead of a
PackedSequence.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ..dtypes import check_dtype

__all__ = ["LSTM"]

State = Tuple[np.ndarray, np.ndarray]


def _int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


class LSTM:
    """Multi-layer LSTM with torch.nn.LSTM's arguments, parameter names and results (inference only).

    Parameters start random like torch's (uniform in +-1/sqrt(hidden_size)); ``load_state_dict`` replaces them.
    ``forward(x, hx=None, lengths=None) -> (output, (h_n, c_n))`` with x [T, B, input_size] ([B, T, input_size]
    when batch_first) or unbatched [T, input_size]. ``lengths`` (ints, one per batch entry, each in [1, T])
    gives what pack_padded_sequence + pad_packed_sequence(total_length=T) would: output rows past a sequence's
    length are zero and h_n / c_n come from each sequence's last valid step (the reverse direction starts there).
    ``dtype`` ("float32", "bf16" or "int8") is how the packed weight matrices are stored (weight-only, as
    ops.PackedLinear: states, gates and sums stay float32); ``state_dict()`` still returns the float32 parameters.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, proj_size: int = 0,
                 *, seed: Optional[int] = None, dtype: str = "float32"):
        self.input_size = _int("input_size", input_size)
        self.hidden_size = _int("hidden_size", hidden_size)
        self.num_layers = _int("num_layers", num_layers)
        self.proj_size = _int("proj_size", proj_size)
        # Sizes are checked in C++ (ops/lstm.cc); before drawing weights shaped by them.
        _core.PackedLSTM.check_sizes(self.input_size, self.hidden_size, self.num_layers, self.proj_size)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.hidden_size)
        self._install({name: rng.uniform(-bound, bound, shape).astype(np.float32)
                       for name, shape in self.parameter_shapes().items()})

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def isa(self) -> str:
        """The kernel ISA the weights were packed for (the active one at the last load)."""
        return self._packed.isa

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """torch.nn.LSTM's parameter names, in its order, with their shapes."""
        h, p = self.hidden_size, self.proj_size
        h_out = p or h
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.num_directions * h_out
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes[f"weight_ih_l{layer}{suffix}"] = (4 * h, layer_in)
                shapes[f"weight_hh_l{layer}{suffix}"] = (4 * h, h_out)
                if self.bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (4 * h,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (4 * h,)
                if p:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (p, h)
        return shapes

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Loads torch.nn.LSTM's parameters (numpy arrays, any float dtype; cast to float32).

        Every expected key must be present and no other key may appear; errors name them. Shapes are checked by
        the packing (the message names torch's parameter).
        """
        expected = self.parameter_shapes()
        missing = [k for k in expected if k not in state_dict]
        unexpected = sorted(k for k in state_dict if k not in expected)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys: {missing}")
            if unexpected:
                parts.append(f"unexpected keys: {unexpected}")
            raise KeyError(f"state_dict does not match {self!r}: " + "; ".join(parts))
        params = {}
        for name in expected:
            value = np.asarray(state_dict[name])
            if value.dtype.kind != "f":
                raise TypeError(f"state_dict[{name!r}] must hold floating-point values, got dtype {value.dtype}")
            params[name] = np.array(value, dtype=np.float32, order="C", copy=True)
        self._install(params)

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
        self._packed = _core.PackedLSTM(self.input_size, self.hidden_size, self.num_layers, self.bidirectional,
                                        self.proj_size, weights, self.dtype)
        self._params = params

    def forward(self, x: np.ndarray, hx: Optional[Sequence[np.ndarray]] = None,
                lengths: Optional[Sequence[int] | np.ndarray] = None) -> tuple[np.ndarray, State]:
        """x [T, B, input_size] ([B, T, input_size] if batch_first) or [T, input_size] -> (output, (h_n, c_n)).

        hx = (h0 [L*dirs, B, proj_size or hidden_size], c0 [L*dirs, B, hidden_size]) (no batch axis when x is
        unbatched), zeros when None. output: [T, B, dirs * (proj_size or hidden_size)] in x's layout.
        """
        # Types and shapes are checked in C++; here only what unbatched input and the hx tuple need.
        unbatched = isinstance(x, np.ndarray) and x.ndim == 2
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h0, c0) of numpy arrays")
            h0, c0 = hx
            for name, state in (("h0", h0), ("c0", c0)):
                if not isinstance(state, np.ndarray):
                    raise TypeError(f"{name} must be a numpy.ndarray of dtype float32, got {type(state).__name__}")
            if unbatched:
                for name, state in (("h0", h0), ("c0", c0)):
                    if state.ndim != 2:
                        raise ValueError(f"{name} must be 2-D for a 2-D input (unbatched), got shape {state.shape}")
                h0, c0 = h0[:, None, :], c0[:, None, :]
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths needs a batched (3-D) input; an unbatched x is one sequence of x.shape[0] "
                                 "steps")
            out, h_n, c_n = self._packed.forward(x[:, None, :], h0, c0, None, False)
            return out[:, 0], (h_n[:, 0], c_n[:, 0])
        if lengths is not None and not isinstance(lengths, np.ndarray):
            lengths = np.asarray(lengths)
        out, h_n, c_n = self._packed.forward(x, h0, c0, lengths, self.batch_first)
        return out, (h_n, c_n)

    __call__ = forward

    def __repr__(self) -> str:
        args = [str(self.input_size), str(self.hidden_size)]
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("bidirectional", False), ("proj_size", 0)):
            value = getattr(self, name)
            if value != default:
                args.append(f"{name}={value}")
        return f"LSTM({', '.join(args)})"
