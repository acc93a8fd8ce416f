#pragma once
// What the local agent API accepts (reference/consul-http-api.md §5.4, §6.2, §12): check and
// service definitions decoded from untrusted request bodies, with Consul's defaults, generated
// IDs and the Connect.SidecarService expansion. Pure functions: no I/O, no clock.
//
// Errors are kInvalidArgument with Consul's texts where Consul has one ("Missing service name",
// "Invalid check: ...", "Request decode failed: Check.Interval: invalid duration ...").

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/types.h"

namespace taskmesh::agent {

using Json = nlohmann::json;
using Millis = std::chrono::milliseconds;

// kMaintenance: the critical check that maintenance mode adds; nothing runs it.
enum class CheckKind { kTtl, kHttp, kTcp, kScript, kAlias, kMaintenance };

// Consul's name for the kind ("ttl", "http", "tcp", "script", "alias", "maintenance"): the
// check's Type.
const char* kindName(CheckKind kind);

struct CheckDefinition {
  std::string id;
  std::string name;
  std::string serviceId;  // "" for a node-level check
  std::string notes;
  CheckKind kind = CheckKind::kTtl;
  std::string initialStatus = store::kCritical;  // `Status`: a new check starts here

  std::string http;  // URL
  std::string method = "GET";
  std::map<std::string, std::vector<std::string>> header;
  std::string body;
  std::string tcp;                // host:port
  std::vector<std::string> args;  // script
  std::string aliasService;       // a service ID
  std::string aliasNode;          // "" = this node

  Millis interval{0};
  Millis timeout{0};  // defaults: 10 s, 30 s for scripts; never above the interval's use
  Millis ttl{0};
  Millis deregisterCriticalServiceAfter{0};  // 0 = never
  int successBeforePassing = 0;
  int failuresBeforeWarning = 0;  // defaults to failuresBeforeCritical
  int failuresBeforeCritical = 0;
  size_t outputMaxSize = 4096;

  // Consul's HealthCheckDefinition (the catalog check's "Definition" field).
  Json definitionJson() const;
  // Round-trips through the agent's state file (CamelCase Consul fields).
  Json toJson() const;
};

struct DecodeOptions {
  bool enableScriptChecks = false;  // -enable-script-checks / -enable-local-script-checks
};

// One check definition from a body. `path` names it in errors ("Check", "Checks[1]").
// `serviceId` binds it to a service when the definition names none (checks inside a service
// registration); `defaultId`/`defaultName` apply when the definition has no ID/Name.
Result<CheckDefinition> decodeCheckDefinition(const Json& j, const std::string& path,
                                              const DecodeOptions& options,
                                              const std::string& serviceId = "",
                                              const std::string& defaultId = "",
                                              const std::string& defaultName = "");

struct ServiceDefinition {
  store::Service service;               // ID defaulted, Kind checked
  std::vector<CheckDefinition> checks;  // IDs generated as Consul does
};

// Chooses a port for a sidecar that gives none. Returns 0 when every port is taken.
using PortAllocator = std::function<int(const std::string& sidecarId)>;

// PUT /v1/agent/service/register body → the service, then its sidecar when the body has
// Connect.SidecarService (ID "<id>-sidecar-proxy", defaults of §5.4.2).
Result<std::vector<ServiceDefinition>> decodeServiceRegistration(const Json& body,
                                                                 const DecodeOptions& options,
                                                                 const PortAllocator& ports);

}  // namespace taskmesh::agent
