#pragma once
// Commands: the only way state changes. The HTTP layer validates outside input and builds a
// Command; the command is encoded, replicated through Raft, decoded on every server and
// applied by StateStore::apply. The encoding is internal (MessagePack of the JSON mapping in
// command.cc) and is also the on-disk format of log entries, so fields are only ever added.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "connect/intentions.h"
#include "store/types.h"

namespace taskmesh::store {

// PUT /v1/catalog/register
struct RegisterCommand {
  Node node;
  bool skipNodeUpdate = false;
  std::optional<Service> service;
  std::vector<Check> checks;
};

// PUT /v1/catalog/deregister: the node, or one service, or one check of the node.
struct DeregisterCommand {
  std::string node;
  std::string serviceId;
  std::string checkId;
};

// PUT /v1/kv/:key. With cas: 0 = create only if absent, N = only if ModifyIndex == N.
struct KVSetCommand {
  std::string key;
  std::string value;
  uint64_t flags = 0;
  std::optional<uint64_t> cas;
};

// DELETE /v1/kv/:key
struct KVDeleteCommand {
  std::string key;
  bool recurse = false;
  std::optional<uint64_t> cas;
};

// Bootstrap, rotation and pruning of the Connect CA. The leader makes keys and certificates
// outside apply (which must stay deterministic) and replicates the whole outcome: the cluster
// ID (kept once set), the configuration and the full list of roots. `casIndex` is the
// Tables::caIndex the leader computed it from; apply refuses it (value false) when another CA
// change landed first, so two rotations can never interleave.
struct CaSetCommand {
  std::string clusterId;
  CaConfig config;
  std::vector<CaRoot> roots;  // exactly one active
  uint64_t casIndex = 0;
};

// PUT /v1/connect/intentions/exact: upsert by (source, destination).
struct IntentionSetCommand {
  connect::Intention intention;
};

// DELETE /v1/connect/intentions/exact
struct IntentionDeleteCommand {
  std::string sourceName;
  std::string destinationName;
};

using Command = std::variant<RegisterCommand, DeregisterCommand, KVSetCommand, KVDeleteCommand,
                             CaSetCommand, IntentionSetCommand, IntentionDeleteCommand>;

std::string encodeCommand(const Command& command);
Result<Command> decodeCommand(std::string_view bytes);

// JSON mapping of rows, shared by commands and snapshots (internal format, not Consul's API).
Json toJson(const Node& n);
Json toJson(const Service& s);
Json toJson(const Check& c);
Json toJson(const KVEntry& e);
void fromJson(const Json& j, Node& n);
void fromJson(const Json& j, Service& s);
void fromJson(const Json& j, Check& c);
void fromJson(const Json& j, KVEntry& e);
Json toJson(const CaRoot& r);
Json toJson(const CaConfig& c);
Json toJson(const connect::Intention& i);
void fromJson(const Json& j, CaRoot& r);
void fromJson(const Json& j, CaConfig& c);
void fromJson(const Json& j, connect::Intention& i);

}  // namespace taskmesh::store
