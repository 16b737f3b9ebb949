// bind_config.cc — version, ISA, threads: what show_config() reports, plus the per-ISA test hook.
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "cpu/cpu_features.h"
#include "cpu/dispatch.h"
#include "ops/gemm.h"
#include "ops/step_team.h"
#include "ops/threading.h"

namespace cpuformer::bind {

void bind_config(py::module_& m) {
#ifdef CPUFORMER_VERSION
  m.attr("__version__") = CPUFORMER_VERSION;
#else
  m.attr("__version__") = "0.0.0+unknown";
#endif
  m.def("get_num_threads", &num_threads,
        "Threads each op called from this thread may use: the num_threads() block around it if any, else the "
        "process setting (default: OpenMP's, i.e. OMP_NUM_THREADS). 1 in a child forked after threads ran.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Set the threads every following op may use, process-wide (1 <= n <= 4 per CPU, at least 64).");
  m.def("_process_num_threads", &process_num_threads, "The process-wide setting, whatever this thread's override.");
  m.def("_set_thread_num_threads", &set_thread_num_threads, py::arg("n"),
        "This thread's override (cpuformer.num_threads(n) uses it); 0 removes it.");
  m.def("_thread_num_threads", &thread_num_threads, "This thread's override, 0 if none.");
  m.def("_max_num_threads", &max_num_threads, "The most threads set_num_threads accepts.");
  m.def("_forked_serial", &forked_serial,
        "Whether this process is a fork of one whose OpenMP threads had started (then every op runs serial).");
  m.def("_threads_in_use", &threads_in_use, "Threads leased by running calls right now (tests).");
  m.def("_last_team_size", &last_team_size, "Threads the last parallel call from this thread ran on (tests).");
  // Test hook: holds part of the thread budget as a concurrent call would, until release().
  struct HeldThreads {
    std::unique_ptr<TeamLease> lease;
  };
  py::class_<HeldThreads>(m, "_HeldThreads")
      .def(py::init([](int wanted) { return HeldThreads{std::make_unique<TeamLease>(wanted)}; }), py::arg("wanted"))
      .def_property_readonly("threads", [](const HeldThreads& h) { return h.lease ? h.lease->threads() : 0; })
      .def("release", [](HeldThreads& h) { h.lease.reset(); });
  m.def("_config", [] {
    py::dict d;
    const cpu::CpuFeatures& f = cpu::cpu_features();
    py::list available;
    for (cpu::Isa isa : cpu::kAllIsas)
      if (cpu::isa_supported(isa)) available.append(cpu::isa_name(isa));
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
    d["max_num_threads"] = max_num_threads();
    d["forked_serial"] = forked_serial();
    const kernels::KernelTable& active = kernels_for_active_isa();
    // The VNNI levels and avx512_bf16 (which starts from avx512_vnni's table) run int8 compute on vpdpbusd.
    d["int8_compute"] = active.u8s8_nibbles ? "vpmaddubsw nibbles (no VNNI)"
                        : active.u8s8_by_default ? "vpdpbusd (VNNI)"
                                                 : "int32 loops (generic)";
    d["int8_compute_min_rows"] = gemm_u8s8_min_rows();
    d["int8_compute_mode"] = int8_compute_mode() == Int8ComputeMode::on    ? "on"
                             : int8_compute_mode() == Int8ComputeMode::off ? "off"
                                                                           : "auto";
    d["int8_compute_active"] = int8_compute_enabled(active);
    // bf16 weights: bf16 compute (A rounded to bf16 too) from bf16_compute_min_rows rows on where active, else
    // weight-only (fp32 activations, bf16 B widened in registers).
    d["bf16_compute"] = active.bf16_compute_name ? active.bf16_compute_name : "none (weight-only; needs avx512_bf16)";
    d["bf16_compute_min_rows"] = gemm_bf16_min_rows();
    d["bf16_compute_mode"] = bf16_compute_mode() == BF16ComputeMode::on    ? "on"
                             : bf16_compute_mode() == BF16ComputeMode::off ? "off"
                                                                           : "auto";
    d["bf16_compute_active"] = bf16_compute_enabled(active);
    d["gemm_tile"] = std::to_string(kernels_for_active_isa().gemm_mr) + "x" +
                     std::to_string(kernels_for_active_isa().gemm_nr);
    return d;
  });
  m.def(
      "_set_isa",
      [](const std::string& name) {
        cpu::Isa isa;
        if (!cpu::parse_isa(name.c_str(), &isa))
          throw py::value_error(
              "isa must be 'generic', 'avx2', 'avx2_vnni', 'avx512', 'avx512_vnni' or 'avx512_bf16'; got '" + name + "'");
        set_active_isa(isa);
      },
      py::arg("name"),
      "Test hook: switch the kernels used from now on (never above the CPU or CPUFORMER_ISA). Objects already "
      "packed keep the ISA they were packed for.");
  m.def(
      "_set_int8_compute",
      [](const std::string& mode) {
        if (mode != "auto" && mode != "on" && mode != "off")
          throw py::value_error("int8 compute mode must be 'auto', 'on' or 'off'; got '" + mode + "'");
        set_int8_compute_mode(mode == "on" ? Int8ComputeMode::on : mode == "off" ? Int8ComputeMode::off
                                                                                  : Int8ComputeMode::automatic);
      },
      py::arg("mode"), "Test hook (and CPUFORMER_INT8_COMPUTE): when int8 weights run int8 compute.");
  m.def(
      "_set_bf16_compute",
      [](const std::string& mode) {
        if (mode != "auto" && mode != "on" && mode != "off")
          throw py::value_error("bf16 compute mode must be 'auto', 'on' or 'off'; got '" + mode + "'");
        set_bf16_compute_mode(mode == "on" ? BF16ComputeMode::on : mode == "off" ? BF16ComputeMode::off
                                                                                  : BF16ComputeMode::automatic);
      },
      py::arg("mode"),
      "Test hook (and CPUFORMER_BF16_COMPUTE): when bf16 weights run bf16 compute (only on kernels that have it: "
      "avx512_bf16).");
  m.def("_isa", [] { return std::string(cpu::isa_name(active_isa())); });
  m.def("_set_serial_memory", &step_team_set_serial_memory, py::arg("enabled"),
        "Test hook: off, no call starts serial after a stall (team sizes become predictable on a busy machine).");
  m.def("_recently_serial", &step_team_recently_serial,
        "Whether parallel ops run serial right now because a recent one saw its threads preempted (tests).");
}

}  // namespace cpuformer::bind
