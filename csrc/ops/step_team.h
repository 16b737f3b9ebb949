// step_team.h — the per-step barrier of a recurrent loop run by one OpenMP team: every step runs the same work
// items, each thread first runs the items it owns, then waits for the step to finish, stealing items nobody has
// claimed yet. On an oversubscribed machine (teammates preempted inside an item) the team goes serial.
//
// Use, inside one `#pragma omp parallel` region (every thread calls run() for every step, in order):
//   StepStage stage(items);  StepTeam team;            // shared, built before the region
//   for (step = 0; step < n; ++step)
//     if (!stage.run(step, own_begin, own_end, tid == 0, team, item_fn)) break;   // false: this thread may leave
//   after the region, team.serial() says whether it went serial (see step_team_note_serial()).
// Several stages (e.g. LSTM cells, then projections) may share one team; each runs its steps in order.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace cpuformer {

// Non-owning reference to a callable void(int64_t item), valid while the callable lives (a lambda passed straight
// to run() lives until run() returns). One indirect call per item; no allocation.
class StepItemFn {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, StepItemFn>>>
  StepItemFn(F&& f)  // NOLINT(google-explicit-constructor): lambdas convert implicitly
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, int64_t item) { (*static_cast<std::remove_reference_t<F>*>(o))(item); }) {}
  void operator()(int64_t item) const { call_(object_, item); }

 private:
  void* object_;
  void (*call_)(void*, int64_t);
};

// Whether the threads of one step loop still run in parallel. A wait far longer than a step should take (a
// teammate preempted inside an item) is a stall; after kStallsBeforeSerial of them the team turns serial: the
// leader (thread 0) runs every item and the others leave, which beats waiting a time slice per step.
class StepTeam {
 public:
  static constexpr int kStallsBeforeSerial = 2;
  bool serial() const { return serial_.load(std::memory_order_relaxed); }
  void count_stall();

 private:
  std::atomic<bool> serial_{false};
  std::atomic<int> stalls_{0};
};

// The work items [0, items) of one stage, run once per step by a team of threads. Items of step s start only after
// every item of step s - 1 finished (the caller's loop guarantees it by calling run() in step order).
class StepStage {
 public:
  explicit StepStage(int64_t items);

  // Runs step `step`: the caller's own items [own_begin, own_end) (the same every step, so their data stays in
  // this thread's cache), then helps until every item of the step is done. A wait counts as a stall past 200 us
  // plus 8x this thread's time per item (CPUFORMER_LSTM_STALL_US fixes the threshold; tests use 0). Returns
  // false when the team is serial and the caller is not the leader: it must stop calling run().
  bool run(int64_t step, int64_t own_begin, int64_t own_end, bool leader, StepTeam& team, StepItemFn fn);

 private:
  bool try_run(int64_t item, int64_t step, StepItemFn fn);

  int64_t items_;
  std::vector<std::atomic<int64_t>> claimed_;  // last step each item was claimed for
  alignas(64) std::atomic<int64_t> done_{0};   // items finished, over all steps
};

// How long a thread that finished its own items may wait for its team before the wait counts as a stall (a
// teammate preempted): 200 us plus 8x the waiting thread's time per item, at least `at_least`
// (CPUFORMER_LSTM_STALL_US overrides both).
std::chrono::nanoseconds step_team_stall_after(std::chrono::nanoseconds own_time_per_item,
                                               std::chrono::nanoseconds at_least = std::chrono::nanoseconds(0));

// Process-wide memory of preempted teams: after a step loop went serial, loops that start within the next 250 ms
// start serial too, so a loaded machine costs a few time slices per call, and a quiet one gets its threads back.
bool step_team_recently_serial();
// Call once after a loop whose team went serial (unless it started serial because of step_team_recently_serial()).
void step_team_note_serial();
// Call after a parallel op whose leader waited past the stall rule: the second such stall within 100 ms calls
// step_team_note_serial(), a lone one (a page fault, an interrupt) is forgotten.
void step_team_note_stall();
// Test hook: off, nothing is remembered and no call starts serial (tests that check team sizes on a busy machine).
void step_team_set_serial_memory(bool enabled);

}  // namespace cpuformer
