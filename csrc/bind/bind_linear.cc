// bind_linear.cc — PackedLinear (weights packed once, fused bias/activation/residual) and one-shot linear().
#include <memory>
#include <optional>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "cpu/dispatch.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/packed_matrix.h"
#include "ops/top_k.h"

namespace cpuformer::bind {
namespace {

struct PackedLinear {
  std::shared_ptr<const PackedMatrix> packed;
  kernels::Activation activation;
  std::string activation_name;
};

const char* dtype_name(WeightDtype dtype) { return weight_dtype_name(dtype); }

WeightDtype parse_dtype(const std::string& dtype) {
  try {
    return parse_weight_dtype(dtype);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

WeightLayout parse_layout(const std::string& layout) {
  if (layout == "out_in") return WeightLayout::out_in;
  if (layout == "in_out") return WeightLayout::in_out;
  throw py::value_error("layout must be 'out_in' (nn.Linear, [out, in]) or 'in_out' (Conv1D, [in, out]); got '" +
                        layout + "'");
}

PackedLinear make_packed_linear(const py::handle& weight_obj, const py::handle& bias_obj, const std::string& activation,
                                const std::string& layout_name, const std::string& dtype_str = "float32",
                                int64_t group_size = kDefaultInt8Group, const py::handle& smooth_obj = py::none()) {
  const WeightLayout layout = parse_layout(layout_name);
  const WeightDtype dtype = parse_dtype(dtype_str);
  if (group_size < 0)
    throw py::value_error("group_size must be >= 0 (0: one scale per output feature), got " +
                          std::to_string(group_size));
  FloatArray weight = float_input(weight_obj, "weight", 2, 2, -1, "(out_features, in_features)");
  const int64_t n = layout == WeightLayout::out_in ? weight.shape(0) : weight.shape(1);
  const int64_t k = layout == WeightLayout::out_in ? weight.shape(1) : weight.shape(0);
  if (n == 0) throw py::value_error("weight has 0 output features, got shape " + shape_str(weight));
  const std::optional<FloatArray> bias = optional_float_input(bias_obj, "bias");
  if (bias) {
    if (bias->ndim() != 1 || bias->shape(0) != n)
      throw py::value_error("bias must have shape (" + std::to_string(n) + ",) to match weight " + shape_str(weight) +
                            ", got " + shape_str(*bias));
  }
  const std::optional<FloatArray> smooth = optional_float_input(smooth_obj, "smooth");
  if (smooth) {
    if (dtype != WeightDtype::s8)
      throw py::value_error("smooth needs dtype='int8' (it rescales what int8 compute quantizes); got dtype '" +
                            dtype_str + "'");
    if (smooth->ndim() != 1 || smooth->shape(0) != k)
      throw py::value_error("smooth must have shape (" + std::to_string(k) + ",) (one factor per input feature), got " +
                            shape_str(*smooth));
  }
  PackedLinear lin;
  lin.activation = parse_activation(activation);
  lin.activation_name = activation;
  const float* w = weight.data();
  const float* b = bias ? bias->data() : nullptr;
  const kernels::KernelTable& kt = kernels_for_active_isa();
  {
    py::gil_scoped_release release;
    const float* sm = smooth ? smooth->data() : nullptr;
    lin.packed = std::make_shared<PackedMatrix>(w, n, k, layout, b, kt, dtype, group_size, sm);
  }
  return lin;
}

py::array run_linear(const PackedMatrix& pm, kernels::Activation act, const py::handle& x_obj,
                     const py::handle& residual_obj, const py::handle& out_obj) {
  const std::string expected = "(..., " + std::to_string(pm.k()) + ")";
  FloatArray x = float_input(x_obj, "x", 1, 32, pm.k(), expected.c_str());
  std::vector<int64_t> shape_of_output = shape_of(x);
  shape_of_output.back() = pm.n();
  const int64_t m = leading_rows(x);

  const std::optional<FloatArray> residual = optional_float_input(residual_obj, "residual");
  if (residual && shape_of(*residual) != shape_of_output)
    throw py::value_error("residual must have the output's shape " + shape_str(shape_of_output) + ", got " +
                          shape_str(*residual));
  FloatArray out =
      out_obj.is_none() ? FloatArray(shape_of_output) : float_output(out_obj, "out", shape_of_output);
  if (overlaps(out, x)) throw py::value_error("out must not share memory with x");
  // Partial sums land in out before the last K block reads the residual, so they may not alias either.
  if (residual && overlaps(out, *residual)) throw py::value_error("out must not share memory with residual");

  const float* xp = x.data();
  const float* rp = residual ? residual->data() : nullptr;
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    gemm_packed(xp, m, pm.k(), pm, op, pm.n(), act, rp, pm.n());
  }
  return std::move(out);
}

py::tuple run_top_k(const PackedMatrix& pm, const py::handle& q_obj, int64_t k, const py::handle& exclude_obj) {
  const std::string expected = "(q, " + std::to_string(pm.k()) + ")";
  FloatArray queries = float_input(q_obj, "queries", 2, 2, pm.k(), expected.c_str());
  if (k < 0) throw py::value_error("k must be >= 0, got " + std::to_string(k));
  const int64_t q = queries.shape(0), kk = std::min<int64_t>(k, pm.n());
  const std::optional<Int64Array> exclude = optional_int64_input(exclude_obj, "exclude");
  if (exclude && (exclude->ndim() != 2 || exclude->shape(0) != q))
    throw py::value_error("exclude must have shape (" + std::to_string(q) + ", e), got " + shape_str(*exclude));
  const int64_t n_exclude = exclude ? exclude->shape(1) : 0;
  Int64Array indices({q, kk});
  FloatArray scores({q, kk});
  const float* qp = queries.data();
  const int64_t* ep = exclude ? exclude->data() : nullptr;
  int64_t* ip = indices.mutable_data();
  float* sp = scores.mutable_data();
  {
    py::gil_scoped_release release;
    top_k_dot(qp, q, pm.k(), pm, kk, ep, n_exclude, ip, sp);
  }
  return py::make_tuple(indices, scores);
}

constexpr const char* kTopKDoc =
    "The k largest entries of each row of queries @ W.T (+ bias) without storing the full score matrix: "
    "returns (indices int64 [q, min(k, out_features)], scores float32), best first, ties in ascending index. "
    "exclude: optional int array [q, e] of columns never returned for that row (-1 = no entry). The order is "
    "torch.topk's: NaN scores rank above +inf (NaN in, NaN out), -inf is a score like any other. Rows with fewer "
    "columns left after exclude are padded with index -1 and score -inf.";

}  // namespace

void bind_linear(py::module_& m) {
  py::class_<PackedLinear>(m, "PackedLinear", R"doc(
A linear layer y = act(x @ W.T + b) + residual whose weight is packed once into SIMD panels.

weight: float32 [out_features, in_features] (layout="out_in", as nn.Linear) or [in, out] (layout="in_out",
as GPT-2's Conv1D). The packing targets the ISA active at construction and keeps using it.
activation: "none" | "gelu" (exact erf) | "gelu_tanh" | "relu", fused into the store of the result.
dtype: how the weight is stored; activations and sums stay float32 (weight-only), then bias, activation and
residual as for float32.
  "float32": as given.
  "bf16": rounded to the nearest bfloat16 (ties to even), widened back to float32 in registers: half the
          weight bytes, relative error <= 2^-9 per weight.
  "int8": symmetric, one scale per output feature and group of group_size inputs: scale[n, g] =
          max|W[n, group g]| / 127, q = round-half-even(W / scale) in [-127, 127], W ~= q * scale; a quarter of
          the weight bytes. group_size=0 gives one scale per output feature. Calls with fewer than 16 rows
          (decode) run weight-only (float32 activations); from 16 rows on, int8 compute: each row of x is
          quantized per group of group_size inputs to u8 with a zero point, and the int8 products are summed
          exactly in int32 per group (cpuformer.show_config() names the kernel).
smooth: int8 only, optional float32 [in_features] of positive factors s: W[:, j] * s[j] is quantized and x[:, j]
        / s[j] multiplied (SmoothQuant), moving input channels' outliers from the activations into the weights.
top_k is float32 only.)doc")
      .def(py::init([](const py::handle& weight, const py::handle& bias, const std::string& activation,
                       const std::string& layout, const std::string& dtype, int64_t group_size,
                       const py::handle& smooth) {
             return make_packed_linear(weight, bias, activation, layout, dtype, group_size, smooth);
           }),
           py::arg("weight"), py::arg("bias") = py::none(), py::arg("activation") = "none",
           py::arg("layout") = "out_in", py::arg("dtype") = "float32", py::kw_only(),
           py::arg("group_size") = kDefaultInt8Group, py::arg("smooth") = py::none())
      .def(
          "__call__",
          [](const PackedLinear& self, const py::handle& x, const py::handle& residual, const py::handle& out,
             const py::handle& activation) {
            kernels::Activation act =
                activation.is_none() ? self.activation : parse_activation(activation.cast<std::string>());
            return run_linear(*self.packed, act, x, residual, out);
          },
          py::arg("x"), py::kw_only(), py::arg("residual") = py::none(), py::arg("out") = py::none(),
          py::arg("activation") = py::none(),
          "x: float32 [..., in_features] -> [..., out_features]. residual (same shape as the output) is added after "
          "the activation. out: optional preallocated C-contiguous result. Releases the GIL.")
      .def(
          "top_k",
          [](const PackedLinear& self, const py::handle& queries, int64_t k, const py::handle& exclude) {
            if (self.packed->dtype() != WeightDtype::f32)
              throw py::value_error(std::string("top_k supports dtype 'float32' only; this PackedLinear has dtype '") +
                                    dtype_name(self.packed->dtype()) + "', build one with dtype='float32'");
            if (self.activation != kernels::Activation::none)
              throw py::value_error("top_k scores x @ W.T + b; this PackedLinear has activation '" +
                                    self.activation_name + "', build one with activation='none'");
            return run_top_k(*self.packed, queries, k, exclude);
          },
          py::arg("queries"), py::arg("k"), py::arg("exclude") = py::none(), kTopKDoc)
      .def(
          "rows",
          [](const PackedLinear& self, const py::handle& ids_obj) {
            const PackedMatrix& pm = *self.packed;
            const std::string what = "a weight with " + std::to_string(pm.n()) + " output features";
            Int64Array ids = ids_input(ids_obj, "ids", pm.n(), what.c_str());
            std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
            shape.push_back(pm.k());
            FloatArray out(shape);
            const int64_t* ip = ids.data();
            float* op = out.mutable_data();
            const int64_t n = ids.size();
            {
              py::gil_scoped_release release;
              pm.unpack_rows(ip, n, op);
            }
            return out;
          },
          py::arg("ids"),
          "weight[ids] (rows of [out_features, in_features], as stored: bf16 / int8 dequantized): ids of any shape "
          "and integer dtype -> ids.shape + (in_features,). A tied embedding reads its rows from the packed head "
          "instead of keeping a second float32 table.")
      .def_property_readonly("in_features", [](const PackedLinear& s) { return s.packed->k(); })
      .def_property_readonly("out_features", [](const PackedLinear& s) { return s.packed->n(); })
      .def_property_readonly("activation", [](const PackedLinear& s) { return s.activation_name; })
      .def_property_readonly(
          "dtype", [](const PackedLinear& s) { return std::string(dtype_name(s.packed->dtype())); },
          "How the weight is stored: 'float32', 'bf16' or 'int8'.")
      .def_property_readonly(
          "group_size",
          [](const PackedLinear& s) -> py::object {
            if (s.packed->dtype() != WeightDtype::s8) return py::none();
            return py::int_(s.packed->group());
          },
          "int8: input features per scale (in_features when there is one scale per output feature); else None.")
      .def_property_readonly(
          "nbytes", [](const PackedLinear& s) { return s.packed->packed_bytes(); },
          "Bytes of packed weight, scales and bias this layer holds.")
      .def_property_readonly("isa", [](const PackedLinear& s) { return std::string(s.packed->kernels().isa_name); })
      .def_property_readonly("has_bias", [](const PackedLinear& s) { return s.packed->has_bias(); })
      .def_property_readonly(
          "weight",
          [](const PackedLinear& s) {
            FloatArray w({s.packed->n(), s.packed->k()});
            s.packed->unpack_out_in(w.mutable_data());
            return w;
          },
          "The weight unpacked to [out_features, in_features] (a copy): for 'int8' the dequantized q * scale, for "
          "'bf16' the rounded values.")
      .def_property_readonly(
          "quantized_weight",
          [](const PackedLinear& s) {
            if (s.packed->dtype() != WeightDtype::s8)
              throw py::value_error(std::string("quantized_weight needs dtype 'int8'; this PackedLinear has dtype '") +
                                    dtype_name(s.packed->dtype()) + "'");
            py::array_t<int8_t, py::array::c_style> q({s.packed->n(), s.packed->k()});
            FloatArray scale({s.packed->n(), s.packed->num_groups()});
            s.packed->unpack_s8(q.mutable_data(), scale.mutable_data());
            return py::make_tuple(q, scale);
          },
          "dtype 'int8' only: (q int8 [out_features, in_features], scale float32 [out_features, groups]) with "
          "groups = ceil(in_features / group_size); W[n, k] ~= q[n, k] * scale[n, k // group_size] (copies).")
      .def_property_readonly("bias", [](const PackedLinear& s) -> py::object {
        if (!s.packed->has_bias()) return py::none();
        FloatArray b({s.packed->n()});
        s.packed->unpack_bias(b.mutable_data());
        return std::move(b);
      })
      .def("__repr__", [](const PackedLinear& s) {
        return "PackedLinear(in_features=" + std::to_string(s.packed->k()) + ", out_features=" +
               std::to_string(s.packed->n()) + ", bias=" + (s.packed->has_bias() ? "True" : "False") +
               ", activation='" + s.activation_name + "', dtype='" + dtype_name(s.packed->dtype()) + "', isa='" +
               s.packed->kernels().isa_name + "')";
      });

  m.def(
      "top_k_dot",
      [](const py::handle& queries, const py::handle& matrix, int64_t k, const py::handle& exclude) {
        PackedLinear lin = make_packed_linear(matrix, py::none(), "none", "out_in");
        return run_top_k(*lin.packed, queries, k, exclude);
      },
      py::arg("queries"), py::arg("matrix"), py::arg("k"), py::arg("exclude") = py::none(),
      "top_k_dot(queries [q, d], matrix [n, d], k): PackedLinear(matrix).top_k(queries, k) for one call; keep a "
      "PackedLinear to pack the matrix only once.");
  m.def(
      "linear",
      [](const py::handle& x, const py::handle& weight, const py::handle& bias, const std::string& activation,
         const py::handle& residual, const std::string& dtype) {
        PackedLinear lin = make_packed_linear(weight, bias, activation, "out_in", dtype);
        return run_linear(*lin.packed, lin.activation, x, residual, py::none());
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("activation") = "none",
      py::arg("residual") = py::none(), py::arg("dtype") = "float32",
      "One-shot y = act(x @ weight.T + bias) + residual, the weight stored as dtype ('float32', 'bf16', 'int8': "
      "see PackedLinear). Packs the weight on every call: use PackedLinear for repeated calls.");
}

}  // namespace cpuformer::bind
