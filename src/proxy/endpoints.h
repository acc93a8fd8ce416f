#pragma once
// Upstream endpoint selection and passive health (outlier ejection).
//
// An EndpointState is shared by every worker that dials the endpoint (its fields are relaxed
// atomics; races between workers only blur counts by one). It is keyed by upstream and
// "address:port" and outlives snapshots: the main thread hands the same object to every new
// Runtime while the endpoint stays in the snapshot, so its history survives config updates.
//
// Ejection: kFailureThreshold consecutive connect/handshake failures eject the endpoint for
// kBaseEjection, doubling with each ejection in a row, up to kMaxEjection. A success clears the
// consecutive count and the doubling.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace taskmesh::proxy {

using SteadyTime = std::chrono::steady_clock::time_point;

inline constexpr int kFailureThreshold = 3;
inline constexpr std::chrono::milliseconds kBaseEjection{10000};
inline constexpr std::chrono::milliseconds kMaxEjection{300000};
// Endpoints tried for one downstream connection.
inline constexpr size_t kMaxAttempts = 3;

class EndpointState {
 public:
  explicit EndpointState(std::string key) : key_(std::move(key)) {}
  EndpointState(const EndpointState&) = delete;
  EndpointState& operator=(const EndpointState&) = delete;

  const std::string& key() const { return key_; }  // "address:port"

  bool ejected(SteadyTime now) const {
    return now.time_since_epoch().count() < ejectedUntil_.load(std::memory_order_relaxed);
  }
  // Returns true when this failure ejected the endpoint. Failures while ejected (a panic or
  // last-resort attempt) are counted but do not extend the ejection.
  bool recordFailure(SteadyTime now);
  void recordSuccess();

  // The ejection that the next one would last (for tests and /clusters).
  std::chrono::milliseconds nextEjection() const;

  void connectionOpened() { active_.fetch_add(1, std::memory_order_relaxed); }
  void connectionClosed() { active_.fetch_sub(1, std::memory_order_relaxed); }

  int64_t active() const { return active_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  uint64_t ejections() const { return ejections_.load(std::memory_order_relaxed); }
  int consecutiveFailures() const { return consecutive_.load(std::memory_order_relaxed); }
  SteadyTime ejectedUntil() const {
    return SteadyTime(SteadyTime::duration(ejectedUntil_.load(std::memory_order_relaxed)));
  }

 private:
  const std::string key_;
  std::atomic<int64_t> ejectedUntil_{0};  // steady_clock ticks
  std::atomic<int> consecutive_{0};
  std::atomic<int> streak_{0};  // ejections in a row without a success in between
  std::atomic<int64_t> active_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> ejections_{0};
};

// The endpoints one downstream connection tries, in order: up to kMaxAttempts, starting at
// `start` (the round-robin cursor) and wrapping, healthy ones first; ejected ones only after
// every healthy one (so that an upstream whose endpoints are all ejected is still tried rather
// than refused outright).
struct AttemptPlan {
  std::array<size_t, kMaxAttempts> index{};
  size_t count = 0;
};

template <typename IsEjected>  // bool(size_t i)
AttemptPlan planAttempts(size_t n, size_t start, IsEjected&& isEjected) {
  AttemptPlan plan;
  if (n == 0) return plan;
  for (int pass = 0; pass < 2 && plan.count < kMaxAttempts; ++pass) {
    for (size_t k = 0; k < n && plan.count < kMaxAttempts; ++k) {
      size_t i = (start + k) % n;
      if (isEjected(i) == (pass == 1)) plan.index[plan.count++] = i;
    }
  }
  return plan;
}

}  // namespace taskmesh::proxy
