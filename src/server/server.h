#pragma once
// `taskmesh server`: the control plane (DESIGN.md §3).
//
// Threads: the calling thread runs the HTTP io_context (API, WatchHub, blocking queries);
// the Raft thread runs libraft and applies commands to the store.

#include <cstdint>
#include <string>

namespace taskmesh::server {

struct ServerOptions {
  std::string dataDir;                           // -data-dir (required)
  std::string httpAddr = "127.0.0.1:8500";       // -http-addr
  std::string bindAddr = "127.0.0.1";            // -bind: address for Raft traffic
  std::string advertiseAddr;                     // -advertise: defaults to -bind
  uint16_t serverPort = 8300;                    // -server-port: Raft port
  bool bootstrap = false;                        // -bootstrap
  std::string node;                              // -node: defaults to the host name
  std::string datacenter = "dc1";                // -datacenter
  std::string logLevel = "info";                 // -log-level
  std::string nodeFailureTimeout = "5s";         // -node-failure-timeout: silent node → critical
  std::string reconnectTimeout = "15m";          // -reconnect-timeout: critical node → reaped
  std::string defaultIntentionPolicy = "allow";  // -default-intention-policy: allow | deny
  // Consul's raft_snapshot_threshold and raft_snapshot_interval (raft::RaftOptions).
  unsigned raftSnapshotThreshold = 16384;    // -raft-snapshot-threshold: entries
  std::string raftSnapshotInterval = "30s";  // -raft-snapshot-interval
};

// Runs until SIGINT/SIGTERM. Returns the process exit code.
int run(const ServerOptions& options);

}  // namespace taskmesh::server
