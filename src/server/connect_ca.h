#pragma once
// The built-in Connect CA on the servers (DESIGN.md §3, reference §13): bootstraps the root
// when a leader finds none, rotates it on PUT /v1/connect/ca/configuration (the new root
// cross-signed by the old), prunes rotated-out roots once no leaf they signed can still be
// valid, and signs agents' CSRs (POST /v1/internal/connect/sign).
//
// Keys, randomness and the clock live here, outside the state machine: every change is
// computed from a read of the tables and replicated as one CaSetCommand carrying the
// caIndex it was computed from, so concurrent changes cannot interleave (the loser retries).
// Private keys of leaves never reach the servers: agents send CSRs.
//
// Thread: the HTTP io_context (the same thread as the API and Liveness).

#include <string>

#include "api/http_api.h"
#include "net/asio.h"
#include "net/http.h"
#include "store/state_store.h"

namespace taskmesh::server {

class ConnectCa {
 public:
  ConnectCa(asio::io_context& io, store::StateStore& store, api::Cluster& cluster,
            std::string datacenter);

  // Starts the leader's tick (bootstrap and pruning, once a second); stop() ends it.
  void start();
  void stop();
  // Runs a tick now (called when this server becomes leader, so the CA exists at once).
  void leaderReady();

  // PUT /v1/connect/ca/configuration: a new root with the given configuration.
  Awaitable<Result<void>> setConfig(const api::CaConfigUpdate& update);
  // POST /v1/internal/connect/sign with {"CSR": "<PEM>"}: the leaf JSON as the agent's
  // /v1/agent/connect/ca/leaf serves it (plus RootID, the root that signed it).
  net::HttpResponse sign(const net::HttpRequest& req);

 private:
  void tick();
  void schedule();

  asio::io_context& io_;
  store::StateStore& store_;
  api::Cluster& cluster_;
  std::string datacenter_;
  asio::steady_timer timer_;
  bool busy_ = false;  // a CA command is in flight (one at a time)
};

}  // namespace taskmesh::server
