// array_args.h — the bind layer's one vocabulary for turning Python arguments into pointers + shapes. Every message
// names the argument, says what was expected and what came in. Non-contiguous inputs are copied (documented);
// wrong types and dtypes are a TypeError rather than a silent cast. Ops that check their own shapes take the
// converted arrays as ArrayViews (view_of); shape messages everywhere use shape_str (ops/arg_checks.h).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/arg_checks.h"

namespace cpuformer::bind {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using Int64Array = py::array_t<int64_t, py::array::c_style>;

using cpuformer::shape_str;  // shape_str(std::vector<int64_t>), e.g. shape_str({rows, cols})
std::string shape_str(const py::array& a);
std::vector<int64_t> shape_of(const py::array& a);
// The Python type of obj as users spell it: "list", "numpy.ndarray".
std::string type_name(const py::handle& obj);

// A C-contiguous float32 array for `obj`. TypeError unless obj is a numpy array of dtype float32.
FloatArray float_input(const py::handle& obj, const char* name);
// Same, but also checks rank (min_rank..max_rank) and, when last_dim >= 0, the size of the last axis.
FloatArray float_input(const py::handle& obj, const char* name, int min_rank, int max_rank, int64_t last_dim,
                       const char* expected);
// float_input, or nullopt for None.
std::optional<FloatArray> optional_float_input(const py::handle& obj, const std::string& name);
// A writable output array: must already be C-contiguous float32 with exactly `shape`.
FloatArray float_output(const py::handle& obj, const char* name, const std::vector<int64_t>& shape);

// Integers of any integer dtype as a C-contiguous int64 array (copied only when needed). TypeError unless obj is
// a numpy array of an integer dtype.
Int64Array int64_input(const py::handle& obj, const std::string& name);
std::optional<Int64Array> optional_int64_input(const py::handle& obj, const std::string& name);
// int64_input with every value checked to lie in [0, limit) (ValueError naming the first one that does not).
Int64Array ids_input(const py::handle& obj, const char* name, int64_t limit, const char* what);

// A float32 array whose last axis is contiguous while the other axes keep their strides, so row-strided views
// (q = qkv[..., :hd] of a fused projection) are read in place. Copied once only when the last axis is strided
// or a stride is negative or not a whole number of floats. TypeError for other dtypes, ValueError unless the
// rank is `rank` (the message shows `expected`). strides are in floats.
struct StridedFloatArray {
  py::array array;  // keeps the data alive
  const float* data;
  std::vector<int64_t> shape, strides;
};
StridedFloatArray strided_float_input(const py::handle& obj, const char* name, int rank, const char* expected);

// True when the memory spans of two arrays (first to last element, following the strides) overlap: an output
// must not alias an input it still reads. Empty arrays overlap nothing.
bool overlaps(const py::array& a, const py::array& b);
// Product of all axes but the last.
int64_t leading_rows(const py::array& a);

// What an op that checks its own arguments receives: data + shape (not given for nullopt).
template <class T>
ArrayView<T> view_of(const py::array_t<T, py::array::c_style>& a) {
  return {a.data(), shape_of(a)};
}
template <class T>
ArrayView<T> view_of(const std::optional<py::array_t<T, py::array::c_style>>& a) {
  return a ? view_of(*a) : ArrayView<T>{};
}

}  // namespace cpuformer::bind
