#pragma once
// A task's startup as the architecture's timeline (DESIGN.md §2), from the runtime's recorded
// transitions and the moment the catalog first reported the task's service passing:
//   T0  the runtime starts the task (PROVISIONING); discover-servers looks for the server
//   T1  discover-servers exited 0: the server's IP is written; consul-client and mesh-init start
//   T2  mesh-init exited 0: service and sidecar registered, bootstrap written; the proxy starts
//   T3  sidecar-proxy HEALTHY: the app containers start
//   T4  the service passes in the catalog: upstream sidecars get the endpoint, traffic flows
// Times are Unix seconds (the runtime's timeline and the caller's clock are the same host's
// wall clock). Pure; thread-safe.

#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>

namespace taskmesh::up {

struct TaskPhases {
  std::array<std::optional<double>, 5> t;  // T0..T4

  bool complete() const;
  // {"t0": ..., ..., "t4": ..., "totalMs": ..., "phasesMs": [T0→T1, ..., T3→T4]}
  nlohmann::json toJson() const;
};

// `events`: the runtime's timeline ([{at, subject, event, detail}]); `passingAt`: T4 if known.
TaskPhases phasesFromTimeline(const nlohmann::json& events, std::optional<double> passingAt);

// Five lines, "  T0  +0 ms  ..." with each phase's duration, for `up`'s output.
std::string formatPhases(const TaskPhases& phases, const std::string& serviceName);

}  // namespace taskmesh::up
