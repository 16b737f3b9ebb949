// bind_lstm.cc — PackedLSTM (torch.nn.LSTM weights packed once; the whole sequence runs in C++ with the GIL
// released) and the one-shot lstm_cell().
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "cpu/dispatch.h"
#include "ops/lstm.h"
#include "ops/lstm_cell.h"

namespace cpuformer::bind {
namespace {

// Converts the arrays (TypeError for wrong types or dtypes); PackedLstm / lstm_cell check every shape.

struct PackedLstmHandle {
  std::shared_ptr<const PackedLstm> lstm;
};

PackedLstmHandle make_packed_lstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional,
                                  int64_t proj_size, const py::sequence& weights, const std::string& dtype_name) {
  WeightDtype dtype;
  try {
    dtype = parse_weight_dtype(dtype_name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  std::vector<std::optional<FloatArray>> keep;  // owns converted arrays until packing is done
  std::vector<LstmWeightArgs> sets;
  for (size_t s = 0; s < py::len(weights); ++s) {
    const std::string name = "weights[" + std::to_string(s) + "]";
    if (!py::isinstance<py::sequence>(weights[s]) || py::len(weights[s]) != 5)
      throw py::value_error(name + " must be a tuple (w_ih, w_hh, b_ih, b_hh, w_hr)");
    py::sequence set = py::reinterpret_borrow<py::sequence>(weights[s]);
    auto take = [&](size_t i, const char* field) {
      keep.push_back(optional_float_input(set[i], name + "." + field));
      return view_of(keep.back());
    };
    LstmWeightArgs w;
    w.w_ih = take(0, "w_ih");
    w.w_hh = take(1, "w_hh");
    w.b_ih = take(2, "b_ih");
    w.b_hh = take(3, "b_hh");
    w.w_hr = take(4, "w_hr");
    sets.push_back(w);
  }
  const LstmSizes sizes{input_size, hidden_size, num_layers, bidirectional, proj_size};
  const kernels::KernelTable& kt = kernels_for_active_isa();
  PackedLstmHandle h;
  py::gil_scoped_release release;
  h.lstm = std::make_shared<PackedLstm>(sizes, sets, kt, dtype);
  return h;
}

py::tuple run_packed_lstm(const PackedLstm& lstm, const py::handle& x_obj, const py::handle& h0_obj,
                          const py::handle& c0_obj, const py::handle& lengths_obj, bool batch_first) {
  const FloatArray x = float_input(x_obj, "x");
  const std::optional<FloatArray> h0 = optional_float_input(h0_obj, "h0"), c0 = optional_float_input(c0_obj, "c0");
  const std::optional<Int64Array> lengths = optional_int64_input(lengths_obj, "lengths");
  const LstmForwardArgs args{view_of(x), view_of(h0), view_of(c0), view_of(lengths), batch_first};
  const LstmForwardDims dims = lstm.check_forward(args);
  const int64_t steps = dims.steps, batch = dims.batch, states = lstm.num_layers() * lstm.directions();
  const int64_t out_cols = lstm.directions() * lstm.state_size();
  FloatArray out(batch_first ? std::vector<py::ssize_t>{batch, steps, out_cols}
                             : std::vector<py::ssize_t>{steps, batch, out_cols});
  FloatArray h_n({states, batch, lstm.state_size()}), c_n({states, batch, lstm.hidden_size()});
  float *op = out.mutable_data(), *hp = h_n.mutable_data(), *cp = c_n.mutable_data();
  {
    py::gil_scoped_release release;
    lstm.forward(args, op, hp, cp);
  }
  return py::make_tuple(out, h_n, c_n);
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

}  // namespace

void bind_lstm(py::module_& m) {
  py::class_<PackedLstmHandle>(m, "PackedLSTM", R"doc(
A multi-layer (optionally bidirectional, optionally projected) LSTM with torch.nn.LSTM's weights packed once.

weights: num_layers * directions tuples (w_ih, w_hh, b_ih, b_hh, w_hr), layer-major (layer 0 forward, layer 0
reverse, layer 1 forward, ...), float32 in torch's layout: w_ih [4H, in], w_hh [4H, Hout], biases [4H] or None,
w_hr [proj_size, H] or None. Packed for the ISA active at construction. dtype: "float32" | "bf16" | "int8", how the
weight matrices are stored (weight-only, as PackedLinear; states, gates and sums stay float32).
cpuformer.nn.LSTM wraps this.)doc")
      .def(py::init(&make_packed_lstm), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"), py::arg("proj_size"), py::arg("weights"), py::arg("dtype") = "float32")
      .def_static(
          "check_sizes",
          [](int64_t input_size, int64_t hidden_size, int64_t num_layers, int64_t proj_size) {
            lstm_check_sizes({input_size, hidden_size, num_layers, false, proj_size});
          },
          py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"), py::arg("proj_size"),
          "ValueError unless input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < hidden_size (the "
          "constructor's first check, for callers that build weights from the sizes).")
      .def(
          "forward",
          [](const PackedLstmHandle& self, const py::handle& x, const py::handle& h0, const py::handle& c0,
             const py::handle& lengths, bool batch_first) {
            return run_packed_lstm(*self.lstm, x, h0, c0, lengths, batch_first);
          },
          py::arg("x"), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("lengths") = py::none(),
          py::arg("batch_first") = false,
          "x: float32 [T, B, input_size] ([B, T, input_size] if batch_first); h0 [L*dirs, B, Hout], c0 "
          "[L*dirs, B, H] or None (zeros); lengths: int [B] in [1, T] or None. Returns (output, h_n, c_n); output "
          "rows past a sequence's length are zero. Releases the GIL for the whole sequence.")
      .def_property_readonly("input_size", [](const PackedLstmHandle& s) { return s.lstm->input_size(); })
      .def_property_readonly("hidden_size", [](const PackedLstmHandle& s) { return s.lstm->hidden_size(); })
      .def_property_readonly("proj_size", [](const PackedLstmHandle& s) { return s.lstm->proj_size(); })
      .def_property_readonly("num_layers", [](const PackedLstmHandle& s) { return s.lstm->num_layers(); })
      .def_property_readonly("bidirectional", [](const PackedLstmHandle& s) { return s.lstm->directions() == 2; })
      .def_property_readonly("isa", [](const PackedLstmHandle& s) { return std::string(s.lstm->kernels().isa_name); })
      .def_property_readonly("dtype",
                             [](const PackedLstmHandle& s) { return std::string(weight_dtype_name(s.lstm->dtype())); });

  m.def("lstm_cell", &run_lstm_cell, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih") = py::none(), py::arg("b_hh") = py::none(),
        "torch.nn.LSTMCell step: x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], b_ih, b_hh [4H] or None -> "
        "(h', c'). Gates i, f, g, o in torch's order. Packs the weights on every call.");
}

}  // namespace cpuformer::bind
