#include "store/state_store.h"

#include <algorithm>
#include <mutex>

#include "base/json.h"

namespace taskmesh::store {

uint64_t Tables::indexForService(const std::string& name) const {
  auto it = serviceIndex.find(name);
  return it != serviceIndex.end() ? it->second : servicesIndex;
}

uint64_t Tables::indexForKVPrefix(const std::string& prefix) const {
  if (prefix.empty()) return kvsIndex;
  uint64_t idx = 0;
  for (auto it = kvs.lower_bound(prefix); it != kvs.end() && it->first.starts_with(prefix); ++it) {
    idx = std::max(idx, it->second.modifyIndex);
  }
  for (auto it = kvTombstones.lower_bound(prefix);
       it != kvTombstones.end() && it->first.starts_with(prefix); ++it) {
    idx = std::max(idx, it->second);
  }
  return idx != 0 ? idx : kvsIndex;
}

std::vector<const Check*> Tables::checksForInstance(const NodeEntry& node,
                                                    const std::string& serviceId) const {
  std::vector<const Check*> out;
  for (const auto& [id, check] : node.checks) {
    if (check.serviceId.empty() || check.serviceId == serviceId) out.push_back(&check);
  }
  return out;
}

ApplyResult StateStore::apply(uint64_t index, const Command& command) {
  std::unique_lock lock(mu_);
  ApplyResult r = std::visit([&](const auto& c) { return applyOne(index, c); }, command);
  tables_.lastIndex = index;
  r.index = index;
  return r;
}

void StateStore::touchService(uint64_t index, const std::string& name, Changes& changes) {
  tables_.serviceIndex[name] = index;
  changes.serviceNames.push_back(name);
}

void StateStore::touchAllServicesOfNode(uint64_t index, const NodeEntry& entry, Changes& changes) {
  for (const auto& [id, svc] : entry.services) touchService(index, svc.service, changes);
}

ApplyResult StateStore::applyOne(uint64_t index, const RegisterCommand& c) {
  ApplyResult r;
  // Validate everything before mutating, so a rejected command changes nothing.
  auto existing = tables_.nodes.find(c.node.name);
  for (const Check& check : c.checks) {
    if (check.serviceId.empty()) continue;
    bool inCommand = c.service && c.service->id == check.serviceId;
    bool onNode =
        existing != tables_.nodes.end() && existing->second.services.contains(check.serviceId);
    if (!inCommand && !onNode) {
      r.error = Error{ErrorCode::kInvalidArgument,
                      "Missing service registration: check \"" + check.checkId +
                          "\" names unknown service ID \"" + check.serviceId + "\""};
      return r;
    }
  }

  Changes& ch = r.changes;
  if (existing == tables_.nodes.end()) {
    NodeEntry entry;
    entry.node = c.node;
    entry.node.createIndex = entry.node.modifyIndex = index;
    existing = tables_.nodes.emplace(c.node.name, std::move(entry)).first;
    tables_.nodesIndex = index;
    ch.nodes = true;
  } else if (!c.skipNodeUpdate && !sameContent(existing->second.node, c.node)) {
    uint64_t created = existing->second.node.createIndex;
    existing->second.node = c.node;
    existing->second.node.createIndex = created;
    existing->second.node.modifyIndex = index;
    tables_.nodesIndex = index;
    ch.nodes = true;
    touchAllServicesOfNode(index, existing->second, ch);
  }
  NodeEntry& entry = existing->second;

  if (c.service) {
    const Service& s = *c.service;
    auto it = entry.services.find(s.id);
    if (it == entry.services.end() || !sameContent(it->second, s)) {
      uint64_t created = index;
      if (it != entry.services.end()) {
        created = it->second.createIndex;
        if (it->second.service != s.service) {
          // The ID now names another service: drop it from the old name's instances and
          // move its checks to the new name.
          auto old = tables_.serviceInstances.find(it->second.service);
          if (old != tables_.serviceInstances.end()) {
            old->second.erase({c.node.name, s.id});
            if (old->second.empty()) tables_.serviceInstances.erase(old);
          }
          touchService(index, it->second.service, ch);
          for (auto& [cid, check] : entry.checks) {
            if (check.serviceId != s.id) continue;
            check.serviceName = s.service;
            check.modifyIndex = index;
            tables_.checksIndex = index;
            ch.checks = true;
          }
        }
      }
      Service& row = entry.services[s.id];
      row = s;
      row.createIndex = created;
      row.modifyIndex = index;
      tables_.serviceInstances[s.service].insert({c.node.name, s.id});
      tables_.servicesIndex = index;
      ch.services = true;
      touchService(index, s.service, ch);
    }
  }

  for (Check check : c.checks) {
    check.node = c.node.name;
    if (!check.serviceId.empty()) check.serviceName = entry.services.at(check.serviceId).service;
    auto it = entry.checks.find(check.checkId);
    if (it != entry.checks.end() && sameContent(it->second, check)) continue;
    if (it != entry.checks.end() && it->second.serviceId != check.serviceId) {
      // The check leaves the answers it was part of.
      if (it->second.serviceId.empty()) {
        touchAllServicesOfNode(index, entry, ch);
      } else {
        touchService(index, it->second.serviceName, ch);
      }
    }
    check.createIndex = it != entry.checks.end() ? it->second.createIndex : index;
    check.modifyIndex = index;
    entry.checks[check.checkId] = check;
    tables_.checksIndex = index;
    ch.checks = true;
    if (check.serviceId.empty()) {
      touchAllServicesOfNode(index, entry, ch);
    } else {
      touchService(index, check.serviceName, ch);
    }
  }
  return r;
}

void StateStore::removeService(uint64_t index, NodeEntry& entry, const std::string& serviceId,
                               Changes& changes) {
  auto it = entry.services.find(serviceId);
  if (it == entry.services.end()) return;
  std::string name = it->second.service;
  auto instances = tables_.serviceInstances.find(name);
  if (instances != tables_.serviceInstances.end()) {
    instances->second.erase({entry.node.name, serviceId});
    if (instances->second.empty()) tables_.serviceInstances.erase(instances);
  }
  entry.services.erase(it);
  for (auto c = entry.checks.begin(); c != entry.checks.end();) {
    if (c->second.serviceId == serviceId) {
      c = entry.checks.erase(c);
      tables_.checksIndex = index;
      changes.checks = true;
    } else {
      ++c;
    }
  }
  tables_.servicesIndex = index;
  changes.services = true;
  touchService(index, name, changes);
}

ApplyResult StateStore::applyOne(uint64_t index, const DeregisterCommand& c) {
  ApplyResult r;
  auto it = tables_.nodes.find(c.node);
  if (it == tables_.nodes.end()) return r;  // already gone: deregistering is idempotent
  NodeEntry& entry = it->second;
  Changes& ch = r.changes;
  if (!c.checkId.empty()) {
    auto check = entry.checks.find(c.checkId);
    if (check == entry.checks.end()) return r;
    std::string serviceName = check->second.serviceName;
    bool nodeLevel = check->second.serviceId.empty();
    entry.checks.erase(check);
    tables_.checksIndex = index;
    ch.checks = true;
    if (nodeLevel) {
      touchAllServicesOfNode(index, entry, ch);
    } else {
      touchService(index, serviceName, ch);
    }
    return r;
  }
  if (!c.serviceId.empty()) {
    removeService(index, entry, c.serviceId, ch);
    return r;
  }
  std::vector<std::string> ids;
  for (const auto& [id, svc] : entry.services) ids.push_back(id);
  for (const std::string& id : ids) removeService(index, entry, id, ch);
  if (!entry.checks.empty()) {
    tables_.checksIndex = index;
    ch.checks = true;
  }
  tables_.nodes.erase(it);
  tables_.nodesIndex = index;
  ch.nodes = true;
  return r;
}

void StateStore::buryKey(uint64_t index, const std::string& key) {
  auto& graveyard = tables_.kvTombstones;
  graveyard[key] = index;
  if (graveyard.size() <= kMaxTombstones) return;
  // Drop the older half. Deterministic: depends only on the tables.
  std::vector<uint64_t> indexes;
  indexes.reserve(graveyard.size());
  for (const auto& [k, i] : graveyard) indexes.push_back(i);
  auto mid = indexes.begin() + static_cast<std::ptrdiff_t>(indexes.size() / 2);
  std::nth_element(indexes.begin(), mid, indexes.end());
  uint64_t cutoff = *mid;
  std::erase_if(graveyard, [cutoff](const auto& kv) { return kv.second < cutoff; });
}

ApplyResult StateStore::applyOne(uint64_t index, const KVSetCommand& c) {
  ApplyResult r;
  auto it = tables_.kvs.find(c.key);
  if (c.cas) {
    bool ok = *c.cas == 0 ? it == tables_.kvs.end()
                          : (it != tables_.kvs.end() && it->second.modifyIndex == *c.cas);
    if (!ok) {
      r.value = false;
      return r;
    }
  }
  if (it == tables_.kvs.end()) {
    tables_.kvTombstones.erase(c.key);
    KVEntry e;
    e.key = c.key;
    e.createIndex = index;
    it = tables_.kvs.emplace(c.key, std::move(e)).first;
  }
  it->second.value = c.value;
  it->second.flags = c.flags;
  it->second.modifyIndex = index;
  tables_.kvsIndex = index;
  r.changes.kvKeys.push_back(c.key);
  return r;
}

ApplyResult StateStore::applyOne(uint64_t index, const KVDeleteCommand& c) {
  ApplyResult r;
  if (c.recurse) {
    auto it = tables_.kvs.lower_bound(c.key);
    while (it != tables_.kvs.end() && it->first.compare(0, c.key.size(), c.key) == 0) {
      r.changes.kvKeys.push_back(it->first);
      buryKey(index, it->first);
      it = tables_.kvs.erase(it);
    }
    if (!r.changes.kvKeys.empty()) tables_.kvsIndex = index;
    return r;
  }
  auto it = tables_.kvs.find(c.key);
  if (c.cas) {
    // Consul: a CAS delete of a missing key succeeds; cas=0 never matches an existing key.
    if (it == tables_.kvs.end()) return r;
    if (it->second.modifyIndex != *c.cas) {
      r.value = false;
      return r;
    }
  }
  if (it == tables_.kvs.end()) return r;
  buryKey(index, it->first);
  tables_.kvs.erase(it);
  tables_.kvsIndex = index;
  r.changes.kvKeys.push_back(c.key);
  return r;
}

namespace {

// Snapshot format 2: an 8-byte magic, then frames of [u32 little-endian length][MessagePack
// record]: one header record, then one record per node (with its services and checks), then
// KV entries in records of up to kKVPerFrame, then an end record carrying the number of
// records before it, so a snapshot cut at a frame boundary is still detected. Encoding record by
// record keeps the peak memory of a snapshot to one record's JSON tree instead of a tree of the
// whole state.
constexpr std::string_view kSnapshotMagic = "TMSNAP2\n";
constexpr size_t kKVPerFrame = 256;

void appendFrame(std::string& out, const Json& record, uint64_t* frames = nullptr) {
  if (frames != nullptr) ++*frames;
  std::vector<uint8_t> bytes = Json::to_msgpack(record);
  uint32_t len = static_cast<uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out.append(bytes.begin(), bytes.end());
}

}  // namespace

std::string StateStore::snapshot() const {
  std::shared_lock lock(mu_);
  return encodeSnapshot(tables_);
}

std::string StateStore::encodeSnapshot(const Tables& t) {
  std::string out(kSnapshotMagic);
  uint64_t frames = 0;
  Json graveyard = Json::object();
  for (const auto& [k, i] : t.kvTombstones) graveyard[k] = i;
  appendFrame(out,
              Json{{"version", 2},
                   {"idx",
                    {{"nodes", t.nodesIndex},
                     {"services", t.servicesIndex},
                     {"checks", t.checksIndex},
                     {"kvs", t.kvsIndex},
                     {"last", t.lastIndex}}},
                   {"svcidx", t.serviceIndex},
                   {"tombstones", std::move(graveyard)}},
              &frames);
  for (const auto& [name, entry] : t.nodes) {
    Json services = Json::array();
    for (const auto& [id, svc] : entry.services) services.push_back(toJson(svc));
    Json checks = Json::array();
    for (const auto& [id, c] : entry.checks) checks.push_back(toJson(c));
    appendFrame(out,
                Json{{"node", toJson(entry.node)},
                     {"svcs", std::move(services)},
                     {"checks", std::move(checks)}},
                &frames);
  }
  Json kvs = Json::array();
  for (const auto& [k, e] : t.kvs) {
    kvs.push_back(toJson(e));
    if (kvs.size() == kKVPerFrame) {
      appendFrame(out, Json{{"kvs", std::move(kvs)}}, &frames);
      kvs = Json::array();
    }
  }
  if (!kvs.empty()) appendFrame(out, Json{{"kvs", std::move(kvs)}}, &frames);
  appendFrame(out, Json{{"connect", encodeConnectTables(t)}}, &frames);
  appendFrame(out, Json{{"end", frames}});
  return out;
}

Result<void> StateStore::restore(std::string_view bytes) {
  if (!bytes.starts_with(kSnapshotMagic)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "cannot decode snapshot: not a taskmesh snapshot");
  }
  bytes.remove_prefix(kSnapshotMagic.size());
  Tables t;
  bool header = false;
  bool ended = false;
  uint64_t frames = 0;
  try {
    while (!bytes.empty()) {
      if (ended) {
        return makeError(ErrorCode::kInvalidArgument, "cannot decode snapshot: data after its end");
      }
      if (bytes.size() < 4) {
        return makeError(ErrorCode::kInvalidArgument, "cannot decode snapshot: truncated frame");
      }
      uint32_t len = 0;
      for (int i = 3; i >= 0; --i)
        len = (len << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
      bytes.remove_prefix(4);
      if (len > bytes.size()) {
        return makeError(ErrorCode::kInvalidArgument, "cannot decode snapshot: truncated frame");
      }
      auto parsed = parseMsgpackBounded(bytes.substr(0, len));
      bytes.remove_prefix(len);
      if (!parsed) {
        return makeError(ErrorCode::kInvalidArgument,
                         "cannot decode snapshot: " + parsed.error().message);
      }
      const Json& j = *parsed;
      if (j.contains("end")) {
        if (j.at("end").get<uint64_t>() != frames) {
          return makeError(ErrorCode::kInvalidArgument, "cannot decode snapshot: records missing");
        }
        ended = true;
        continue;
      }
      ++frames;
      if (!header) {
        if (j.at("version").get<int>() != 2) {
          return makeError(ErrorCode::kInvalidArgument, "unsupported snapshot version");
        }
        const Json& idx = j.at("idx");
        t.nodesIndex = idx.at("nodes").get<uint64_t>();
        t.servicesIndex = idx.at("services").get<uint64_t>();
        t.checksIndex = idx.at("checks").get<uint64_t>();
        t.kvsIndex = idx.at("kvs").get<uint64_t>();
        t.lastIndex = idx.at("last").get<uint64_t>();
        j.at("svcidx").get_to(t.serviceIndex);
        j.at("tombstones").get_to(t.kvTombstones);
        header = true;
      } else if (j.contains("node")) {
        NodeEntry entry;
        fromJson(j.at("node"), entry.node);
        for (const Json& sj : j.at("svcs")) {
          Service svc;
          fromJson(sj, svc);
          t.serviceInstances[svc.service].insert({entry.node.name, svc.id});
          entry.services.emplace(svc.id, std::move(svc));
        }
        for (const Json& cj : j.at("checks")) {
          Check c;
          fromJson(cj, c);
          entry.checks.emplace(c.checkId, std::move(c));
        }
        std::string name = entry.node.name;
        t.nodes.emplace(std::move(name), std::move(entry));
      } else if (j.contains("connect")) {
        decodeConnectTables(j.at("connect"), t);
      } else {
        for (const Json& kj : j.at("kvs")) {
          KVEntry e;
          fromJson(kj, e);
          std::string key = e.key;
          t.kvs.emplace(std::move(key), std::move(e));
        }
      }
    }
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string("cannot decode snapshot: ") + e.what());
  }
  if (!header || !ended) {
    return makeError(ErrorCode::kInvalidArgument, "cannot decode snapshot: truncated");
  }
  std::unique_lock lock(mu_);
  tables_ = std::move(t);
  return {};
}

}  // namespace taskmesh::store
