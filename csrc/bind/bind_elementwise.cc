// bind_elementwise.cc — gelu, activation, layer_norm, softmax on float32 arrays of any rank.
#include "bind/array_args.h"
#include "bind/bindings.h"
#include "ops/elementwise.h"

namespace cpuformer::bind {
namespace {

FloatArray empty_like(const FloatArray& x) { return FloatArray(shape_of(x)); }

py::array run_activation(const py::handle& x_obj, kernels::Activation act) {
  FloatArray x = float_input(x_obj, "x");
  FloatArray y = empty_like(x);
  const float* xp = x.data();
  float* yp = y.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;
    activation(xp, yp, n, act);
  }
  return std::move(y);
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def(
      "gelu",
      [](const py::handle& x, const std::string& approximate) {
        if (approximate != "none" && approximate != "tanh")
          throw py::value_error("approximate must be 'none' (exact erf) or 'tanh', got '" + approximate + "'");
        return run_activation(x, approximate == "tanh" ? kernels::Activation::gelu_tanh : kernels::Activation::gelu);
      },
      py::arg("x"), py::arg("approximate") = "none",
      "GELU, exact (erf) or with the tanh approximation, as torch.nn.functional.gelu.");
  m.def(
      "activation",
      [](const py::handle& x, const std::string& name) { return run_activation(x, parse_activation(name)); },
      py::arg("x"), py::arg("name"), "Elementwise 'none' | 'gelu' | 'gelu_tanh' | 'relu'.");
  m.def(
      "layer_norm",
      [](const py::handle& x_obj, const py::handle& g_obj, const py::handle& b_obj, double eps,
         const py::handle& out_obj) {
        FloatArray x = float_input(x_obj, "x");
        if (x.ndim() < 1 || x.shape(x.ndim() - 1) == 0)
          throw py::value_error("x must have shape (..., features) with features >= 1, got " + shape_str(x));
        const int64_t cols = x.shape(x.ndim() - 1);
        const std::string want = "(" + std::to_string(cols) + ",)";
        FloatArray g = float_input(g_obj, "weight", 1, 1, cols, want.c_str());
        FloatArray b = float_input(b_obj, "bias", 1, 1, cols, want.c_str());
        if (!(eps >= 0.0)) throw py::value_error("eps must be >= 0, got " + std::to_string(eps));
        FloatArray y = out_obj.is_none()
                           ? empty_like(x)
                           : float_output(out_obj, "out", shape_of(x));
        // Each row is read whole before it is written, so out may be x itself, but not a shifted view of it.
        if (overlaps(y, x) && y.data() != x.data()) throw py::value_error("out must be x itself or not overlap it");
        const float *xp = x.data(), *gp = g.data(), *bp = b.data();
        float* yp = y.mutable_data();
        const int64_t rows = leading_rows(x);
        {
          py::gil_scoped_release release;
          layer_norm(xp, gp, bp, yp, rows, cols, static_cast<float>(eps));
        }
        return y;
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps") = 1e-5, py::kw_only(),
      py::arg("out") = py::none(),
      "Layer norm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias (biased variance). out: "
      "optional preallocated result (may be x for in place).");
  m.def(
      "softmax",
      [](const py::handle& x_obj) {
        FloatArray x = float_input(x_obj, "x");
        if (x.ndim() < 1) throw py::value_error("x must have at least one axis, got a 0-d array");
        const int64_t cols = x.shape(x.ndim() - 1);
        FloatArray y = empty_like(x);
        const float* xp = x.data();
        float* yp = y.mutable_data();
        const int64_t rows = cols == 0 ? 0 : leading_rows(x);
        {
          py::gil_scoped_release release;
          softmax(xp, yp, rows, cols);
        }
        return y;
      },
      py::arg("x"), "Softmax over the last axis. A row that is entirely -inf gives zeros rather than NaN.");
}

}  // namespace cpuformer::bind
