#include "agent/local_state.h"

#include "base/duration.h"

namespace taskmesh::agent {
namespace {

int rank(const std::string& status) {
  if (status == store::kPassing) return 0;
  if (status == store::kWarning) return 1;
  return 2;
}

}  // namespace

std::string worseStatus(const std::string& a, const std::string& b) {
  return rank(a) >= rank(b) ? a : b;
}

std::optional<std::string> Thresholds::record(const std::string& result) {
  if (result == store::kPassing || result == store::kWarning) {
    failures_ = 0;
    ++successes_;
    if (successes_ >= successBeforePassing_) return result;
    return std::nullopt;
  }
  successes_ = 0;
  ++failures_;
  if (failures_ >= failuresBeforeCritical_) return std::string(store::kCritical);
  if (failures_ >= failuresBeforeWarning_) return std::string(store::kWarning);
  return std::nullopt;
}

void LocalState::changed() {
  ++version_;
  if (listener_.syncNeeded) listener_.syncNeeded();
}

store::Check LocalState::rowFor(const CheckDefinition& def, const store::Check* previous) const {
  store::Check c;
  c.node = node_;
  c.checkId = def.id;
  c.name = def.name;
  c.notes = def.notes;
  c.serviceId = def.serviceId;
  if (auto it = services_.find(def.serviceId); it != services_.end())
    c.serviceName = it->second.service.service;
  c.type = kindName(def.kind);
  c.interval = def.interval.count() > 0 ? formatDuration(def.interval) : "";
  c.timeout = def.kind == CheckKind::kTtl || def.kind == CheckKind::kAlias
                  ? ""
                  : formatDuration(def.timeout);
  c.definition = def.definitionJson();
  if (previous != nullptr) {
    c.status = previous->status;
    c.output = previous->output;
  } else {
    c.status = def.initialStatus;
  }
  return c;
}

void LocalState::addService(const ServiceDefinition& def, bool replaceExistingChecks) {
  const std::string& id = def.service.id;
  auto& entry = services_[id];
  entry.service = def.service;
  entry.inSync = false;
  deletedServices_.erase(id);
  std::set<std::string> keep;
  for (const auto& c : def.checks) {
    keep.insert(c.id);
    (void)addCheck(c);  // the service exists now, so this cannot fail
  }
  if (replaceExistingChecks) {
    std::vector<std::string> drop;
    for (const auto& [cid, c] : checks_) {
      if (c.definition.serviceId == id && !keep.contains(cid)) drop.push_back(cid);
    }
    for (const auto& cid : drop) removeCheck(cid);
  }
  // A renamed service renames its checks' ServiceName.
  for (auto& [cid, c] : checks_) {
    if (c.definition.serviceId == id && c.check.serviceName != def.service.service) {
      c.check.serviceName = def.service.service;
      c.inSync = false;
    }
  }
  if (listener_.serviceChanged) listener_.serviceChanged(id);
  changed();
}

bool LocalState::removeService(const std::string& id) {
  auto it = services_.find(id);
  if (it == services_.end()) return false;
  std::vector<std::string> drop;
  for (const auto& [cid, c] : checks_) {
    if (c.definition.serviceId == id) drop.push_back(cid);
  }
  for (const auto& cid : drop) {
    checks_.erase(cid);
    // Deregistering the service on the servers removes its checks too, but if the service is
    // registered again before the next sync, only these records remove its old checks.
    deletedChecks_.insert(cid);
    if (listener_.checkRemoved) listener_.checkRemoved(cid);
  }
  services_.erase(it);
  deletedServices_.insert(id);
  if (listener_.serviceChanged) listener_.serviceChanged(id);
  changed();
  return true;
}

Result<void> LocalState::addCheck(const CheckDefinition& def) {
  if (!def.serviceId.empty() && !services_.contains(def.serviceId)) {
    return makeError(ErrorCode::kNotFound, "ServiceID \"" + def.serviceId + "\" does not exist");
  }
  auto existing = checks_.find(def.id);
  const store::Check* previous = existing == checks_.end() ? nullptr : &existing->second.check;
  store::Check row = rowFor(def, previous);
  bool fresh = existing == checks_.end();
  if (fresh) {
    LocalCheck lc;
    lc.definition = def;
    lc.check = std::move(row);
    existing = checks_.emplace(def.id, std::move(lc)).first;
  } else {
    if (listener_.checkRemoved) listener_.checkRemoved(def.id);
    existing->second.definition = def;
    existing->second.check = std::move(row);
  }
  existing->second.inSync = false;
  if (existing->second.check.status == store::kCritical) {
    if (!existing->second.criticalSince) existing->second.criticalSince = Clock::now();
  } else {
    existing->second.criticalSince.reset();
  }
  deletedChecks_.erase(def.id);
  if (listener_.checkAdded) listener_.checkAdded(def.id);
  if (listener_.checkChanged) listener_.checkChanged(def.id);
  changed();
  return {};
}

bool LocalState::removeCheck(const std::string& id) {
  auto it = checks_.find(id);
  if (it == checks_.end()) return false;
  checks_.erase(it);
  deletedChecks_.insert(id);
  if (listener_.checkRemoved) listener_.checkRemoved(id);
  if (listener_.checkChanged) listener_.checkChanged(id);
  changed();
  return true;
}

Result<void> LocalState::updateCheck(const std::string& id, const std::string& status,
                                     const std::string& output) {
  auto it = checks_.find(id);
  if (it == checks_.end())
    return makeError(ErrorCode::kNotFound, "CheckID \"" + id + "\" does not have associated TTL");
  LocalCheck& c = it->second;
  bool statusChanged = c.check.status != status;
  if (!statusChanged && c.check.output == output) return {};
  c.check.output = output;
  if (!statusChanged) {
    c.inSync = false;  // sent with the next sync, not on its own
    return {};
  }
  c.check.status = status;
  c.inSync = false;
  if (status == store::kCritical) {
    c.criticalSince = Clock::now();
  } else {
    c.criticalSince.reset();
  }
  if (listener_.checkChanged) listener_.checkChanged(id);
  if (listener_.syncNeeded) listener_.syncNeeded();
  return {};
}

const LocalService* LocalState::service(const std::string& id) const {
  auto it = services_.find(id);
  return it == services_.end() ? nullptr : &it->second;
}

const LocalCheck* LocalState::check(const std::string& id) const {
  auto it = checks_.find(id);
  return it == checks_.end() ? nullptr : &it->second;
}

std::vector<const LocalCheck*> LocalState::checksOf(const std::string& serviceId) const {
  std::vector<const LocalCheck*> out;
  for (const auto& [id, c] : checks_) {
    if (c.definition.serviceId == serviceId) out.push_back(&c);
  }
  return out;
}

std::string LocalState::aggregateStatus(const std::string& serviceId) const {
  std::string worst = store::kPassing;
  for (const auto& [id, c] : checks_) {
    if (c.definition.serviceId == serviceId || c.definition.serviceId.empty())
      worst = worseStatus(worst, c.check.status);
  }
  return worst;
}

void LocalState::markServiceInSync(const std::string& id) {
  if (auto it = services_.find(id); it != services_.end()) it->second.inSync = true;
}
void LocalState::markCheckInSync(const std::string& id) {
  if (auto it = checks_.find(id); it != checks_.end()) it->second.inSync = true;
}
void LocalState::markServiceOutOfSync(const std::string& id) {
  if (auto it = services_.find(id); it != services_.end()) it->second.inSync = false;
}
void LocalState::markCheckOutOfSync(const std::string& id) {
  if (auto it = checks_.find(id); it != checks_.end()) it->second.inSync = false;
}
void LocalState::markAllOutOfSync() {
  for (auto& [id, s] : services_) s.inSync = false;
  for (auto& [id, c] : checks_) c.inSync = false;
}
bool LocalState::allInSync() const {
  if (!deletedServices_.empty() || !deletedChecks_.empty()) return false;
  for (const auto& [id, s] : services_) {
    if (!s.inSync) return false;
  }
  for (const auto& [id, c] : checks_) {
    if (!c.inSync) return false;
  }
  return true;
}

}  // namespace taskmesh::agent
