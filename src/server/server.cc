#include "server/server.h"

#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <vector>

#include "api/http_api.h"
#include "base/duration.h"
#include "base/file.h"
#include "base/log.h"
#include "base/node_id.h"
#include "net/http_server.h"
#include "raft/raft_node.h"
#include "server/connect_ca.h"
#include "server/liveness.h"
#include "store/state_store.h"
#include "store/watch_hub.h"

namespace taskmesh::server {
namespace {

constexpr const char* kVersion = "1.16.0-taskmesh";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("server");
  return l;
}

// Carries completions from the Raft thread to the HTTP thread in batches: the Raft thread
// adds them while it applies a turn's entries and flushes once per turn, so N writes
// committed together wake the HTTP thread once instead of 2N times. add() may also run on a
// caller's thread (a proposal refused at shutdown), hence the mutex.
class Mailbox {
 public:
  explicit Mailbox(asio::io_context& io) : io_(io) {}
  void add(std::function<void()> work) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(work));
  }
  void flush() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(items_);
    }
    if (batch.empty()) return;
    asio::post(io_, [batch = std::move(batch)] {
      for (const auto& work : batch) work();
    });
  }

 private:
  asio::io_context& io_;
  std::mutex mu_;  // guards items_
  std::vector<std::function<void()>> items_;
};

// Suspends until the Raft node has applied `command` (or refused it). Not a coroutine itself:
// it returns the awaitable of the asynchronous operation, so no coroutine frame owns `bytes`.
Awaitable<Result<store::ApplyResult>> propose(raft::RaftNode& node, Mailbox& mailbox,
                                              const store::Command& command) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result<store::ApplyResult>)>(
      [&node, &mailbox](auto handler, std::string bytes) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        node.propose(std::move(bytes), [h, &mailbox](Result<store::ApplyResult> r) {
          mailbox.add([h, r = std::move(r)] { (*h)(r); });
        });
      },
      asio::use_awaitable, store::encodeCommand(command));
}

// The server's own catalog entry: its node, the `consul` service and serfHealth.
store::RegisterCommand selfRegistration(const api::ServerInfo& info) {
  store::RegisterCommand c;
  c.node.id = info.nodeId;
  c.node.name = info.nodeName;
  c.node.address = info.advertiseAddress;
  c.node.datacenter = info.datacenter;
  c.node.taggedAddresses = {{"lan", info.advertiseAddress}, {"wan", info.advertiseAddress}};
  c.node.meta = {{"consul-network-segment", ""}};
  store::Service s;
  s.id = s.service = "consul";
  s.port = info.serverPort;
  c.service = s;
  store::Check serf;
  serf.checkId = "serfHealth";
  serf.name = "Serf Health Status";
  serf.status = store::kPassing;
  serf.output = "Agent alive and reachable";
  serf.type = "";
  c.checks.push_back(serf);
  return c;
}

// Keeps the server's own node, `consul` service and serfHealth in the catalog. Idempotent:
// an unchanged registration changes no index.
Awaitable<void> registerSelf(raft::RaftNode& node, Mailbox& mailbox, const api::ServerInfo& info) {
  store::Command self = selfRegistration(info);
  auto r = co_await propose(node, mailbox, self);
  if (!r) logger()->warn("self registration failed error=\"{}\"", r.error().message);
}

}  // namespace

int run(const ServerOptions& o) {
  if (!log::setLevel(o.logLevel)) {
    std::fprintf(
        stderr, "taskmesh server: invalid -log-level \"%s\" (want trace, debug, info, warn, err)\n",
        o.logLevel.c_str());
    return 2;
  }
  if (o.dataDir.empty()) {
    std::fprintf(stderr, "taskmesh server: -data-dir is required\n");
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.dataDir, ec);
  if (ec) {
    std::fprintf(stderr, "taskmesh server: cannot create -data-dir %s: %s\n", o.dataDir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  LivenessOptions lo;
  raft::RaftOptions ro;
  for (auto [flag, text, out] :
       {std::tuple{"-node-failure-timeout", &o.nodeFailureTimeout, &lo.failureTimeout},
        std::tuple{"-reconnect-timeout", &o.reconnectTimeout, &lo.reconnectTimeout},
        std::tuple{"-raft-snapshot-interval", &o.raftSnapshotInterval, &ro.snapshotInterval}}) {
    auto d = parsePositiveDurationFlag(flag, *text);
    if (!d) {
      std::fprintf(stderr, "taskmesh server: %s\n", d.error().message.c_str());
      return 2;
    }
    *out = *d;
  }
  auto nodeId = loadOrCreateNodeId(o.dataDir);
  if (!nodeId) {
    std::fprintf(stderr, "taskmesh server: %s\n", nodeId.error().message.c_str());
    return 1;
  }
  api::ServerInfo info;
  info.nodeId = *nodeId;
  if (o.node.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    info.nodeName = host;
  } else {
    info.nodeName = o.node;
  }
  info.datacenter = o.datacenter;
  info.advertiseAddress = o.advertiseAddr.empty() ? o.bindAddr : o.advertiseAddr;
  info.serverPort = o.serverPort;
  info.version = kVersion;
  if (o.defaultIntentionPolicy != "allow" && o.defaultIntentionPolicy != "deny") {
    std::fprintf(stderr,
                 "taskmesh server: -default-intention-policy must be allow or deny, got \"%s\"\n",
                 o.defaultIntentionPolicy.c_str());
    return 2;
  }
  info.defaultIntentionAllow = o.defaultIntentionPolicy == "allow";
  std::string raftAddress = info.advertiseAddress + ":" + std::to_string(o.serverPort);

  asio::io_context io(1);
  store::StateStore store;
  store::WatchHub hub;
  Mailbox mailbox(io);
  raft::Hooks hooks;
  hooks.applied = [&mailbox, &hub](const store::ApplyResult& r) {
    if (r.changes.empty()) return;
    mailbox.add([&hub, changes = r.changes] { hub.notify(changes); });
  };
  hooks.turnDone = [&mailbox] { mailbox.flush(); };
  raft::RaftNode* nodePtr = nullptr;
  ConnectCa* caPtr = nullptr;
  hooks.leaderReady = [&io, &info, &nodePtr, &mailbox, &caPtr] {
    asio::post(io, [&io, &info, &nodePtr, &mailbox, &caPtr] {
      asio::co_spawn(io, registerSelf(*nodePtr, mailbox, info), asio::detached);
      if (caPtr) caPtr->leaderReady();
    });
  };
  ro.dataDir = o.dataDir + "/raft";
  ro.snapshotThreshold = o.raftSnapshotThreshold;
  ro.address = raftAddress;
  ro.bootstrap = o.bootstrap;
  raft::RaftNode node(store, ro, hooks);
  nodePtr = &node;

  api::Cluster cluster;
  cluster.apply = [&node, &mailbox](const store::Command& c) { return propose(node, mailbox, c); };
  cluster.isLeader = [&node] { return node.isLeader(); };
  cluster.knownLeader = [&node] { return node.knownLeader(); };
  cluster.leaderAddress = [&node] { return node.leaderAddress(); };
  cluster.peers = [raftAddress] { return std::vector<std::string>{raftAddress}; };
  api::HttpApi httpApi(io, store, hub, cluster, info);
  Liveness liveness(io, store, cluster, info.nodeName, lo);
  ConnectCa ca(io, store, cluster, info.datacenter);
  caPtr = &ca;
  httpApi.setConnectHooks(api::ConnectHooks{
      .setCaConfig = [&ca](const api::CaConfigUpdate& u) { return ca.setConfig(u); }});
  httpApi.setInternalHandler([&liveness, &ca](const net::HttpRequest& req, std::string_view rest) {
    if (rest == "connect/sign") return ca.sign(req);
    if (rest.starts_with("heartbeat/") && rest.size() > 10) {
      if (req.method != "PUT" && req.method != "POST")
        return net::HttpResponse::text(405, "method " + req.method + " not allowed");
      return liveness.heartbeat(std::string(rest.substr(10)));
    }
    return net::HttpResponse::text(
        404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
  });

  net::HttpServerOptions hso;
  hso.maxBodyBytes = 1 << 20;
  net::HttpServer http(io, hso, [&httpApi](net::HttpRequest& req) { return httpApi.handle(req); });

  if (auto started = node.start(); !started) {
    std::fprintf(stderr, "taskmesh server: %s\n", started.error().message.c_str());
    return 1;
  }
  auto port = http.listen(o.httpAddr);
  if (!port) {
    std::fprintf(stderr, "taskmesh server: -http-addr: %s\n", port.error().message.c_str());
    node.stop();
    return 1;
  }
  logger()->info("server started node={} datacenter={} http={} raft={} bootstrap={}", info.nodeName,
                 info.datacenter, o.httpAddr, raftAddress, o.bootstrap);

  liveness.start();
  ca.start();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    logger()->info("signal={} shutting down", sig);
    liveness.stop();
    ca.stop();
    http.stop();
    io.stop();
  });
  io.run();
  node.stop();
  logger()->info("server stopped");
  return 0;
}

}  // namespace taskmesh::server
