#pragma once
// The agent's own services and checks: the truth for its node (DESIGN.md §3, anti-entropy).
// The agent API and the check runners change it; the anti-entropy syncer copies it to the
// servers and uses the in-sync marks kept here to know what to send.
//
// Thread: the agent's io_context thread only (no locks). Listeners run synchronously inside
// the changing call and must not change the LocalState re-entrantly, except by posting.
// Invariants: every check's serviceId is "" or a registered service; a removed service or
// check is remembered in deletedServices/deletedChecks until the syncer has deregistered it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/definitions.h"
#include "base/result.h"
#include "store/types.h"

namespace taskmesh::agent {

using Clock = std::chrono::steady_clock;

struct LocalService {
  store::Service service;
  bool inSync = false;
};

struct LocalCheck {
  CheckDefinition definition;
  store::Check check;  // the catalog row as it should be on the servers
  bool inSync = false;
  std::optional<Clock::time_point> criticalSince;  // for DeregisterCriticalServiceAfter
};

class LocalState {
 public:
  struct Listener {
    std::function<void()> syncNeeded;                        // something is out of sync
    std::function<void(const std::string&)> checkChanged;    // status changed (or removed)
    std::function<void(const std::string&)> serviceChanged;  // added, changed or removed
    std::function<void(const std::string&)> checkAdded;      // a runner should start
    std::function<void(const std::string&)> checkRemoved;    // a runner should stop
  };

  explicit LocalState(std::string node) : node_(std::move(node)) {}
  void setListener(Listener l) { listener_ = std::move(l); }
  const std::string& node() const { return node_; }

  // Adds or replaces a service with its checks. Checks that keep their ID keep their status
  // and output (as Consul does); with replaceExistingChecks, the service's other checks go.
  void addService(const ServiceDefinition& def, bool replaceExistingChecks);
  // Removes a service and its checks (both recorded as deleted). False when there was no such
  // service.
  bool removeService(const std::string& id);
  // Adds or replaces a check. kNotFound when it names an unknown service.
  Result<void> addCheck(const CheckDefinition& def);
  bool removeCheck(const std::string& id);

  // Sets a check's status and output. Status changes are synced at once; output-only changes
  // wait for the next sync (Consul's check_update_interval idea: no Raft write per output).
  // kNotFound for an unknown check.
  Result<void> updateCheck(const std::string& id, const std::string& status,
                           const std::string& output);

  const std::map<std::string, LocalService>& services() const { return services_; }
  const std::map<std::string, LocalCheck>& checks() const { return checks_; }
  const LocalService* service(const std::string& id) const;
  const LocalCheck* check(const std::string& id) const;
  // The checks of one service (not node-level ones).
  std::vector<const LocalCheck*> checksOf(const std::string& serviceId) const;
  // Worst status of the service's checks and the node-level checks; "passing" if none.
  std::string aggregateStatus(const std::string& serviceId) const;

  // Anti-entropy bookkeeping (used by the syncer).
  std::set<std::string>& deletedServices() { return deletedServices_; }
  std::set<std::string>& deletedChecks() { return deletedChecks_; }
  void markServiceInSync(const std::string& id);
  void markCheckInSync(const std::string& id);
  void markServiceOutOfSync(const std::string& id);
  void markCheckOutOfSync(const std::string& id);
  void markAllOutOfSync();
  bool allInSync() const;

  // Bumped on every service or check definition change (not on status changes).
  uint64_t version() const { return version_; }

 private:
  store::Check rowFor(const CheckDefinition& def, const store::Check* previous) const;
  void changed();

  std::string node_;
  Listener listener_;
  std::map<std::string, LocalService> services_;
  std::map<std::string, LocalCheck> checks_;
  std::set<std::string> deletedServices_;
  std::set<std::string> deletedChecks_;
  uint64_t version_ = 0;
};

// Worst of two statuses: passing < warning < critical.
std::string worseStatus(const std::string& a, const std::string& b);

// Consul's consecutive-result thresholds (SuccessBeforePassing, FailuresBeforeWarning,
// FailuresBeforeCritical) between a check's probe results and its reported status. A warning
// result counts as a success, as in Consul's StatusHandler. The counters start at their
// thresholds, as in Consul's NewStatusHandler: the first result is reported at once.
class Thresholds {
 public:
  explicit Thresholds(const CheckDefinition& def)
      : successBeforePassing_(def.successBeforePassing),
        failuresBeforeWarning_(def.failuresBeforeWarning),
        failuresBeforeCritical_(def.failuresBeforeCritical),
        successes_(def.successBeforePassing),
        failures_(def.failuresBeforeCritical) {}
  // The status to report for a probe result, or nullopt to keep the current one.
  std::optional<std::string> record(const std::string& result);

 private:
  int successBeforePassing_;
  int failuresBeforeWarning_;
  int failuresBeforeCritical_;
  int successes_;
  int failures_;
};

}  // namespace taskmesh::agent
