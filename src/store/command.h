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

using Command = std::variant<RegisterCommand, DeregisterCommand, KVSetCommand, KVDeleteCommand>;

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

}  // namespace taskmesh::store
