#pragma once
// Wakes blocking queries when the tables they read change (Consul's watch sets).
//
// Thread: a WatchHub is owned by one thread (the server's HTTP thread); it is not
// thread-safe. Changes produced on the Raft thread are posted to that thread before
// notify() is called.
// Contract: a waiter is woken at most once and is removed when woken; a query that wants
// to keep waiting registers again after re-running. Registering right after running the
// query, with no suspension between, loses no change: notify() for any later apply comes
// after the registration on the owning thread.

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/state_store.h"

namespace taskmesh::store {

struct WatchSpec {
  bool nodes = false;
  bool services = false;
  bool checks = false;
  std::vector<std::string> serviceNames;
  std::vector<std::string> kvKeys;      // exact keys
  std::vector<std::string> kvPrefixes;  // any key below the prefix ("" = the whole KV)
  bool ca = false;
  bool intentions = false;
};

class WatchHub {
 public:
  using Waker = std::function<void()>;
  using WaiterId = uint64_t;

  WaiterId add(const WatchSpec& spec, Waker waker);
  // Removes a waiter that was not woken (its wait timed out or its client went away).
  void remove(WaiterId id);
  // Wakes every waiter whose spec intersects `changes`.
  void notify(const Changes& changes);

  size_t waiting() const { return waiters_.size(); }

 private:
  struct Waiter {
    std::vector<std::string> topics;
    Waker waker;
  };
  void collect(const std::string& topic, std::vector<WaiterId>& out) const;

  WaiterId nextId_ = 1;
  std::unordered_map<WaiterId, Waiter> waiters_;
  std::unordered_map<std::string, std::unordered_set<WaiterId>> byTopic_;
  size_t prefixWaiters_ = 0;  // number of "p:" registrations, to skip prefix walks when zero
};

}  // namespace taskmesh::store
