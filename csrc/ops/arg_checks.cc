// arg_checks.cc — shape formatting and the checks ops run on their arguments.
#include "ops/arg_checks.h"

#include <stdexcept>

namespace cpuformer {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

void fail(const std::string& message) { throw std::invalid_argument(message); }

void require(bool ok, const std::string& message) {
  if (!ok) fail(message);
}

void require_shape(const std::vector<int64_t>& shape, const std::string& name, const std::vector<int64_t>& expected) {
  if (shape != expected) fail(name + " must have shape " + shape_str(expected) + ", got " + shape_str(shape));
}

}  // namespace cpuformer
