#pragma once
// `taskmesh agent`: the client in every task (DESIGN.md §3, Agent). Joins the servers, serves
// the local agent API, runs the task's checks and keeps the servers' view of its node right.
//
// Threads: one — the calling thread runs the io_context that everything in src/agent uses.

#include <chrono>
#include <string>
#include <vector>

namespace taskmesh::agent {

struct AgentOptions {
  std::vector<std::string> retryJoin;       // -retry-join HOST[:PORT] (repeatable)
  std::string retryJoinFile;                // -retry-join-file FILE
  std::string node;                         // -node (default: host name)
  std::string dataDir;                      // -data-dir (required)
  std::string httpAddr = "127.0.0.1:8500";  // -http-addr
  std::string advertise;                    // -advertise (default: first non-loopback IPv4)
  std::string datacenter = "dc1";           // -datacenter
  bool leaveOnTerminate = false;            // -leave-on-terminate
  bool enableScriptChecks = false;          // -enable-script-checks / -enable-local-script-checks
  std::string syncInterval = "60s";         // -sync-interval: period of the full anti-entropy
  std::string logLevel = "info";            // -log-level
};

// Runs until SIGINT/SIGTERM or PUT /v1/agent/leave. Returns the process exit code.
int run(const AgentOptions& options);

}  // namespace taskmesh::agent
