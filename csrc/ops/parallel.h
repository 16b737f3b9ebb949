// parallel.h — the one parallel loop of the library's task-shaped ops (GEMM, attention, top-k, row-wise ops,
// weight packing): tasks handed out one at a time to a team sized by the threading policy (ops/threading.h).
//
// Why dynamic and timed: a thread that is not running (OpenBLAS's workers still spinning after a numpy call, a
// busy neighbour process) holds up only the task it started; the running threads take over the rest. What the
// leader still waits at the join beyond the stall rule (step_team_stall_after) twice within 100 ms means a
// preempted teammate, and the process runs serial for a while (step_team_note_stall): waiting a scheduler time slice per call made
// 2-thread GPT-2 decode 3x slower than 1 thread next to one busy process.
#pragma once
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "ops/step_team.h"
#include "ops/threading.h"

namespace cpuformer {

// Calls fn(task, thread) once for each task in [0, tasks), on lease.threads() threads (thread in
// [0, lease.threads()) indexes per-thread scratch). Each task must write only its own outputs, so results never
// depend on the thread count or on who ran a task.
template <class Fn>
void run_tasks(const TeamLease& lease, int64_t tasks, Fn&& fn) {
  const int threads = static_cast<int>(std::min<int64_t>(lease.threads(), tasks));
  if (threads <= 1) {
    for (int64_t task = 0; task < tasks; ++task) fn(task, 0);
    return;
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point leader_done = start;
  int64_t leader_tasks = 0;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t task = 0; task < tasks; ++task) {
      fn(task, thread);
      if (thread == 0) ++leader_tasks;
    }
    if (thread == 0) leader_done = Clock::now();
  }
  // At least 1 ms: a preempted thread costs a scheduler time slice (milliseconds), while on a quiet 2-core Xeon
  // ~0.4% of decode GEMMs waited 0.2-1 ms for a thread waking up (going serial on those made decode 13% slower).
  const auto per_task = leader_tasks > 0 ? (leader_done - start) / leader_tasks : Clock::duration::zero();
  if (Clock::now() - leader_done > step_team_stall_after(per_task, std::chrono::milliseconds(1)))
    step_team_note_stall();
}

// The same for work that has no natural task count: [0, items) in chunks of about 1/8 of a thread's share.
template <class Fn>
void run_chunked(const TeamLease& lease, int64_t items, Fn&& fn) {
  const int64_t chunk = std::max<int64_t>(1, items / (8 * static_cast<int64_t>(lease.threads())));
  run_tasks(lease, (items + chunk - 1) / chunk, [&](int64_t task, int) {
    const int64_t end = std::min(items, (task + 1) * chunk);
    for (int64_t i = task * chunk; i < end; ++i) fn(i);
  });
}

}  // namespace cpuformer
