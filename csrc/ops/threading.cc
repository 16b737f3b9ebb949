// threading.cc — process and per-thread thread counts, the budget shared by concurrent calls, fork handling.
#include "ops/threading.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "ops/step_team.h"

namespace cpuformer {
namespace {

int hardware_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

std::atomic<int>& process_slot() {
  static std::atomic<int> slot{std::clamp(omp_get_max_threads(), 1, max_num_threads())};
  return slot;
}

thread_local int t_override = 0;
thread_local int t_last_team = 0;

std::atomic<int> g_in_use{0};
// Set once a team of more than one thread started; a fork after that leaves the child without libgomp's workers.
std::atomic<bool> g_team_started{false};
std::atomic<bool> g_forked_serial{false};

void after_fork_in_child() {
  if (g_team_started.load(std::memory_order_relaxed)) g_forked_serial.store(true, std::memory_order_relaxed);
  g_in_use.store(0, std::memory_order_relaxed);  // leases of threads that did not survive the fork
}

const bool g_atfork_registered = [] { return pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0; }();

void check_count(const char* what, int n) {
  if (n < 1 || n > max_num_threads())
    throw std::invalid_argument(std::string(what) + ": n must be between 1 and " + std::to_string(max_num_threads()) +
                                " (4 per CPU, this machine has " + std::to_string(hardware_threads()) + "); got " +
                                std::to_string(n));
}

}  // namespace

int max_num_threads() { return std::max(64, 4 * hardware_threads()); }

int process_num_threads() { return process_slot().load(std::memory_order_relaxed); }

int num_threads() {
  (void)g_atfork_registered;
  if (g_forked_serial.load(std::memory_order_relaxed)) return 1;
  return t_override > 0 ? t_override : process_num_threads();
}

void set_num_threads(int n) {
  check_count("set_num_threads", n);
  process_slot().store(n, std::memory_order_relaxed);
}

void set_thread_num_threads(int n) {
  if (n != 0) check_count("num_threads", n);
  t_override = n;
}

int thread_num_threads() { return t_override; }

bool forked_serial() { return g_forked_serial.load(std::memory_order_relaxed); }

std::string openmp_runtime_name() {
#if defined(__clang__)
  return "OpenMP " + std::to_string(_OPENMP) + " (libomp)";
#elif defined(__GNUC__)
  return "OpenMP " + std::to_string(_OPENMP) + " (libgomp)";
#else
  return "OpenMP " + std::to_string(_OPENMP);
#endif
}

int threads_for_work(double flops) {
  constexpr double kFlopsPerThread = 2.0e5;  // below this a fork/join costs more than it saves
  const int wanted = static_cast<int>(flops / kFlopsPerThread);
  return std::clamp(wanted, 1, num_threads());
}

TeamLease::TeamLease(int wanted) : threads_(1) {
  wanted = step_team_recently_serial() ? 1 : std::clamp(wanted, 1, num_threads());
  // Take min(wanted, what is left) in one step so two callers never both see the same free threads.
  int used = g_in_use.load(std::memory_order_relaxed);
  do {
    threads_ = std::clamp(num_threads() - used, 1, wanted);
  } while (!g_in_use.compare_exchange_weak(used, used + threads_, std::memory_order_relaxed));
  if (threads_ > 1) g_team_started.store(true, std::memory_order_relaxed);
  t_last_team = threads_;
}

TeamLease::~TeamLease() { g_in_use.fetch_sub(threads_, std::memory_order_relaxed); }

int threads_in_use() { return g_in_use.load(std::memory_order_relaxed); }

int last_team_size() { return t_last_team; }

}  // namespace cpuformer
