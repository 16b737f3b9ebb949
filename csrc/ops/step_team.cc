// step_team.cc — StepStage's spin-and-steal wait, the stall count that turns a team serial, and the process-wide
// "recently serial" hold. See step_team.h for how a loop uses them.
#include "ops/step_team.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace cpuformer {
namespace {

using Clock = std::chrono::steady_clock;

// A wait counts as a stall past this plus 8x the waiting thread's own time per item (big items legitimately
// make teammates wait longer).
constexpr std::chrono::microseconds kStall{200};
constexpr int64_t kSpinsBeforeSteal = 2000;
constexpr int64_t kSpinsBeforeYield = 20000;
constexpr std::chrono::milliseconds kSerialHold{250};
// A parallel op's stall turns the process serial only when another came within this window: a lone stall is
// an accident (a first-touch page fault of a fresh output took 3-5 ms on a Firecracker VM and made MiniLM b32
// s128 25% slower when each one cost a 250 ms hold), a preempted teammate stalls every call.
constexpr std::chrono::milliseconds kRepeatedStall{100};

// CPUFORMER_LSTM_STALL_US fixes the stall threshold (tests set 0 to drive the serial fallback); -1 when unset.
std::chrono::microseconds stall_override() {
  static const std::chrono::microseconds value = [] {
    const char* env = std::getenv("CPUFORMER_LSTM_STALL_US");
    return std::chrono::microseconds(env && *env ? std::atoll(env) : -1);
  }();
  return value;
}

// Until when (steady clock, ns) new loops start serial because a recent one saw preempted threads.
std::atomic<int64_t> g_serial_until_ns{0};
std::atomic<bool> g_serial_memory{true};
std::atomic<int64_t> g_last_stall_ns{INT64_MIN / 2};

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

}  // namespace

void StepTeam::count_stall() {
  if (stalls_.fetch_add(1, std::memory_order_relaxed) + 1 >= kStallsBeforeSerial)
    serial_.store(true, std::memory_order_relaxed);
}

StepStage::StepStage(int64_t items) : items_(items), claimed_(static_cast<size_t>(items)) {
  for (auto& c : claimed_) c.store(-1, std::memory_order_relaxed);
}

bool StepStage::try_run(int64_t item, int64_t step, StepItemFn fn) {
  int64_t expected = step - 1;  // every item of step - 1 is done, so each item reads step - 1 until claimed
  if (claimed_[item].load(std::memory_order_relaxed) != expected ||
      !claimed_[item].compare_exchange_strong(expected, step, std::memory_order_acq_rel))
    return false;
  fn(item);
  done_.fetch_add(1, std::memory_order_release);
  return true;
}

bool StepStage::run(int64_t step, int64_t own_begin, int64_t own_end, bool leader, StepTeam& team, StepItemFn fn) {
  if (team.serial() && !leader) return false;
  const auto own_start = Clock::now();
  int64_t ran = 0;
  for (int64_t i = own_begin; i < own_end; ++i) ran += try_run(i, step, fn);
  const int64_t target = (step + 1) * items_;
  auto wait_start = Clock::now();
  const auto stall_after = step_team_stall_after(ran > 0 ? (wait_start - own_start) / ran : Clock::duration::zero());
  bool stalled = false;
  for (int64_t spins = 0; done_.load(std::memory_order_acquire) < target; ++spins) {
    if (spins % 1024 == 0 && !stalled && Clock::now() - wait_start > stall_after) {
      stalled = true;
      team.count_stall();
    }
    if (spins < kSpinsBeforeSteal && !team.serial()) continue;
    bool stole = false;
    for (int64_t j = 0; j < items_ && !stole; ++j) stole = try_run((own_end + j) % items_, step, fn);
    if (stole) {
      wait_start = Clock::now();
      continue;
    }
    if (spins > kSpinsBeforeYield) std::this_thread::yield();
  }
  return true;
}

std::chrono::nanoseconds step_team_stall_after(std::chrono::nanoseconds own_time_per_item,
                                               std::chrono::nanoseconds at_least) {
  if (stall_override().count() >= 0) return stall_override();
  return std::max<std::chrono::nanoseconds>(kStall + 8 * own_time_per_item, at_least);
}

bool step_team_recently_serial() {
  return g_serial_memory.load(std::memory_order_relaxed) &&
         steady_now_ns() < g_serial_until_ns.load(std::memory_order_relaxed);
}

void step_team_set_serial_memory(bool enabled) {
  g_serial_memory.store(enabled, std::memory_order_relaxed);
  g_serial_until_ns.store(0, std::memory_order_relaxed);
  g_last_stall_ns.store(INT64_MIN / 2, std::memory_order_relaxed);
}

void step_team_note_stall() {
  if (!g_serial_memory.load(std::memory_order_relaxed)) return;
  const int64_t now = steady_now_ns();
  const int64_t previous = g_last_stall_ns.exchange(now, std::memory_order_relaxed);
  if (now - previous < std::chrono::nanoseconds(kRepeatedStall).count()) step_team_note_serial();
}

void step_team_note_serial() {
  if (!g_serial_memory.load(std::memory_order_relaxed)) return;
  g_serial_until_ns.store(steady_now_ns() + std::chrono::nanoseconds(kSerialHold).count(),
                          std::memory_order_relaxed);
}

}  // namespace cpuformer
