#pragma once
// `taskmesh service-health NAME`: a container health check that passes when the local agent
// reports the service NAME passing (GET /v1/agent/health/service/name/NAME?format=text → 200).
// The mesh task gives it to consul-client (essential), so ECS counts a task healthy — for a
// rolling update's minimumHealthyPercent and for replacing sick tasks — only once its service
// passes in the catalog (T4), not merely when its containers run.
//
// Threads: runs on the calling thread; one request bounded by -timeout.

#include <string>

namespace taskmesh::init {

struct ServiceHealthOptions {
  std::string service;         // NAME (positional, required)
  std::string httpAddr;        // -http-addr ("" = CONSUL_HTTP_ADDR, then 127.0.0.1:8500)
  std::string timeout = "2s";  // -timeout (Go duration)
};

inline constexpr int kServiceHealthPassing = 0;
inline constexpr int kServiceHealthNotPassing = 1;  // warning, critical, unknown, or no answer

// Prints the agent's status ("passing", "critical", ...) or the error, and returns the exit code.
int runServiceHealth(const ServiceHealthOptions& options);

}  // namespace taskmesh::init
