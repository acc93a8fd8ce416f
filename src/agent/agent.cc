#include "agent/agent.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <random>

#include "agent/agent_api.h"
#include "agent/anti_entropy.h"
#include "agent/check_runners.h"
#include "agent/local_state.h"
#include "agent/server_link.h"
#include "api/codec.h"
#include "base/duration.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/node_id.h"
#include "net/http_server.h"

namespace taskmesh::agent {
namespace {

using Json = nlohmann::json;
constexpr const char* kVersion = "1.16.0-taskmesh";
constexpr const char* kStateFile = "local-state.json";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("agent");
  return l;
}

// The first IPv4 address of an interface that is up and not loopback (the task IP in ECS).
std::string firstPrivateIpv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "127.0.0.1";
  std::string out = "127.0.0.1";
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    if (std::string(buf).starts_with("127.")) continue;
    out = buf;
    break;
  }
  ::freeifaddrs(list);
  return out;
}

// What must survive an agent restart: service and check definitions, maintenance reasons,
// and which sidecars came from Connect.SidecarService.
std::string encodeState(const LocalState& state, const AgentApi& api, const CheckRunners& runners) {
  Json services = Json::array();
  for (const auto& [id, s] : state.services())
    services.push_back(api::encodeAgentService(s.service, false));
  Json checks = Json::array();
  // TTL checks also keep their status until their clock would have run out (wall clock, so
  // the time the agent was down counts).
  auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  Json ttl = Json::object();
  for (const auto& [id, c] : state.checks()) {
    if (c.definition.kind == CheckKind::kMaintenance) continue;
    checks.push_back(c.definition.toJson());
    if (auto left = runners.ttlRemaining(id)) {
      ttl[id] = {{"Status", c.check.status},
                 {"Output", c.check.output},
                 {"ExpiresUnixMs", nowMs + left->count()}};
    }
  }
  Json maintenance = Json::object();
  for (const auto& [id, reason] : api.maintenance()) maintenance[id] = reason;
  return Json{{"Services", services},
              {"Checks", checks},
              {"Maintenance", maintenance},
              {"ManagedSidecars", api.managedSidecars()},
              {"TTL", ttl}}
      .dump(1, ' ', false, Json::error_handler_t::replace);
}

void restoreState(const std::string& path, LocalState& state, AgentApi& api, CheckRunners& runners,
                  const DecodeOptions& options) {
  auto text = readFile(path);
  if (!text) return;  // first start
  auto parsed = parseJsonBounded(*text);
  if (!parsed || !parsed->is_object()) {
    logger()->error("ignoring unreadable state file={}", path);
    return;
  }
  Json& j = *parsed;
  if (j["Services"].is_array()) {
    for (const Json& s : j["Services"]) {
      auto service = api::decodeService(s, "Services");
      if (!service) {
        logger()->error("state file={}: skipping service: {}", path, service.error().message);
        continue;
      }
      state.addService(ServiceDefinition{*service, {}}, false);
    }
  }
  if (j["Checks"].is_array()) {
    for (const Json& c : j["Checks"]) {
      auto def = decodeCheckDefinition(c, "Checks", options);
      if (!def) {
        logger()->error("state file={}: skipping check: {}", path, def.error().message);
        continue;
      }
      (void)state.addCheck(*def);
    }
  }
  if (j["TTL"].is_object()) {
    auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    for (auto it = j["TTL"].begin(); it != j["TTL"].end(); ++it) {
      const Json& t = *it;
      std::string status = stringField(t, "Status");
      if (!api::isValidCheckStatus(status) || !t.contains("ExpiresUnixMs") ||
          !t["ExpiresUnixMs"].is_number_integer())
        continue;
      int64_t left = t["ExpiresUnixMs"].get<int64_t>() - nowMs;
      if (left > 0) {
        runners.restoreTtl(it.key(), status, stringField(t, "Output"),
                           std::chrono::milliseconds(left));
      }
    }
  }
  if (j["Maintenance"].is_object()) {
    for (auto it = j["Maintenance"].begin(); it != j["Maintenance"].end(); ++it) {
      if (it->is_string()) api.setMaintenance(it.key(), true, it->get<std::string>());
    }
  }
  if (j["ManagedSidecars"].is_array()) {
    std::set<std::string> managed;
    for (const Json& m : j["ManagedSidecars"]) {
      if (m.is_string()) managed.insert(m.get<std::string>());
    }
    api.setManagedSidecars(std::move(managed));
  }
  logger()->info("restored services={} checks={} from {}", state.services().size(),
                 state.checks().size(), path);
}

}  // namespace

int run(const AgentOptions& o) {
  if (!log::setLevel(o.logLevel)) {
    std::fprintf(stderr,
                 "taskmesh agent: invalid -log-level \"%s\" (want trace, debug, info, warn, err)\n",
                 o.logLevel.c_str());
    return 2;
  }
  if (o.dataDir.empty()) {
    std::fprintf(stderr, "taskmesh agent: -data-dir is required\n");
    return 2;
  }
  if (o.retryJoin.empty() && o.retryJoinFile.empty()) {
    std::fprintf(stderr, "taskmesh agent: give -retry-join ADDR or -retry-join-file FILE\n");
    return 2;
  }
  for (const auto& a : o.retryJoin) {
    if (auto n = normaliseServerAddress(a); !n) {
      std::fprintf(stderr, "taskmesh agent: -retry-join: %s\n", n.error().message.c_str());
      return 2;
    }
  }
  auto syncInterval = parsePositiveDurationFlag("-sync-interval", o.syncInterval);
  if (!syncInterval) {
    std::fprintf(stderr, "taskmesh agent: %s\n", syncInterval.error().message.c_str());
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.dataDir, ec);
  if (ec) {
    std::fprintf(stderr, "taskmesh agent: cannot create -data-dir %s: %s\n", o.dataDir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  auto nodeId = loadOrCreateNodeId(o.dataDir);
  if (!nodeId) {
    std::fprintf(stderr, "taskmesh agent: %s\n", nodeId.error().message.c_str());
    return 1;
  }
  AgentInfo info;
  if (o.node.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    info.nodeName = host;
  } else {
    info.nodeName = o.node;
  }
  info.nodeId = *nodeId;
  info.datacenter = o.datacenter;
  info.advertiseAddress = o.advertise.empty() ? firstPrivateIpv4() : o.advertise;
  info.version = kVersion;

  store::Node node;
  node.id = info.nodeId;
  node.name = info.nodeName;
  node.address = info.advertiseAddress;
  node.datacenter = info.datacenter;
  node.taggedAddresses = {{"lan", info.advertiseAddress}, {"wan", info.advertiseAddress}};

  asio::io_context io(1);
  ServerLinkOptions linkOptions;
  linkOptions.retryJoin = o.retryJoin;
  linkOptions.retryJoinFile = o.retryJoinFile;
  if (const char* token = std::getenv("CONSUL_HTTP_TOKEN")) linkOptions.token = token;
  ServerLink servers(io, linkOptions);
  LocalState state(info.nodeName);
  CheckRunners runners(io, state, servers);
  AntiEntropyOptions aeo;
  aeo.fullSyncInterval = *syncInterval;
  AntiEntropy sync(io, state, servers, node, aeo);
  DecodeOptions decodeOptions;
  decodeOptions.enableScriptChecks = o.enableScriptChecks;
  AgentApi api(io, state, runners, servers, sync, info, decodeOptions);
  ConnectCache connectCache(io, state, servers, info.datacenter);
  api.setConnectCache(&connectCache);

  std::string statePath = o.dataDir + "/" + kStateFile;
  bool restoring = true;
  bool saveQueued = false;
  auto save = [&] {
    if (restoring || saveQueued) return;
    saveQueued = true;
    asio::post(io, [&] {
      saveQueued = false;
      if (auto w = writeFileAtomic(statePath, encodeState(state, api, runners)); !w)
        logger()->error("cannot save agent state error=\"{}\"", w.error().message);
    });
  };
  LocalState::Listener listener;
  listener.syncNeeded = [&sync] { sync.kick(); };
  listener.checkAdded = [&runners](const std::string& id) { runners.start(id); };
  listener.checkRemoved = [&runners](const std::string& id) { runners.stop(id); };
  listener.checkChanged = [&runners, &io](const std::string& id) {
    // After the change completes: alias checks read the new state.
    asio::post(io, [&runners, id] { runners.localStatusChanged(id); });
  };
  listener.serviceChanged = [&api, &connectCache, &runners, &io, &save](const std::string&) {
    api.servicesChanged();
    connectCache.servicesChanged();
    asio::post(io, [&runners] { runners.localStatusChanged(""); });
    save();
  };
  state.setListener(listener);
  api.onDefinitionsChanged(save);
  runners.onTtlUpdated([&save](const std::string&) { save(); });
  restoreState(statePath, state, api, runners, decodeOptions);
  restoring = false;

  net::HttpServerOptions hso;
  hso.idleTimeout = std::chrono::milliseconds(660000);  // blocking queries up to 10 min
  net::HttpServer http(io, hso, [&api](net::HttpRequest& req) { return api.handle(req); });
  auto port = http.listen(o.httpAddr);
  if (!port) {
    std::fprintf(stderr, "taskmesh agent: -http-addr: %s\n", port.error().message.c_str());
    return 1;
  }

  bool leaving = false;
  auto shutdown = [&](bool leave) {
    if (leaving) return;
    leaving = true;
    http.stop();
    runners.stopAll();
    sync.stop();
    if (!leave) {
      io.stop();
      return;
    }
    // Deregister the node and its services before exiting, bounded.
    asio::co_spawn(io, sync.leave(std::chrono::milliseconds(5000)),
                   [&io](std::exception_ptr, Result<void> r) {
                     if (r) {
                       logger()->info("left: node deregistered");
                     } else {
                       logger()->warn("leave failed error=\"{}\"", r.error().message);
                     }
                     io.stop();
                   });
  };
  api.onLeave([&] {
    logger()->info("leave requested through the API");
    leaving = true;
    http.stop();
    runners.stopAll();
    sync.stop();
    io.stop();
  });

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    logger()->info("signal={} shutting down leave={}", sig, o.leaveOnTerminate);
    shutdown(o.leaveOnTerminate);
  });

  runners.startReaper();
  sync.start();
  connectCache.start();
  logger()->info("agent started node={} id={} address={} http={} servers={}", info.nodeName,
                 info.nodeId, info.advertiseAddress, o.httpAddr,
                 servers.addresses().empty() ? std::string("(waiting for the join file)")
                                             : servers.addresses().front());
  io.run();
  logger()->info("agent stopped");
  return 0;
}

}  // namespace taskmesh::agent
