#pragma once
// `taskmesh mesh-init` (DESIGN.md §2, T1): registers the task's service and its sidecar proxy
// through the task's own agent and writes the proxy bootstrap JSON to the shared volume.
//
// Inputs: the config JSON (env TASKMESH_CONFIG_JSON or -config-file; camelCase keys in the shape
// of consul-ecs's CONSUL_ECS_CONFIG_JSON), the ECS task metadata endpoint v4 (family, task ARN,
// task IPv4), CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN. Outputs: two
// `PUT /v1/agent/service/register?replace-existing-checks=true` calls (service, then sidecar)
// and `<bootstrapDir>/bootstrap.json`, mode 0444, written atomically. Running it again is
// harmless: registration is an upsert and the file is replaced by rename.
//
// The pure part (parse, resolve, build) is separate from the I/O (runMeshInit) so that each
// piece is testable on its own.
//
// Threads: runs on the calling thread; every request and every backoff sleep is bounded by
// -timeout.

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/metadata.h"
#include "base/result.h"

namespace taskmesh::init {

inline constexpr int kMeshInitOk = 0;
inline constexpr int kMeshInitFailed = 1;     // the agent, the metadata endpoint or the disk
inline constexpr int kMeshInitBadConfig = 2;  // config, flags or environment; no network call made

inline constexpr int kDefaultPublicListenerPort = 20000;
inline constexpr const char* kProxyAdminAddr = "127.0.0.1:19000";
inline constexpr int kProxyAdminPort = 19000;
inline constexpr const char* kDefaultAgentAddr = "127.0.0.1:8500";

struct MeshInitOptions {
  std::string timeout = "2m";     // -timeout (Go duration): bounds the whole run
  std::string logLevel = "info";  // -log-level
  std::string configFile;         // -config-file: read instead of TASKMESH_CONFIG_JSON

  // Retry pacing (not flags; tests shorten them). Each wait is drawn from [d/2, d].
  std::chrono::milliseconds initialBackoff{50};
  std::chrono::milliseconds maxBackoff{1000};
  std::chrono::milliseconds requestTimeout{2000};  // per HTTP request, capped by -timeout
};

// The process environment mesh-init reads, captured once so that tests can pass their own.
struct MeshInitEnvironment {
  std::optional<std::string> configJson;  // TASKMESH_CONFIG_JSON; nullopt when unset
  std::string metadataUriV4;              // ECS_CONTAINER_METADATA_URI_V4
  std::string consulHttpAddr;             // CONSUL_HTTP_ADDR: "host:port" or "http://host:port"
  std::string consulHttpToken;            // CONSUL_HTTP_TOKEN; never logged

  static MeshInitEnvironment fromProcess();
};

struct UpstreamConfig {
  std::string destinationName;  // destinationName (required)
  int localBindPort = 0;        // localBindPort (required, 1..65535, unique)
  std::string datacenter;       // datacenter ("" = the agent's)
};

struct ServiceWeights {
  int passing = 1;
  int warning = 1;
};

// The validated config. Invariants after parseMeshInitConfig: ports are 1..65535 and pairwise
// distinct (service, public listener, proxy admin, every upstream); `checks` is an array of
// objects; `proxyConfig` is an object when present.
struct MeshInitConfig {
  std::string bootstrapDir;   // bootstrapDir (required)
  std::string agentHttpAddr;  // agentHttpAddr ("" = CONSUL_HTTP_ADDR, then 127.0.0.1:8500)

  std::string serviceName;  // service.name ("" = the task family)
  int servicePort = 0;      // service.port (required)
  std::vector<std::string> tags;
  std::map<std::string, std::string> meta;
  bool enableTagOverride = false;
  std::optional<ServiceWeights> weights;
  nlohmann::json checks = nlohmann::json::array();  // service.checks, passed through as given

  std::vector<UpstreamConfig> upstreams;  // proxy.upstreams
  int publicListenerPort = kDefaultPublicListenerPort;
  std::optional<nlohmann::json> proxyConfig;  // proxy.config, opaque
};

// Parses and validates the config JSON. Unknown keys are rejected at every level we define
// (not inside service.checks[] or proxy.config). Errors are kInvalidArgument and start with the
// field path: "service.port: expected an integer 1..65535, got \"abc\"".
Result<MeshInitConfig> parseMeshInitConfig(std::string_view json);

// Where the agent's HTTP API is.
struct AgentAddress {
  std::string baseUrl;   // "http://127.0.0.1:8500"
  std::string hostPort;  // "127.0.0.1:8500" ([v6]:port for IPv6)
};

// The agent address from `configAddr` (mesh-init's agentHttpAddr, a command's -http-addr), else
// CONSUL_HTTP_ADDR, else 127.0.0.1:8500. Accepts "host:port" and "http://host:port"; errors
// (https, paths, bad ports) name the source: `configName`, or CONSUL_HTTP_ADDR.
Result<AgentAddress> resolveAgentAddress(const std::string& configAddr, const std::string& envAddr,
                                         const std::string& configName = "agentHttpAddr");

// What the task metadata says about this task.
struct TaskIdentity {
  std::string family;
  std::string taskId;  // last '/' segment of TaskARN
  std::string ipv4;    // TaskMetadata::taskIpv4()
};

// Errors (kInvalidArgument) name the missing metadata field.
Result<TaskIdentity> taskIdentity(const aws::TaskMetadata& metadata);

// Everything mesh-init sends and writes.
struct MeshRegistration {
  std::string serviceId;     // <family>-<taskId>
  std::string serviceName;   // service.name or the family
  std::string proxyId;       // <serviceId>-sidecar-proxy
  nlohmann::json service;    // body of the first register call
  nlohmann::json sidecar;    // body of the second register call
  nlohmann::json bootstrap;  // <bootstrapDir>/bootstrap.json
};

MeshRegistration buildRegistration(const MeshInitConfig& config, const TaskIdentity& task,
                                   const AgentAddress& agent, const std::string& token);

// The command. Returns kMeshInitOk, kMeshInitFailed or kMeshInitBadConfig; every failure is
// logged with what failed and why.
int runMeshInit(const MeshInitOptions& options, const MeshInitEnvironment& environment);
// As above, with the process environment.
int runMeshInit(const MeshInitOptions& options);

}  // namespace taskmesh::init
