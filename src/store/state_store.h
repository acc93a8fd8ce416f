#pragma once
// The replicated state machine (DESIGN.md §3): catalog (nodes, services, checks), KV, and the
// Connect tables (CA roots and configuration, intentions; connect_apply.cc).
//
// Threads: apply() and restore() run on the Raft thread; read() may run on any thread.
// A shared_mutex guards the tables: apply/restore take it exclusively, read() shared.
// Invariants:
//  - apply() is deterministic: no I/O, no clock, no randomness; the same commands at the same
//    indexes give the same tables on every server.
//  - every index in the tables is a Raft log index; table indexes never go backwards, except
//    through restore() of an older snapshot (clients then reset, as Consul documents).
//  - Tables::serviceInstances mirrors the services of every node exactly.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "store/command.h"
#include "store/types.h"

namespace taskmesh::store {

struct NodeEntry {
  Node node;
  std::map<std::string, Service> services;  // by service ID
  std::map<std::string, Check> checks;      // by check ID
};

struct Tables {
  std::map<std::string, NodeEntry> nodes;  // by node name
  // service name → (node, service ID), in the order Consul returns instances
  std::map<std::string, std::set<std::pair<std::string, std::string>>> serviceInstances;
  std::map<std::string, KVEntry> kvs;  // by key
  // Deleted keys → index of the delete (Consul's graveyard), so a prefix's index never goes
  // backwards when its newest key is deleted. Bounded: see kMaxTombstones.
  std::map<std::string, uint64_t> kvTombstones;

  // Max index per table ("nodes", "services", "checks", "kvs"), and per service name: the last
  // index at which anything visible in that service's catalog or health answers changed.
  uint64_t nodesIndex = 0;
  uint64_t servicesIndex = 0;
  uint64_t checksIndex = 0;
  uint64_t kvsIndex = 0;
  std::map<std::string, uint64_t> serviceIndex;
  uint64_t lastIndex = 0;  // index of the last applied command

  // Connect. clusterId is set by the first CaSetCommand and never changes; once set, caRoots
  // holds exactly one active root (the signer), then rotated-out ones still trusted.
  std::string clusterId;
  CaConfig caConfig;
  std::vector<CaRoot> caRoots;
  uint64_t caIndex = 0;  // last change of roots or configuration
  // Intentions by (source name, destination name): one per pair, as Consul keeps them.
  std::map<std::pair<std::string, std::string>, connect::Intention> intentions;
  uint64_t intentionsIndex = 0;  // last upsert or delete

  const CaRoot* activeRoot() const;

  // Index for answers about one service: its own index, else the services table's.
  uint64_t indexForService(const std::string& name) const;
  // Index for a KV prefix listing: the highest ModifyIndex or delete index under the prefix;
  // the table index for the empty prefix or when nothing under it was ever seen.
  uint64_t indexForKVPrefix(const std::string& prefix) const;
  // Checks of the node that belong to `serviceId`, plus the node's node-level checks.
  std::vector<const Check*> checksForInstance(const NodeEntry& node,
                                              const std::string& serviceId) const;
};

// What an applied command changed, for waking blocking queries.
struct Changes {
  bool nodes = false;
  bool services = false;
  bool checks = false;
  std::vector<std::string> serviceNames;  // services whose answers changed
  std::vector<std::string> kvKeys;        // keys written or deleted
  bool ca = false;                        // roots or CA configuration
  bool intentions = false;
  bool empty() const {
    return !nodes && !services && !checks && serviceNames.empty() && kvKeys.empty() && !ca &&
           !intentions;
  }
};

// Outcome of one command: `value` is the boolean the API returns (KV cas outcomes), `error` a
// deterministic rejection (e.g. a check naming an unknown service).
struct ApplyResult {
  uint64_t index = 0;
  bool value = true;
  std::optional<Error> error;
  Changes changes;
};

// The Connect tables' record in a snapshot (connect_apply.cc), and its inverse.
Json encodeConnectTables(const Tables& t);
void decodeConnectTables(const Json& j,
                         Tables& t);  // throws on a malformed record (restore catches)

// Tombstones kept before the oldest half is dropped (deterministically, inside apply).
inline constexpr size_t kMaxTombstones = 65536;

class StateStore {
 public:
  // Applies `command` as the entry at log `index` (> every index applied before).
  ApplyResult apply(uint64_t index, const Command& command);

  // Runs `fn(const Tables&)` under the shared lock. `fn` must not block or call back in.
  template <typename Fn>
  auto read(Fn&& fn) const {
    std::shared_lock lock(mu_);
    return fn(static_cast<const Tables&>(tables_));
  }

  // Serialises all tables (MessagePack records) / replaces them from such bytes.
  std::string snapshot() const;
  Result<void> restore(std::string_view bytes);
  // snapshot() without the lock, so that it can run where the lock cannot be taken: in the
  // child that the Raft thread forks to encode a snapshot (raft/forked_encoder.h), where a
  // reader of the parent may have held it at fork(). Only from the thread that runs apply()
  // (no writer can be concurrent) or such a child of it.
  const Tables& tablesWithoutLock() const { return tables_; }
  static std::string encodeSnapshot(const Tables& t);

 private:
  ApplyResult applyOne(uint64_t index, const RegisterCommand& c);
  ApplyResult applyOne(uint64_t index, const DeregisterCommand& c);
  ApplyResult applyOne(uint64_t index, const KVSetCommand& c);
  ApplyResult applyOne(uint64_t index, const KVDeleteCommand& c);
  ApplyResult applyOne(uint64_t index, const CaSetCommand& c);
  ApplyResult applyOne(uint64_t index, const IntentionSetCommand& c);
  ApplyResult applyOne(uint64_t index, const IntentionDeleteCommand& c);

  void touchService(uint64_t index, const std::string& name, Changes& changes);
  void touchAllServicesOfNode(uint64_t index, const NodeEntry& entry, Changes& changes);
  void removeService(uint64_t index, NodeEntry& entry, const std::string& serviceId,
                     Changes& changes);
  // Records a deleted key in the graveyard, dropping the older half when it is full.
  void buryKey(uint64_t index, const std::string& key);

  mutable std::shared_mutex mu_;  // guards tables_
  Tables tables_;
};

}  // namespace taskmesh::store
