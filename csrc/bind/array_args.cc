// array_args.cc — argument conversion shared by every binding.
#include "bind/array_args.h"

#include <sstream>

namespace cpuformer::bind {

std::vector<int64_t> shape_of(const py::array& a) { return std::vector<int64_t>(a.shape(), a.shape() + a.ndim()); }

std::string shape_str(const py::array& a) { return shape_str(shape_of(a)); }

std::string type_name(const py::handle& obj) {
  py::handle type = py::type::of(obj);
  std::string module = py::str(type.attr("__module__")), name = py::str(type.attr("__qualname__"));
  return module == "builtins" ? name : module + "." + name;
}

// obj as a numpy array of dtype float32 (any layout); TypeError naming `name` otherwise.
static py::array float32_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of dtype float32, got " + type_name(obj));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  // Equivalence, not identity: an unpickled array (multiprocessing, joblib, Ray) has its own float32 dtype object.
  if (!py::detail::npy_api::get().PyArray_EquivTypes_(arr.dtype().ptr(), py::dtype::of<float>().ptr()))
    throw py::type_error(std::string(name) + " must have dtype float32, got " +
                         std::string(py::str(arr.dtype())) + " (convert with .astype(np.float32))");
  return arr;
}

FloatArray float_input(const py::handle& obj, const char* name) {
  py::array arr = float32_array(obj, name);
  return FloatArray::ensure(arr);  // no-op when already C-contiguous, otherwise one copy
}

FloatArray float_input(const py::handle& obj, const char* name, int min_rank, int max_rank, int64_t last_dim,
                       const char* expected) {
  FloatArray arr = float_input(obj, name);
  if (arr.ndim() < min_rank || arr.ndim() > max_rank || (last_dim >= 0 && arr.shape(arr.ndim() - 1) != last_dim))
    throw py::value_error(std::string(name) + " must have shape " + expected + ", got " + shape_str(arr));
  return arr;
}

std::optional<FloatArray> optional_float_input(const py::handle& obj, const std::string& name) {
  if (obj.is_none()) return std::nullopt;
  return float_input(obj, name.c_str());
}

FloatArray float_output(const py::handle& obj, const char* name, const std::vector<int64_t>& shape) {
  py::array arr = float32_array(obj, name);
  if (!(arr.flags() & py::array::c_style) || !arr.writeable())
    throw py::value_error(std::string(name) + " must be a writable C-contiguous array");
  if (shape_of(arr) != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " + shape_str(arr));
  return py::reinterpret_borrow<FloatArray>(arr);
}

Int64Array int64_input(const py::handle& obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name + " must be a numpy.ndarray of integers, got " + type_name(obj));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(name + " must have an integer dtype, got " + std::string(py::str(arr.dtype())));
  return Int64Array::ensure(arr.attr("astype")(py::dtype::of<int64_t>(), py::arg("copy") = false));
}

std::optional<Int64Array> optional_int64_input(const py::handle& obj, const std::string& name) {
  if (obj.is_none()) return std::nullopt;
  return int64_input(obj, name);
}

Int64Array ids_input(const py::handle& obj, const char* name, int64_t limit, const char* what) {
  Int64Array ids = int64_input(obj, name);
  const int64_t* p = ids.data();
  for (py::ssize_t i = 0; i < ids.size(); ++i) {
    if (p[i] < 0 || p[i] >= limit) {
      std::ostringstream s;
      s << name << " contains " << p[i] << " at flat index " << i << ", out of range for " << what
        << " (expected 0 <= id < " << limit << ")";
      throw py::value_error(s.str());
    }
  }
  return ids;
}

StridedFloatArray strided_float_input(const py::handle& obj, const char* name, int rank, const char* expected) {
  py::array arr = float32_array(obj, name);
  if (arr.ndim() != rank)
    throw py::value_error(std::string(name) + " must have shape " + expected + ", got " + shape_str(arr));
  bool in_place = true;
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
    const py::ssize_t stride = arr.strides(i);
    const bool last = i == arr.ndim() - 1;
    if (arr.shape(i) > 1 && (last ? stride != sizeof(float) : stride < 0 || stride % sizeof(float) != 0))
      in_place = false;
  }
  if (!in_place) arr = FloatArray::ensure(arr);
  StridedFloatArray out{arr, static_cast<const float*>(arr.data()), shape_of(arr), {}};
  for (py::ssize_t i = 0; i < arr.ndim(); ++i)
    out.strides.push_back(arr.shape(i) > 1 ? arr.strides(i) / static_cast<py::ssize_t>(sizeof(float)) : 0);
  return out;
}

bool overlaps(const py::array& a, const py::array& b) {
  auto span = [](const py::array& x, uintptr_t* lo, uintptr_t* hi) {
    *lo = *hi = reinterpret_cast<uintptr_t>(x.data());
    for (py::ssize_t i = 0; i < x.ndim(); ++i) {
      const py::ssize_t reach = (x.shape(i) - 1) * x.strides(i);
      (reach < 0 ? *lo : *hi) += reach;
    }
    *hi += static_cast<uintptr_t>(x.itemsize());
  };
  if (a.size() == 0 || b.size() == 0) return false;
  uintptr_t lo_a, hi_a, lo_b, hi_b;
  span(a, &lo_a, &hi_a);
  span(b, &lo_b, &hi_b);
  return lo_a < hi_b && lo_b < hi_a;
}

int64_t leading_rows(const py::array& a) {
  int64_t rows = 1;
  for (py::ssize_t i = 0; i + 1 < a.ndim(); ++i) rows *= a.shape(i);
  return rows;
}

}  // namespace cpuformer::bind
