#pragma once
// Jittered exponential backoff for the blocking command-line tools (discover-servers,
// mesh-init): each wait is drawn from [d/2, d], d doubling up to a cap.
//
// Thread: one Backoff per retry loop; wait() sleeps the calling thread.

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

namespace taskmesh {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  using milliseconds = std::chrono::milliseconds;

  Backoff(milliseconds initial, milliseconds max)
      : next_(std::max(initial, milliseconds(1))),
        max_(std::max(max, next_)),
        rng_(std::random_device{}()) {}

  // Sleeps for the next delay. When that would leave too little time for another attempt
  // (under kMinAttempt), sleeps until `deadline` instead and returns false: the last attempt is
  // never a truncated one, and giving up happens at the deadline, not before.
  bool wait(Clock::time_point deadline) {
    static constexpr milliseconds kMinAttempt{10};
    std::uniform_int_distribution<long> pick(next_.count() / 2, next_.count());
    milliseconds delay(pick(rng_));
    next_ = std::min(next_ * 2, max_);
    auto wake = Clock::now() + delay;
    if (wake + kMinAttempt >= deadline) {
      std::this_thread::sleep_until(deadline);
      return false;
    }
    std::this_thread::sleep_until(wake);
    return true;
  }

 private:
  milliseconds next_;
  milliseconds max_;
  std::minstd_rand rng_;
};

}  // namespace taskmesh
