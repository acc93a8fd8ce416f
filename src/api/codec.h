#pragma once
// Consul JSON ⇄ store rows (reference/consul-http-api.md §8–§10).
//
// Decoders take untrusted request bodies: they never throw and never assert; every error
// names the field and what was wrong ("Request decode failed: Service.Port: expected a
// number, got string"). Field names match case-insensitively, as Go's encoding/json does.
// Encoders produce Consul's response shapes; empty lists are [] and never null.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/command.h"
#include "store/state_store.h"

namespace taskmesh::api {

using Json = nlohmann::json;

// Parses a body that must be a JSON object.
Result<Json> parseObject(std::string_view body);

// PUT /v1/catalog/register body → command (defaults applied: service ID = name, check ID =
// name, check status = critical, Node of checks = the node).
Result<store::RegisterCommand> decodeRegister(std::string_view body);
// PUT /v1/catalog/deregister body → command.
Result<store::DeregisterCommand> decodeDeregister(std::string_view body);

// Decoding pieces reused by the agent API.
Result<store::Service> decodeService(const Json& j, const std::string& path);
Result<store::Check> decodeCheck(const Json& j, const std::string& path);
bool isValidCheckStatus(std::string_view s);

// Encoders.
Json encodeNode(const store::Node& n);
Json encodeAgentService(const store::Service& s, bool withIndexes = true);
Json encodeServiceNode(const store::Node& n, const store::Service& s);
Json encodeHealthCheck(const store::Check& c, const std::vector<std::string>& serviceTags);
Json encodeCheckServiceNode(const store::Tables& t, const store::NodeEntry& node,
                            const store::Service& s);
Json encodeKV(const store::KVEntry& e);

std::string base64Encode(std::string_view bytes);

// True when `s` is a sidecar proxy (Kind connect-proxy) whose destination is `service`.
bool isConnectProxyFor(const store::Service& s, const std::string& service);

// Serialises `j` compactly, or indented when the request asked for ?pretty.
std::string dump(const Json& j, bool pretty);

}  // namespace taskmesh::api
