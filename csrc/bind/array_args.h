// array_args.h — turns Python arguments into checked pointers + shapes. Every message names the argument,
// says what was expected and what came in. Non-contiguous float32 inputs are copied (documented); wrong
// dtypes are a TypeError rather than a silent cast.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cpuformer::bind {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using Int64Array = py::array_t<int64_t, py::array::c_style>;

std::string shape_str(const py::array& a);

// A C-contiguous float32 array for `obj`. TypeError unless obj is a numpy array of dtype float32.
FloatArray float_input(const py::handle& obj, const char* name);
// Same, but also checks rank (min_rank..max_rank) and, when last_dim >= 0, the size of the last axis.
FloatArray float_input(const py::handle& obj, const char* name, int min_rank, int max_rank, int64_t last_dim,
                       const char* expected);
// A writable output array: must already be C-contiguous float32 with exactly `shape`.
FloatArray float_output(const py::handle& obj, const char* name, const std::vector<py::ssize_t>& shape);
// Integer ids of any integer dtype as contiguous int64, every value checked to lie in [0, limit).
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
// True when the memory spans (first to last element, following the strides) of two arrays overlap.
bool spans_overlap(const py::array& a, const py::array& b);

// True when the two arrays' byte ranges overlap (an output must not alias an input it still reads).
bool overlaps(const py::array& a, const py::array& b);
// Product of all axes but the last.
int64_t leading_rows(const py::array& a);

}  // namespace cpuformer::bind
