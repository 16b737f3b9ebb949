// threading.h — the one threading policy every parallel op follows: how many threads a call may use (process
// setting, per-thread override, a budget shared by concurrent callers, work thresholds), and what happens after
// fork(). The parallel loop itself is in ops/parallel.h (tasks) and ops/step_team.h (recurrent step loops).
#pragma once
#include <string>

namespace cpuformer {

// Most threads set_num_threads() accepts: libgomp crashes or exits the process on absurd counts (100000
// segfaulted, 40000 exited), and more than 4 threads per CPU only adds waiting. At least 64.
int max_num_threads();

// Threads the calling thread's ops may use: its own override (set_thread_num_threads) if any, else the process
// setting (default: OpenMP's, which honours OMP_NUM_THREADS, capped at max_num_threads()). Always 1 in a forked
// child of a process that had started threads (see forked_serial()).
int num_threads();
// The process setting; n in [1, max_num_threads()], else std::invalid_argument.
void set_num_threads(int n);
int process_num_threads();
// The calling thread's override (cpuformer.num_threads(n) in Python); 0 removes it. Same bounds as above.
void set_thread_num_threads(int n);
int thread_num_threads();

// True in a process forked from one whose OpenMP team had started: libgomp's worker threads did not survive the
// fork and its next team would wait for them forever, so every op in the child runs serial.
bool forked_serial();
std::string openmp_runtime_name();

// Threads worth using for `work` flops: a parallel region costs a few microseconds, so tiny ops stay serial.
// Never more than num_threads(). Ops split their work by this number, never by the team they get (TeamLease),
// so a result depends only on the settings, not on what ran beside it.
int threads_for_work(double flops);

// A parallel call's share of the process's threads. Concurrent callers (several Python threads in one model)
// share num_threads() between them: a call gets what is left, at least 1 (its own thread), so 8 callers of
// 2-thread ops on 2 cores run 8 threads, not 16 that wait for each other. 1 while a recent team stalled
// (step_team_recently_serial). Held for the length of one call.
class TeamLease {
 public:
  explicit TeamLease(int wanted);
  ~TeamLease();
  TeamLease(const TeamLease&) = delete;
  TeamLease& operator=(const TeamLease&) = delete;
  int threads() const { return threads_; }

 private:
  int threads_;
};

// Threads currently leased by running calls, and the team size of the calling thread's last lease (tests).
int threads_in_use();
int last_team_size();

}  // namespace cpuformer
