#pragma once
// Node liveness on the leader (DESIGN.md §3): agents send PUT /v1/internal/heartbeat/<node>;
// a node that stays silent longer than `failureTimeout` gets its serfHealth check turned
// critical (a Raft command), so its services drop out of ?passing; one silent for
// `reconnectTimeout` more is deregistered (reaped) with everything on it. A heartbeat from a
// node whose serfHealth is missing or critical turns it passing again. A node the catalog does
// not know is answered 404, which tells its agent to register it again.
//
// Only nodes with a serfHealth check are watched: nodes registered through the catalog API
// (external nodes) have none and are never reaped, as in Consul. The server's own node is
// kept passing by the server itself.
//
// Thread: the HTTP io_context. The last-heard times live only in the leader's memory; a new
// leader gives every node a full failureTimeout of grace before judging it.

#include <chrono>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "api/http_api.h"
#include "net/asio.h"
#include "net/http.h"
#include "store/state_store.h"

namespace taskmesh::server {

struct LivenessOptions {
  std::chrono::milliseconds failureTimeout{5000};      // -node-failure-timeout
  std::chrono::milliseconds reconnectTimeout{900000};  // -reconnect-timeout
};

class Liveness {
 public:
  Liveness(asio::io_context& io, store::StateStore& store, api::Cluster& cluster,
           std::string selfNode, LivenessOptions options);

  void start();
  void stop();
  // PUT /v1/internal/heartbeat/<node>
  net::HttpResponse heartbeat(const std::string& node);
  // The interval agents are asked to heartbeat at: a fifth of the failure timeout, 0.2–2 s.
  std::chrono::milliseconds heartbeatInterval() const;

 private:
  void tick();
  void propose(const std::string& node, store::Command command);

  asio::io_context& io_;
  store::StateStore& store_;
  api::Cluster& cluster_;
  std::string self_;
  LivenessOptions options_;
  asio::steady_timer timer_;
  bool leader_ = false;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> lastHeard_;
  std::unordered_set<std::string> pending_;  // nodes with a liveness command in flight
};

}  // namespace taskmesh::server
