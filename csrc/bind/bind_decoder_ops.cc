// bind_decoder_ops.cc — the Llama-family row ops: rms_norm, rotary_embedding (in place on strided head rows),
// silu_mul (the SwiGLU gate on a packed [gate; up] GEMM output).
#include <cmath>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace cpuformer::bind {
namespace {

py::array run_rms_norm(const py::handle& x_obj, const py::handle& w_obj, double eps, const py::handle& out_obj) {
  FloatArray x = float_input(x_obj, "x");
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) == 0)
    throw py::value_error("x must have shape (..., features) with features >= 1, got " + shape_str(x));
  const int64_t cols = x.shape(x.ndim() - 1);
  const std::string want = "(" + std::to_string(cols) + ",)";
  FloatArray w = float_input(w_obj, "weight", 1, 1, cols, want.c_str());
  if (!(eps >= 0.0) || !std::isfinite(eps)) throw py::value_error("eps must be a finite number >= 0, got " + std::to_string(eps));
  FloatArray y = out_obj.is_none() ? FloatArray(shape_of(x)) : float_output(out_obj, "out", shape_of(x));
  if (overlaps(y, x) && y.data() != x.data()) throw py::value_error("out must be x itself or not overlap it");
  const float *xp = x.data(), *wp = w.data();
  float* yp = y.mutable_data();
  const int64_t rows = leading_rows(x);
  {
    py::gil_scoped_release release;
    rms_norm(xp, wp, yp, rows, cols, static_cast<float>(eps));
  }
  return std::move(y);
}

// x is rotated in place, so it is never copied: a writable float32 view whose last axis is contiguous and whose
// token rows are evenly spaced ([tokens, width] at any row stride, or [B, T, width] with B's stride T rows).
void run_rotary(const py::handle& x_obj, const py::handle& pos_obj, const py::handle& cos_obj,
                const py::handle& sin_obj, int64_t head_dim) {
  if (!py::isinstance<py::array>(x_obj))
    throw py::type_error("x must be a numpy.ndarray of dtype float32, got " + type_name(x_obj));
  py::array x = py::reinterpret_borrow<py::array>(x_obj);
  if (!x.dtype().equal(py::dtype::of<float>()))
    throw py::type_error("x must have dtype float32, got " + std::string(py::str(x.dtype())));
  if (!x.writeable()) throw py::value_error("x must be writable (it is rotated in place)");
  if (x.ndim() != 2 && x.ndim() != 3)
    throw py::value_error("x must have shape (tokens, heads * head_dim) or (batch, tokens, heads * head_dim), got " +
                          shape_str(x));
  if (head_dim < 2 || head_dim % 2) throw py::value_error("head_dim must be even and >= 2, got " + std::to_string(head_dim));
  const int64_t width = x.shape(x.ndim() - 1);
  if (width % head_dim)
    throw py::value_error("x's last axis (" + std::to_string(width) + ") must be a multiple of head_dim=" +
                          std::to_string(head_dim));
  const int64_t fs = sizeof(float);
  const int64_t tokens = leading_rows(x);
  const int64_t row_stride = x.strides(x.ndim() - 2) / fs;
  const bool last_contiguous = width <= 1 || x.strides(x.ndim() - 1) == fs;
  const bool even_rows = x.ndim() == 2 || x.shape(0) <= 1 || x.strides(0) == x.shape(1) * x.strides(1);
  if (!last_contiguous || !even_rows || x.strides(x.ndim() - 2) % fs || (tokens > 1 && row_stride < width))
    throw py::value_error("x must be a view with a contiguous last axis and evenly spaced token rows (it is "
                          "rotated in place, so it cannot be copied)");
  const Int64Array pos = int64_input(pos_obj, "positions");
  std::vector<int64_t> lead(x.shape(), x.shape() + x.ndim() - 1);
  if (shape_of(pos) != lead)
    throw py::value_error("positions must have shape " + shape_str(lead) + " (x's token axes), got " + shape_str(pos));
  const int64_t half = head_dim / 2;
  FloatArray cos = float_input(cos_obj, "cos"), sin = float_input(sin_obj, "sin");
  if (cos.ndim() != 2 || cos.shape(1) != half)
    throw py::value_error("cos must have shape (positions, head_dim / 2 = " + std::to_string(half) + "), got " +
                          shape_str(cos));
  if (shape_of(sin) != shape_of(cos))
    throw py::value_error("sin must have the shape of cos " + shape_str(cos) + ", got " + shape_str(sin));
  const int64_t table_rows = cos.shape(0);
  const int64_t* pp = pos.data();
  for (int64_t t = 0; t < tokens; ++t)
    if (pp[t] < 0 || pp[t] >= table_rows)
      throw py::value_error("positions must be in [0, " + std::to_string(table_rows) + ") (rows of cos / sin), got " +
                            std::to_string(pp[t]) + " at index " + std::to_string(t));
  if (overlaps(x, cos) || overlaps(x, sin)) throw py::value_error("x must not share memory with cos or sin");
  RopeProblem p;
  p.x = static_cast<float*>(x.mutable_data());
  p.tokens = tokens;
  p.row_stride = row_stride;
  p.heads = width / head_dim;
  p.head_dim = head_dim;
  p.positions = pp;
  p.cos = cos.data();
  p.sin = sin.data();
  py::gil_scoped_release release;
  rope(p);
}

py::array run_silu_mul(const py::handle& x_obj, const py::handle& out_obj) {
  FloatArray x = float_input(x_obj, "gate_up");
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) % 2)
    throw py::value_error("gate_up must have shape (..., 2 * features) (gate then up), got " + shape_str(x));
  const int64_t cols = x.shape(x.ndim() - 1) / 2;
  std::vector<int64_t> shape = shape_of(x);
  shape.back() = cols;
  FloatArray y = out_obj.is_none() ? FloatArray(shape) : float_output(out_obj, "out", shape);
  if (overlaps(y, x)) throw py::value_error("out must not share memory with gate_up");
  const float* xp = x.data();
  float* yp = y.mutable_data();
  const int64_t rows = cols == 0 ? 0 : leading_rows(x);
  {
    py::gil_scoped_release release;
    silu_mul(xp, yp, rows, cols, cols);
  }
  return std::move(y);
}

}  // namespace

void bind_decoder_ops(py::module_& m) {
  m.def("rms_norm", &run_rms_norm, py::arg("x"), py::arg("weight"), py::arg("eps") = 1e-6, py::kw_only(),
        py::arg("out") = py::none(),
        "RMSNorm over the last axis as Llama's (fp32): x * rsqrt(mean(x^2) + eps) * weight. out: optional "
        "preallocated result (may be x for in place).");
  m.def("rotary_embedding", &run_rotary, py::arg("x"), py::arg("positions"), py::arg("cos"), py::arg("sin"),
        py::arg("head_dim"), R"doc(
Rotary position embeddings, in place (Hugging Face Llama's rotate-half convention).

x: float32 [tokens, H*D] or [B, T, H*D], every head of every token rotated by its position; a column slice of a
fused QKV projection (qkv[..., :(H + KVH)*D] rotates Q and K together) is rotated where it lies.
positions: int [tokens] or [B, T]; cos, sin: float32 [P, D/2] tables (row p = cos / sin of position p's angles,
computed once per model). Head element i pairs with i + D/2: x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.)doc");
  m.def("silu_mul", &run_silu_mul, py::arg("gate_up"), py::kw_only(), py::arg("out") = py::none(),
        "SwiGLU: gate_up [..., 2F] (gate = first F columns, up = last F, one packed GEMM's output) -> "
        "silu(gate) * up, [..., F].");
}

}  // namespace cpuformer::bind
