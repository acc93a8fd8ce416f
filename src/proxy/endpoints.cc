#include "proxy/endpoints.h"

#include <algorithm>

namespace taskmesh::proxy {

std::chrono::milliseconds EndpointState::nextEjection() const {
  int streak = std::min(streak_.load(std::memory_order_relaxed), 16);
  auto d = kBaseEjection * (int64_t{1} << streak);
  return std::min<std::chrono::milliseconds>(d, kMaxEjection);
}

bool EndpointState::recordFailure(SteadyTime now) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (ejected(now)) return false;
  int n = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n != kFailureThreshold) return false;  // exactly one failure crosses the threshold
  auto until = now + nextEjection();
  ejectedUntil_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  streak_.fetch_add(1, std::memory_order_relaxed);
  consecutive_.store(0, std::memory_order_relaxed);
  ejections_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void EndpointState::recordSuccess() {
  // Loads first: the common case writes nothing, so workers do not fight over the cache line.
  if (consecutive_.load(std::memory_order_relaxed) != 0) {
    consecutive_.store(0, std::memory_order_relaxed);
  }
  if (streak_.load(std::memory_order_relaxed) != 0) streak_.store(0, std::memory_order_relaxed);
}

}  // namespace taskmesh::proxy
