#pragma once
// The agent's Connect cache (DESIGN.md §3, Agent; reference §13): what the task's sidecar
// needs, kept current from the servers and served locally.
//
//  - CA roots: one blocking watch of the servers' /v1/connect/ca/roots.
//  - Leaf certificates, one per service name: the key is made here (never leaves the agent),
//    a CSR goes to the servers (/v1/internal/connect/sign); renewed at a random point between
//    60 % and 90 % of the certificate's life, and at once when the active root changes.
//  - Intentions by destination: a blocking watch of /v1/connect/intentions/match per
//    destination service of a local proxy (or a target asked about by authorize), with the
//    servers' default policy (X-Consul-Default-ACL-Policy).
//  - Upstream endpoints: a blocking watch of /v1/health/connect/<name>?passing per upstream.
//  - Proxy snapshots: GET /v1/agent/connect/proxy/<proxy-id> assembles all of the above with
//    the proxy's local registration (connect::ProxySnapshot).
//
// Blocking: every change bumps one version counter and wakes every waiter; each waiter
// re-evaluates its own answer and keeps waiting while its index is unchanged. A snapshot's
// index changes only when its content does, so proxies do no work for others' changes.
//
// Watches are started for what local proxies need (servicesChanged() reconciles them) and
// stopped when no longer needed. Every watch retries with backoff 100 ms → 10 s, forever,
// and holds each server request at most kWatchWait.
//
// Thread: the agent's io_context, like everything in src/agent.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/local_state.h"
#include "agent/server_link.h"
#include "connect/proxy_config.h"
#include "net/asio.h"
#include "net/http.h"

namespace taskmesh::agent {

class ConnectCache {
 public:
  ConnectCache(asio::io_context& io, LocalState& state, ServerLink& servers,
               std::string datacenter);
  ~ConnectCache();

  // Starts the watches local proxies need. The roots watch starts with the first use of
  // Connect (a local connect-proxy or a request to a Connect endpoint), so an agent without
  // Connect does no Connect work. stop() ends every watch.
  void start();
  void stop();
  // Local services changed: reconcile watches and wake snapshot readers.
  void servicesChanged();

  // GET /v1/agent/connect/ca/roots (blocking)
  Awaitable<net::HttpResponse> roots(const net::HttpRequest& req);
  // GET /v1/agent/connect/ca/leaf/<service> (blocking)
  Awaitable<net::HttpResponse> leaf(const net::HttpRequest& req, const std::string& service);
  // POST /v1/agent/connect/authorize
  Awaitable<net::HttpResponse> authorize(const net::HttpRequest& req);
  // GET /v1/agent/connect/proxy/<proxy-id> (blocking)
  Awaitable<net::HttpResponse> proxy(const net::HttpRequest& req, const std::string& proxyId);

  struct Watch;  // one blocking watch of a server path (connect_cache.cc)
  struct Leaf;   // one service's leaf certificate and its renewal

 private:
  // What one answer of a blocking endpoint is: its body and index, or an error status.
  struct Answer {
    uint64_t index = 0;
    net::HttpResponse response;
    bool ready = true;  // false: not available yet; wait (up to the deadline) before answering
  };
  using Compute = std::function<Answer()>;
  // The shared blocking loop: answers when ready and (no ?index, or the index moved past it,
  // or ?wait ran out).
  Awaitable<net::HttpResponse> blocking(const net::HttpRequest& req, const Compute& compute);
  void changed();  // bump the version and wake every waiter

  std::shared_ptr<Watch> startWatch(const std::string& path);
  void ensureRoots();
  void reconcile();
  Leaf& leafFor(const std::string& service);
  void issue(const std::string& service);
  void scheduleRenewal(Leaf& leaf);
  void rootsChanged();

  std::string trustDomain() const;
  std::string activeRootId() const;
  std::vector<std::string> rootPems() const;
  std::optional<connect::ProxySnapshot> buildSnapshot(const LocalService& proxy,
                                                      std::string& notReady) const;

  asio::io_context& io_;
  LocalState& state_;
  ServerLink& servers_;
  std::string datacenter_;
  bool running_ = false;
  uint64_t version_ = 1;
  std::vector<asio::steady_timer*> waiters_;

  std::shared_ptr<Watch> roots_;
  std::map<std::string, std::shared_ptr<Watch>> intentions_;  // by destination name
  std::map<std::string, std::shared_ptr<Watch>> upstreams_;   // by upstream name
  std::map<std::string, std::unique_ptr<Leaf>> leaves_;       // by service name
  // Per proxy: the content hash of its last snapshot and the version it changed at.
  mutable std::map<std::string, std::pair<size_t, uint64_t>> snapshotIndex_;
};

}  // namespace taskmesh::agent
