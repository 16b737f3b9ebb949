// bind_config.cc — version, ISA, threads: what show_config() reports, plus the per-ISA test hook.
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "cpu/cpu_features.h"
#include "cpu/dispatch.h"
#include "ops/step_team.h"
#include "ops/threading.h"

namespace cpuformer::bind {

void bind_config(py::module_& m) {
#ifdef CPUFORMER_VERSION
  m.attr("__version__") = CPUFORMER_VERSION;
#else
  m.attr("__version__") = "0.0.0+unknown";
#endif
  m.def("get_num_threads", &num_threads, "Threads each op may use (default: OpenMP's, i.e. OMP_NUM_THREADS).");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the threads every following op may use (n >= 1).");
  m.def("_config", [] {
    py::dict d;
    const cpu::CpuFeatures& f = cpu::cpu_features();
    py::list available;
    for (cpu::Isa isa : {cpu::Isa::generic, cpu::Isa::avx2, cpu::Isa::avx512})
      if (static_cast<int>(isa) <= static_cast<int>(cpu::best_supported_isa())) available.append(cpu::isa_name(isa));
    d["isa"] = cpu::isa_name(active_isa());
    d["isa_max_allowed"] = cpu::isa_name(max_allowed_isa());
    d["isa_supported"] = available;
    const char* env = std::getenv("CPUFORMER_ISA");
    d["CPUFORMER_ISA"] = env ? py::object(py::str(env)) : py::object(py::none());
    cpu::Isa ignored;
    d["CPUFORMER_ISA_valid"] = !env || !*env || cpu::parse_isa(env, &ignored);
    d["cpu"] = std::string(f.brand);
    py::list features;
    int count = 0;
    const char* const* names = cpu::cpu_feature_names(&count);
    for (int i = 0; i < count; ++i) features.append(names[i]);
    d["cpu_features"] = features;
    d["openmp"] = openmp_runtime_name();
    d["num_threads"] = num_threads();
    d["gemm_tile"] = std::to_string(kernels_for_active_isa().gemm_mr) + "x" +
                     std::to_string(kernels_for_active_isa().gemm_nr);
    return d;
  });
  m.def(
      "_set_isa",
      [](const std::string& name) {
        cpu::Isa isa;
        if (!cpu::parse_isa(name.c_str(), &isa))
          throw py::value_error("isa must be 'generic', 'avx2' or 'avx512'; got '" + name + "'");
        set_active_isa(isa);
      },
      py::arg("name"),
      "Test hook: switch the kernels used from now on (never above the CPU or CPUFORMER_ISA). Objects already "
      "packed keep the ISA they were packed for.");
  m.def("_isa", [] { return std::string(cpu::isa_name(active_isa())); });
  m.def("_recently_serial", &step_team_recently_serial,
        "Whether parallel ops run serial right now because a recent one saw its threads preempted (tests).");
}

}  // namespace cpuformer::bind
