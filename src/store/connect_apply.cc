// The Connect tables of the state machine: CA roots and configuration, intentions.
// Same contract as state_store.cc: deterministic, no I/O, no clock; runs under the store's
// exclusive lock (StateStore::apply).

#include <algorithm>

#include "store/state_store.h"

namespace taskmesh::store {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

}  // namespace

const CaRoot* Tables::activeRoot() const {
  for (const auto& r : caRoots) {
    if (r.active) return &r;
  }
  return nullptr;
}

ApplyResult StateStore::applyOne(uint64_t index, const CaSetCommand& c) {
  ApplyResult r;
  Tables& t = tables_;
  if (c.casIndex != t.caIndex) {
    r.value = false;  // another CA change landed first; the leader recomputes and retries
    return r;
  }
  if (c.clusterId.empty()) {
    r.error = invalid("CA: the cluster ID must not be empty");
    return r;
  }
  if (!t.clusterId.empty() && c.clusterId != t.clusterId) {
    r.error = invalid("CA: the cluster ID cannot change (is " + t.clusterId + ")");
    return r;
  }
  auto active =
      std::count_if(c.roots.begin(), c.roots.end(), [](const CaRoot& x) { return x.active; });
  if (active != 1) {
    r.error = invalid("CA: exactly one root must be active, got " + std::to_string(active));
    return r;
  }
  std::vector<CaRoot> roots;
  roots.reserve(c.roots.size());
  for (CaRoot root : c.roots) {
    auto old = std::find_if(t.caRoots.begin(), t.caRoots.end(),
                            [&](const CaRoot& x) { return x.id == root.id; });
    if (old != t.caRoots.end()) {
      root.createIndex = old->createIndex;
      root.modifyIndex = sameContent(*old, root) ? old->modifyIndex : index;
    } else {
      root.createIndex = root.modifyIndex = index;
    }
    roots.push_back(std::move(root));
  }
  CaConfig config = c.config;
  config.createIndex = t.caConfig.createIndex != 0 ? t.caConfig.createIndex : index;
  config.modifyIndex = t.caConfig.createIndex != 0 && sameContent(t.caConfig, config)
                           ? t.caConfig.modifyIndex
                           : index;
  t.clusterId = c.clusterId;
  t.caConfig = std::move(config);
  t.caRoots = std::move(roots);
  t.caIndex = index;
  r.changes.ca = true;
  return r;
}

ApplyResult StateStore::applyOne(uint64_t index, const IntentionSetCommand& c) {
  ApplyResult r;
  const connect::Intention& in = c.intention;
  if (in.sourceName.empty() || in.destinationName.empty()) {
    r.error = invalid("intention: source and destination names are required");
    return r;
  }
  auto key = std::make_pair(in.sourceName, in.destinationName);
  auto it = tables_.intentions.find(key);
  if (it != tables_.intentions.end() && sameContent(it->second, in)) return r;
  connect::Intention row = in;
  row.createIndex = it != tables_.intentions.end() ? it->second.createIndex : index;
  row.modifyIndex = index;
  tables_.intentions[key] = std::move(row);
  tables_.intentionsIndex = index;
  r.changes.intentions = true;
  return r;
}

ApplyResult StateStore::applyOne(uint64_t index, const IntentionDeleteCommand& c) {
  ApplyResult r;
  if (tables_.intentions.erase({c.sourceName, c.destinationName}) == 0) return r;
  tables_.intentionsIndex = index;
  r.changes.intentions = true;
  return r;
}

Json encodeConnectTables(const Tables& t) {
  Json roots = Json::array();
  for (const auto& root : t.caRoots) roots.push_back(toJson(root));
  Json intentions = Json::array();
  for (const auto& [key, in] : t.intentions) intentions.push_back(toJson(in));
  return {{"cluster", t.clusterId},
          {"config", toJson(t.caConfig)},
          {"roots", std::move(roots)},
          {"caidx", t.caIndex},
          {"intentions", std::move(intentions)},
          {"intidx", t.intentionsIndex}};
}

void decodeConnectTables(const Json& j, Tables& t) {
  t.clusterId = j.at("cluster").get<std::string>();
  fromJson(j.at("config"), t.caConfig);
  for (const Json& rj : j.at("roots")) {
    CaRoot root;
    fromJson(rj, root);
    t.caRoots.push_back(std::move(root));
  }
  t.caIndex = j.at("caidx").get<uint64_t>();
  for (const Json& ij : j.at("intentions")) {
    connect::Intention in;
    fromJson(ij, in);
    auto key = std::make_pair(in.sourceName, in.destinationName);
    t.intentions.emplace(std::move(key), std::move(in));
  }
  t.intentionsIndex = j.at("intidx").get<uint64_t>();
}

}  // namespace taskmesh::store
