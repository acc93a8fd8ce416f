#pragma once
// The agent's local HTTP API (reference/consul-http-api.md §5–§7): /v1/agent/* is answered
// from the LocalState; catalog, health, KV, status and connect requests are forwarded to a
// server (blocking queries included), so an app only ever talks to its own agent.
//
// Thread: the agent's io_context, like everything it calls.

#include <functional>
#include <map>
#include <set>
#include <string>

#include "agent/anti_entropy.h"
#include "agent/check_runners.h"
#include "agent/connect_cache.h"
#include "agent/definitions.h"
#include "agent/local_state.h"
#include "agent/server_link.h"
#include "net/asio.h"
#include "net/http.h"

namespace taskmesh::agent {

struct AgentInfo {
  std::string nodeName;
  std::string nodeId;
  std::string datacenter;
  std::string advertiseAddress;
  std::string version;
};

class AgentApi {
 public:
  AgentApi(asio::io_context& io, LocalState& state, CheckRunners& runners, ServerLink& servers,
           AntiEntropy& sync, AgentInfo info, DecodeOptions options);

  Awaitable<net::HttpResponse> handle(net::HttpRequest& req);

  // Called after every change that must survive a restart (registrations, maintenance).
  void onDefinitionsChanged(std::function<void()> f) { definitionsChanged_ = std::move(f); }
  // Called by PUT /v1/agent/leave (after the node has left).
  void onLeave(std::function<void()> f) { leave_ = std::move(f); }
  // The services in maintenance (service ID, or "" for the node) and their reasons.
  void setMaintenance(const std::string& serviceId, bool enable, const std::string& reason);
  const std::map<std::string, std::string>& maintenance() const { return maintenance_; }
  // Parents whose sidecar was made from Connect.SidecarService (persisted with the state).
  const std::set<std::string>& managedSidecars() const { return managedSidecars_; }
  void setManagedSidecars(std::set<std::string> s) { managedSidecars_ = std::move(s); }

  // A sidecar port from 21000–21255 that no local service uses, or 0.
  int allocateSidecarPort(const std::string& sidecarId) const;

  // Wakes ContentHash-blocking readers of /v1/agent/service/:id.
  void servicesChanged();
  // Serves /v1/agent/connect/* from `cache` (owned by the caller; outlives this API).
  void setConnectCache(ConnectCache* cache) { connect_ = cache; }

 private:
  Awaitable<net::HttpResponse> agent(net::HttpRequest& req, std::string_view rest);
  Awaitable<net::HttpResponse> forward(const net::HttpRequest& req);
  Awaitable<net::HttpResponse> serviceById(const net::HttpRequest& req, const std::string& id);
  net::HttpResponse registerService(const net::HttpRequest& req);
  net::HttpResponse registerCheck(const net::HttpRequest& req);
  net::HttpResponse ttl(const net::HttpRequest& req, const std::string& id,
                        const std::string& status);
  net::HttpResponse maintenanceEndpoint(const net::HttpRequest& req, const std::string& id);
  net::HttpResponse localHealth(const net::HttpRequest& req, bool byName, const std::string& x);
  nlohmann::json self() const;
  nlohmann::json serviceJson(const store::Service& s) const;
  nlohmann::json checkJson(const LocalCheck& c) const;
  void definitionsChanged() {
    if (definitionsChanged_) definitionsChanged_();
  }

  asio::io_context& io_;
  LocalState& state_;
  CheckRunners& runners_;
  ServerLink& servers_;
  AntiEntropy& sync_;
  AgentInfo info_;
  DecodeOptions options_;
  std::function<void()> definitionsChanged_;
  std::function<void()> leave_;
  std::map<std::string, std::string> maintenance_;
  std::set<std::string> managedSidecars_;  // parents whose sidecar came from SidecarService
  std::vector<asio::steady_timer*> serviceWaiters_;
  ConnectCache* connect_ = nullptr;
};

}  // namespace taskmesh::agent
