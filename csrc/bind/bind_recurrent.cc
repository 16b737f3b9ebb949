// bind_recurrent.cc — PackedRecurrent (torch.nn.LSTM / GRU / RNN weights packed once; the whole sequence runs in
// C++ with the GIL released), PackedLSTM (the same for LSTMs, kept for its callers) and the one-shot lstm_cell().
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "cpu/dispatch.h"
#include "ops/lstm_cell.h"
#include "ops/recurrent.h"

namespace cpuformer::bind {
namespace {

// Converts the arrays (TypeError for wrong types or dtypes); PackedRecurrent / lstm_cell check every shape.

struct PackedRecurrentHandle {
  std::shared_ptr<const PackedRecurrent> net;
};
// PackedLSTM is its own Python class (pybind11 binds a C++ type once).
struct PackedLstmHandle : PackedRecurrentHandle {};

// std::invalid_argument from a parser -> ValueError while the GIL is held.
template <class F>
auto parse_or_value_error(F&& parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

std::shared_ptr<const PackedRecurrent> make_packed(CellKind kind, int64_t input_size, int64_t hidden_size,
                                                   int64_t num_layers, bool bidirectional, int64_t proj_size,
                                                   const py::sequence& weights, const std::string& dtype_name) {
  const WeightDtype dtype = parse_or_value_error([&] { return parse_weight_dtype(dtype_name); });
  std::vector<std::optional<FloatArray>> keep;  // owns converted arrays until packing is done
  keep.reserve(5 * py::len(weights));           // view_of points into it: no reallocation
  std::vector<RecurrentWeightArgs> sets;
  for (size_t s = 0; s < py::len(weights); ++s) {
    const std::string name = "weights[" + std::to_string(s) + "]";
    if (!py::isinstance<py::sequence>(weights[s]) || py::len(weights[s]) != 5)
      throw py::value_error(name + " must be a tuple (w_ih, w_hh, b_ih, b_hh, w_hr)");
    py::sequence set = py::reinterpret_borrow<py::sequence>(weights[s]);
    auto take = [&](size_t i, const char* field) {
      keep.push_back(optional_float_input(set[i], name + "." + field));
      return view_of(keep.back());
    };
    RecurrentWeightArgs w;
    w.w_ih = take(0, "w_ih");
    w.w_hh = take(1, "w_hh");
    w.b_ih = take(2, "b_ih");
    w.b_hh = take(3, "b_hh");
    w.w_hr = take(4, "w_hr");
    sets.push_back(w);
  }
  const RecurrentSizes sizes{kind, input_size, hidden_size, num_layers, bidirectional, proj_size};
  const kernels::KernelTable& kt = kernels_for_active_isa();
  py::gil_scoped_release release;
  return std::make_shared<PackedRecurrent>(sizes, sets, kt, dtype);
}

// (output, h_n, c_n); c_n is None without a cell state.
py::tuple run_packed(const PackedRecurrent& net, const py::handle& x_obj, const py::handle& h0_obj,
                     const py::handle& c0_obj, const py::handle& lengths_obj, bool batch_first) {
  const FloatArray x = float_input(x_obj, "x");
  const std::optional<FloatArray> h0 = optional_float_input(h0_obj, "h0"), c0 = optional_float_input(c0_obj, "c0");
  const std::optional<Int64Array> lengths = optional_int64_input(lengths_obj, "lengths");
  const RecurrentForwardArgs args{view_of(x), view_of(h0), view_of(c0), view_of(lengths), batch_first};
  const RecurrentForwardDims dims = net.check_forward(args);
  const int64_t steps = dims.steps, batch = dims.batch, states = net.num_layers() * net.directions();
  const int64_t out_cols = net.directions() * net.state_size();
  FloatArray out(batch_first ? std::vector<py::ssize_t>{batch, steps, out_cols}
                             : std::vector<py::ssize_t>{steps, batch, out_cols});
  FloatArray h_n({states, batch, net.state_size()});
  std::optional<FloatArray> c_n;
  if (net.has_cell_state()) c_n.emplace(std::vector<py::ssize_t>{states, batch, net.hidden_size()});
  float *op = out.mutable_data(), *hp = h_n.mutable_data(), *cp = c_n ? c_n->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    net.forward(args, op, hp, cp);
  }
  if (c_n) return py::make_tuple(out, h_n, *c_n);
  return py::make_tuple(out, h_n, py::none());
}

py::tuple run_lstm_cell(const py::handle& x_obj, const py::handle& h_obj, const py::handle& c_obj,
                        const py::handle& w_ih_obj, const py::handle& w_hh_obj, const py::handle& b_ih_obj,
                        const py::handle& b_hh_obj) {
  const FloatArray w_hh = float_input(w_hh_obj, "w_hh"), w_ih = float_input(w_ih_obj, "w_ih");
  const FloatArray x = float_input(x_obj, "x"), h = float_input(h_obj, "h"), c = float_input(c_obj, "c");
  const std::optional<FloatArray> b_ih = optional_float_input(b_ih_obj, "b_ih");
  const std::optional<FloatArray> b_hh = optional_float_input(b_hh_obj, "b_hh");
  const LstmCellArgs args{view_of(x), view_of(h), view_of(c), view_of(w_ih), view_of(w_hh), view_of(b_ih),
                          view_of(b_hh)};
  const LstmCellDims dims = lstm_cell_check(args);
  FloatArray h_out({dims.batch, dims.hidden}), c_out({dims.batch, dims.hidden});
  float *ho = h_out.mutable_data(), *co = c_out.mutable_data();
  const kernels::KernelTable& kt = kernels_for_active_isa();
  {
    py::gil_scoped_release release;
    lstm_cell(args, ho, co, kt);
  }
  return py::make_tuple(h_out, c_out);
}

// The properties both classes share.
template <class Handle>
void def_common_properties(py::class_<Handle>& cls) {
  cls.def_property_readonly("mode", [](const Handle& s) { return std::string(cell_kind_mode(s.net->kind())); })
      .def_property_readonly("input_size", [](const Handle& s) { return s.net->input_size(); })
      .def_property_readonly("hidden_size", [](const Handle& s) { return s.net->hidden_size(); })
      .def_property_readonly("proj_size", [](const Handle& s) { return s.net->proj_size(); })
      .def_property_readonly("num_layers", [](const Handle& s) { return s.net->num_layers(); })
      .def_property_readonly("bidirectional", [](const Handle& s) { return s.net->directions() == 2; })
      .def_property_readonly("isa", [](const Handle& s) { return std::string(s.net->kernels().isa_name); })
      .def_property_readonly("dtype", [](const Handle& s) { return std::string(weight_dtype_name(s.net->dtype())); });
}

}  // namespace

void bind_recurrent(py::module_& m) {
  py::class_<PackedRecurrentHandle> recurrent(m, "PackedRecurrent", R"doc(
A multi-layer, optionally bidirectional LSTM / GRU / Elman RNN with torch's weights packed once.

mode: torch's RNNBase mode, "LSTM", "GRU", "RNN_TANH" or "RNN_RELU". weights: num_layers * directions tuples
(w_ih, w_hh, b_ih, b_hh, w_hr), layer-major (layer 0 forward, layer 0 reverse, layer 1 forward, ...), float32 in
torch's layout with G = 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n) or 1 (RNN) gate blocks: w_ih [G*H, in], w_hh
[G*H, Hout], biases [G*H] or None, w_hr [proj_size, H] (LSTM with proj_size > 0) or None. Packed for the ISA
active at construction. dtype: "float32" | "bf16" | "int8", how the weight matrices are stored (weight-only, as
PackedLinear; states, gates and sums stay float32). cpuformer.nn.LSTM / GRU / RNN and the cell classes wrap this.)doc");
  recurrent
      .def(py::init([](const std::string& mode, int64_t input_size, int64_t hidden_size, int64_t num_layers,
                       bool bidirectional, const py::sequence& weights, int64_t proj_size, const std::string& dtype) {
             const CellKind kind = parse_or_value_error([&] { return parse_cell_kind(mode); });
             return PackedRecurrentHandle{
                 make_packed(kind, input_size, hidden_size, num_layers, bidirectional, proj_size, weights, dtype)};
           }),
           py::arg("mode"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"), py::arg("weights"), py::arg("proj_size") = 0, py::arg("dtype") = "float32")
      .def_static(
          "check_sizes",
          [](const std::string& mode, int64_t input_size, int64_t hidden_size, int64_t num_layers,
             int64_t proj_size) {
            const CellKind kind = parse_or_value_error([&] { return parse_cell_kind(mode); });
            recurrent_check_sizes({kind, input_size, hidden_size, num_layers, false, proj_size});
          },
          py::arg("mode"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
          py::arg("proj_size") = 0,
          "ValueError unless mode is known, input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < "
          "hidden_size (0 unless LSTM): the constructor's first check, for callers that build weights from the sizes.")
      .def(
          "forward",
          [](const PackedRecurrentHandle& self, const py::handle& x, const py::handle& h0, const py::handle& c0,
             const py::handle& lengths, bool batch_first) {
            return run_packed(*self.net, x, h0, c0, lengths, batch_first);
          },
          py::arg("x"), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("lengths") = py::none(),
          py::arg("batch_first") = false,
          "x: float32 [T, B, input_size] ([B, T, input_size] if batch_first); h0 [L*dirs, B, Hout] or None "
          "(zeros); c0 [L*dirs, B, H] or None (LSTM only); lengths: int [B] in [1, T] or None. Returns (output, "
          "h_n, c_n), c_n None unless LSTM; output rows past a sequence's length are zero. Releases the GIL for the "
          "whole sequence.");
  def_common_properties(recurrent);

  py::class_<PackedLstmHandle> lstm(m, "PackedLSTM", R"doc(
A multi-layer (optionally bidirectional, optionally projected) LSTM with torch.nn.LSTM's weights packed once:
PackedRecurrent with mode "LSTM" (same weights tuples; forward always returns c_n).)doc");
  lstm.def(py::init([](int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional,
                       int64_t proj_size, const py::sequence& weights, const std::string& dtype) {
             PackedLstmHandle h;
             h.net = make_packed(CellKind::lstm, input_size, hidden_size, num_layers, bidirectional, proj_size,
                                 weights, dtype);
             return h;
           }),
           py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("bidirectional"),
           py::arg("proj_size"), py::arg("weights"), py::arg("dtype") = "float32")
      .def_static(
          "check_sizes",
          [](int64_t input_size, int64_t hidden_size, int64_t num_layers, int64_t proj_size) {
            recurrent_check_sizes({CellKind::lstm, input_size, hidden_size, num_layers, false, proj_size});
          },
          py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("proj_size"),
          "ValueError unless input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < hidden_size (the "
          "constructor's first check, for callers that build weights from the sizes).")
      .def(
          "forward",
          [](const PackedLstmHandle& self, const py::handle& x, const py::handle& h0, const py::handle& c0,
             const py::handle& lengths, bool batch_first) {
            return run_packed(*self.net, x, h0, c0, lengths, batch_first);
          },
          py::arg("x"), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("lengths") = py::none(),
          py::arg("batch_first") = false,
          "x: float32 [T, B, input_size] ([B, T, input_size] if batch_first); h0 [L*dirs, B, Hout], c0 "
          "[L*dirs, B, H] or None (zeros); lengths: int [B] in [1, T] or None. Returns (output, h_n, c_n); output "
          "rows past a sequence's length are zero. Releases the GIL for the whole sequence.");
  def_common_properties(lstm);

  m.def("lstm_cell", &run_lstm_cell, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih") = py::none(), py::arg("b_hh") = py::none(),
        "torch.nn.LSTMCell step: x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], b_ih, b_hh [4H] or None -> "
        "(h', c'). Gates i, f, g, o in torch's order. Packs the weights on every call (nn.LSTMCell keeps them "
        "packed).");
}

}  // namespace cpuformer::bind
