// arg_checks.h — what an op receives from the bind layer for checking (ArrayView: data + shape) and the checks
// themselves. Messages name the argument, say what was expected and what came in; they reach Python as
// ValueError (std::invalid_argument). The bind layer only converts (dtype, contiguity); ops check shapes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cpuformer {

// A C-contiguous array: `data` null means not given (None); a given array never has null data.
template <class T>
struct ArrayView {
  const T* data = nullptr;
  std::vector<int64_t> shape;
  bool given() const { return data != nullptr; }
};
using FloatView = ArrayView<float>;
using Int64View = ArrayView<int64_t>;

// "(2, 3)", "(3,)", "()" — numpy's spelling, used by every shape message.
std::string shape_str(const std::vector<int64_t>& shape);

// Throws std::invalid_argument(message) unless ok. Build expensive messages only on failure (if (!ok) fail(...)).
void require(bool ok, const std::string& message);
[[noreturn]] void fail(const std::string& message);

// "<name> must have shape <expected>, got <actual>" unless shape == expected.
void require_shape(const std::vector<int64_t>& shape, const std::string& name, const std::vector<int64_t>& expected);

}  // namespace cpuformer
