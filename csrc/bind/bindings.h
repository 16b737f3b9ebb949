// bindings.h — one registration function per binding file, called from module.cc.
#pragma once
#include <pybind11/pybind11.h>

namespace cpuformer::bind {
void bind_config(pybind11::module_& m);
void bind_linear(pybind11::module_& m);
void bind_elementwise(pybind11::module_& m);
void bind_embedding(pybind11::module_& m);
void bind_attention(pybind11::module_& m);
void bind_recurrent(pybind11::module_& m);
void bind_decoder_ops(pybind11::module_& m);
void bind_array_pool(pybind11::module_& m);
}  // namespace cpuformer::bind
