#pragma once
// Mesh-task expansion (DESIGN.md §2, §6): a plain application task definition plus a mesh
// config becomes the task definition that wires the task into the mesh, for the local runtime
// and for real ECS alike. Also the server task definition.
//
// The expanded task (containers in the order ECS starts them):
//   discover-servers  not essential; finds the server task through the ECS API and writes its
//                     IP to /taskmesh/server-ip; exits 0.
//   consul-client     essential; `taskmesh agent -retry-join-file /taskmesh/server-ip`;
//                     dependsOn discover-servers SUCCESS; health check `taskmesh
//                     service-health <service>`: HEALTHY once the service passes (T4), so a
//                     rolling update counts a new task only when it can take traffic, and a
//                     task whose service stays critical is replaced.
//   mesh-init         not essential; TASKMESH_CONFIG_JSON = the mesh config with
//                     bootstrapDir "/taskmesh"; dependsOn discover-servers SUCCESS.
//   sidecar-proxy     essential; `taskmesh proxy -c /taskmesh/bootstrap.json`; dependsOn
//                     mesh-init SUCCESS; health check `taskmesh net-dial 127.0.0.1:<public port>`.
//   the app's containers, unchanged except that each also depends on sidecar-proxy HEALTHY.
// One task-scoped volume, "taskmesh", is mounted at /taskmesh in the four mesh containers.
// The agent and the proxy are essential, unlike in consul-ecs's mesh-task module, so a task
// whose sidecar died is replaced instead of staying RUNNING and unreachable
// (reference/consul-ecs.md §10.4).
//
// The mesh config is validated with the parser mesh-init itself runs, so a config that expands
// is a config mesh-init accepts; the output is validated with the runtime's own
// RegisterTaskDefinition checks. Errors name the field. Pure: no I/O, no clock; thread-safe.

#include <nlohmann/json.hpp>

#include <string>

#include "base/result.h"

namespace taskmesh::up {

inline constexpr const char* kMeshVolume = "taskmesh";
inline constexpr const char* kMeshMountPath = "/taskmesh";
inline constexpr const char* kServerContainer = "consul-server";
inline constexpr const char* kDefaultServerFamily = "taskmesh-server";
// Where the taskmesh binary is inside every mesh container: the local runtime's `host` image
// mounts it there; an image for real ECS must put it there too.
inline constexpr const char* kBinaryInImage = "/usr/local/bin/taskmesh";

// How the mesh containers look; the flags of `taskmesh task-definition`.
struct MeshTaskOptions {
  std::string image = "host";                        // -image
  std::string serverService = kDefaultServerFamily;  // -server-service: the server's ECS service
  // Seconds between the health probes of sidecar-proxy and consul-client. Startup does not
  // wait for it on the local runtime, which probes sooner until the first pass
  // (runtime/README.md); on ECS the first HEALTHY comes after one interval (5 s minimum).
  int healthInterval = 10;
};

// `appTaskDefinition`: a RegisterTaskDefinition request (what `aws ecs
// register-task-definition --cli-input-json` takes). `meshConfig`: the TASKMESH_CONFIG_JSON
// fields without bootstrapDir (service, proxy, agentHttpAddr). Returns a request of the same
// shape. Errors are kInvalidArgument: "app task definition: ...", "mesh config: ...".
Result<nlohmann::json> expandMeshTask(const nlohmann::json& appTaskDefinition,
                                      const nlohmann::json& meshConfig,
                                      const MeshTaskOptions& options);

struct ServerTaskOptions {
  std::string image = "host";
  std::string family = kDefaultServerFamily;
  std::string defaultIntentionPolicy = "allow";  // allow | deny
};

// The server task: one essential container `consul-server` running `taskmesh server
// -bootstrap` with its HTTP API on 0.0.0.0:8500 in the task's network namespace, its data in
// the task volume, and a health check on the API port.
Result<nlohmann::json> serverTaskDefinition(const ServerTaskOptions& options);

}  // namespace taskmesh::up
