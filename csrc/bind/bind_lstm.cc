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

namespace cpuformer::bind {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "(";
  size_t i = 0;
  for (int64_t v : d) s += (i++ ? ", " : "") + std::to_string(v);
  return s + (d.size() == 1 ? ",)" : ")");
}

bool has_shape(const py::array& a, std::initializer_list<int64_t> d) {
  if (static_cast<size_t>(a.ndim()) != d.size()) return false;
  py::ssize_t i = 0;
  for (int64_t v : d)
    if (a.shape(i++) != v) return false;
  return true;
}

FloatArray shaped_input(const py::handle& obj, const std::string& name, std::initializer_list<int64_t> d) {
  FloatArray a = float_input(obj, name.c_str());
  if (!has_shape(a, d)) throw py::value_error(name + " must have shape " + dims(d) + ", got " + shape_str(a));
  return a;
}

std::optional<FloatArray> optional_input(const py::handle& obj, const std::string& name,
                                         std::initializer_list<int64_t> d) {
  if (obj.is_none()) return std::nullopt;
  return shaped_input(obj, name, d);
}

// Sequence lengths: 1-D integers, one per batch entry, each in [1, steps].
Int64Array lengths_input(const py::handle& obj, int64_t batch, int64_t steps) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error("lengths must be a numpy.ndarray of integers, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (arr.dtype().kind() != 'i' && arr.dtype().kind() != 'u')
    throw py::type_error("lengths must have an integer dtype, got " + std::string(py::str(arr.dtype())));
  if (arr.ndim() != 1 || arr.shape(0) != batch)
    throw py::value_error("lengths must have shape (" + std::to_string(batch) + ",) (one per batch entry), got " +
                          shape_str(arr));
  Int64Array lengths = Int64Array::ensure(arr.attr("astype")(py::dtype::of<int64_t>()));
  const int64_t* p = lengths.data();
  for (int64_t b = 0; b < batch; ++b)
    if (p[b] < 1 || p[b] > steps)
      throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is outside [1, " +
                            std::to_string(steps) + "] (every sequence needs 1 to T = " + std::to_string(steps) +
                            " steps)");
  return lengths;
}

struct PackedLstmHandle {
  std::shared_ptr<const PackedLstm> lstm;
};

PackedLstmHandle make_packed_lstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional,
                                  int64_t proj_size, const py::sequence& weights) {
  if (input_size <= 0 || hidden_size <= 0 || num_layers <= 0)
    throw py::value_error("input_size, hidden_size and num_layers must be positive, got " +
                          dims({input_size, hidden_size, num_layers}));
  if (proj_size < 0 || proj_size >= hidden_size)
    throw py::value_error("proj_size must be in [0, hidden_size) = [0, " + std::to_string(hidden_size) + "), got " +
                          std::to_string(proj_size));
  const int dirs = bidirectional ? 2 : 1;
  const int64_t hout = proj_size > 0 ? proj_size : hidden_size;
  const int64_t sets = num_layers * dirs;
  if (static_cast<int64_t>(py::len(weights)) != sets)
    throw py::value_error("weights must hold num_layers * directions = " + std::to_string(sets) +
                          " tuples (w_ih, w_hh, b_ih, b_hh, w_hr), got " + std::to_string(py::len(weights)));
  std::vector<FloatArray> keep;  // owns converted arrays until packing is done
  std::vector<LstmWeightsView> views;
  for (int64_t s = 0; s < sets; ++s) {
    const std::string name = "weights[" + std::to_string(s) + "]";
    py::sequence set = py::reinterpret_borrow<py::sequence>(weights[s]);
    if (py::len(set) != 5) throw py::value_error(name + " must be a tuple (w_ih, w_hh, b_ih, b_hh, w_hr)");
    const int64_t in = s < dirs ? input_size : dirs * hout;
    auto take = [&](const std::optional<FloatArray>& a) -> const float* {
      if (!a) return nullptr;
      keep.push_back(*a);
      return a->data();
    };
    LstmWeightsView v{};
    v.w_ih = take(shaped_input(set[0], name + ".w_ih", {4 * hidden_size, in}));
    v.w_hh = take(shaped_input(set[1], name + ".w_hh", {4 * hidden_size, hout}));
    v.b_ih = take(optional_input(set[2], name + ".b_ih", {4 * hidden_size}));
    v.b_hh = take(optional_input(set[3], name + ".b_hh", {4 * hidden_size}));
    if (proj_size > 0) v.w_hr = take(shaped_input(set[4], name + ".w_hr", {proj_size, hidden_size}));
    else if (!set[4].is_none()) throw py::value_error(name + ".w_hr must be None when proj_size is 0");
    views.push_back(v);
  }
  const kernels::KernelTable& kt = kernels_for_active_isa();
  PackedLstmHandle h;
  py::gil_scoped_release release;
  h.lstm = std::make_shared<PackedLstm>(input_size, hidden_size, num_layers, bidirectional, proj_size, views, kt);
  return h;
}

py::tuple run_packed_lstm(const PackedLstm& lstm, const py::handle& x_obj, const py::handle& h0_obj,
                          const py::handle& c0_obj, const py::handle& lengths_obj, bool batch_first) {
  const std::string layout = batch_first ? "(batch, steps, " : "(steps, batch, ";
  const std::string expected = layout + std::to_string(lstm.input_size()) + ")";
  FloatArray x = float_input(x_obj, "x", 3, 3, lstm.input_size(), expected.c_str());
  const int64_t steps = batch_first ? x.shape(1) : x.shape(0);
  const int64_t batch = batch_first ? x.shape(0) : x.shape(1);
  if (steps == 0) throw py::value_error("x has 0 time steps; an LSTM needs at least one, got " + shape_str(x));
  const int64_t states = lstm.num_layers() * lstm.directions(), hout = lstm.state_size(), hidden = lstm.hidden_size();
  std::optional<FloatArray> h0 = optional_input(h0_obj, "h0", {states, batch, hout});
  std::optional<FloatArray> c0 = optional_input(c0_obj, "c0", {states, batch, hidden});
  std::optional<Int64Array> lengths;
  if (!lengths_obj.is_none()) lengths = lengths_input(lengths_obj, batch, steps);

  const int64_t out_cols = lstm.directions() * hout;
  FloatArray out(batch_first ? std::vector<py::ssize_t>{batch, steps, out_cols}
                             : std::vector<py::ssize_t>{steps, batch, out_cols});
  FloatArray h_n({states, batch, hout}), c_n({states, batch, hidden});
  const float* xp = x.data();
  const float* h0p = h0 ? h0->data() : nullptr;
  const float* c0p = c0 ? c0->data() : nullptr;
  const int64_t* lp = lengths ? lengths->data() : nullptr;
  float *op = out.mutable_data(), *hp = h_n.mutable_data(), *cp = c_n.mutable_data();
  {
    py::gil_scoped_release release;
    lstm.forward(xp, steps, batch, batch_first, h0p, c0p, lp, op, hp, cp);
  }
  return py::make_tuple(out, h_n, c_n);
}

py::tuple run_lstm_cell(const py::handle& x_obj, const py::handle& h_obj, const py::handle& c_obj,
                        const py::handle& w_ih_obj, const py::handle& w_hh_obj, const py::handle& b_ih_obj,
                        const py::handle& b_hh_obj) {
  FloatArray w_hh = float_input(w_hh_obj, "w_hh", 2, 2, -1, "(4 * hidden, hidden)");
  const int64_t hidden = w_hh.shape(1);
  if (hidden == 0 || w_hh.shape(0) != 4 * hidden)
    throw py::value_error("w_hh must have shape (4 * hidden, hidden) with hidden > 0, got " + shape_str(w_hh));
  FloatArray w_ih = float_input(w_ih_obj, "w_ih", 2, 2, -1, "(4 * hidden, input_size)");
  if (w_ih.shape(0) != 4 * hidden)
    throw py::value_error("w_ih must have shape (" + std::to_string(4 * hidden) +
                          ", input_size) to match w_hh " + shape_str(w_hh) + ", got " + shape_str(w_ih));
  const int64_t input_size = w_ih.shape(1);
  const std::string x_expected = "(batch, " + std::to_string(input_size) + ")";
  FloatArray x = float_input(x_obj, "x", 2, 2, input_size, x_expected.c_str());
  const int64_t batch = x.shape(0);
  FloatArray h = shaped_input(h_obj, "h", {batch, hidden});
  FloatArray c = shaped_input(c_obj, "c", {batch, hidden});
  std::optional<FloatArray> b_ih = optional_input(b_ih_obj, "b_ih", {4 * hidden});
  std::optional<FloatArray> b_hh = optional_input(b_hh_obj, "b_hh", {4 * hidden});

  FloatArray h_out({batch, hidden}), c_out({batch, hidden});
  const float *xp = x.data(), *hp = h.data(), *cp = c.data(), *wi = w_ih.data(), *wh = w_hh.data();
  const float* bi = b_ih ? b_ih->data() : nullptr;
  const float* bh = b_hh ? b_hh->data() : nullptr;
  float *ho = h_out.mutable_data(), *co = c_out.mutable_data();
  const kernels::KernelTable& kt = kernels_for_active_isa();
  {
    py::gil_scoped_release release;
    lstm_cell(xp, hp, cp, batch, input_size, hidden, wi, wh, bi, bh, ho, co, kt);
  }
  return py::make_tuple(h_out, c_out);
}

}  // namespace

void bind_lstm(py::module_& m) {
  py::class_<PackedLstmHandle>(m, "PackedLSTM", R"doc(
A multi-layer (optionally bidirectional, optionally projected) LSTM with torch.nn.LSTM's weights packed once.

weights: num_layers * directions tuples (w_ih, w_hh, b_ih, b_hh, w_hr), layer-major (layer 0 forward, layer 0
reverse, layer 1 forward, ...), float32 in torch's layout: w_ih [4H, in], w_hh [4H, Hout], biases [4H] or None,
w_hr [proj_size, H] or None. Packed for the ISA active at construction. cpuformer.nn.LSTM wraps this.)doc")
      .def(py::init(&make_packed_lstm), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"), py::arg("proj_size"), py::arg("weights"))
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
      .def_property_readonly("isa", [](const PackedLstmHandle& s) { return std::string(s.lstm->kernels().isa_name); });

  m.def("lstm_cell", &run_lstm_cell, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih") = py::none(), py::arg("b_hh") = py::none(),
        "torch.nn.LSTMCell step: x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], b_ih, b_hh [4H] or None -> "
        "(h', c'). Gates i, f, g, o in torch's order. Packs the weights on every call.");
}

}  // namespace cpuformer::bind
