#include "server/liveness.h"

#include "base/log.h"

namespace taskmesh::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kSerfHealth = "serfHealth";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("server");
  return l;
}

store::Command serfHealth(const store::Node& node, const std::string& status,
                          const std::string& output) {
  store::RegisterCommand c;
  c.node = node;
  c.node.createIndex = c.node.modifyIndex = 0;
  c.skipNodeUpdate = true;
  store::Check check;
  check.node = node.name;
  check.checkId = kSerfHealth;
  check.name = "Serf Health Status";
  check.status = status;
  check.output = output;
  c.checks.push_back(check);
  return c;
}

Awaitable<void> applyThenClear(api::Cluster& cluster, std::unordered_set<std::string>& pending,
                               std::string node, store::Command command) {
  auto r = co_await cluster.apply(command);
  if (!r) logger()->warn("liveness update node={} failed error=\"{}\"", node, r.error().message);
  pending.erase(node);
}

}  // namespace

Liveness::Liveness(asio::io_context& io, store::StateStore& store, api::Cluster& cluster,
                   std::string selfNode, LivenessOptions options)
    : io_(io),
      store_(store),
      cluster_(cluster),
      self_(std::move(selfNode)),
      options_(options),
      timer_(io) {}

std::chrono::milliseconds Liveness::heartbeatInterval() const {
  return std::clamp(options_.failureTimeout / 5, std::chrono::milliseconds(200),
                    std::chrono::milliseconds(2000));
}

void Liveness::start() {
  timer_.expires_after(std::min(heartbeatInterval(), std::chrono::milliseconds(500)));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    tick();
    start();
  });
}

void Liveness::stop() { timer_.cancel(); }

void Liveness::propose(const std::string& node, store::Command command) {
  if (pending_.contains(node)) return;
  pending_.insert(node);
  asio::co_spawn(io_, applyThenClear(cluster_, pending_, node, std::move(command)), asio::detached);
}

net::HttpResponse Liveness::heartbeat(const std::string& node) {
  if (!cluster_.isLeader()) return net::HttpResponse::text(500, "No cluster leader");
  struct Seen {
    bool known = false;
    store::Node row;
    std::string status;  // of serfHealth, "" when absent
  };
  Seen seen = store_.read([&node](const store::Tables& t) {
    Seen s;
    auto it = t.nodes.find(node);
    if (it == t.nodes.end()) return s;
    s.known = true;
    s.row = it->second.node;
    if (auto c = it->second.checks.find(kSerfHealth); c != it->second.checks.end())
      s.status = c->second.status;
    return s;
  });
  if (!seen.known) return net::HttpResponse::text(404, "Unknown node \"" + node + "\"");
  lastHeard_[node] = Clock::now();
  if (seen.status != store::kPassing && node != self_) {
    if (!seen.status.empty()) logger()->info("node={} is alive again", node);
    propose(node, serfHealth(seen.row, store::kPassing, "Agent alive and reachable"));
  }
  return net::HttpResponse::json("{\"IntervalMs\":" + std::to_string(heartbeatInterval().count()) +
                                 "}");
}

void Liveness::tick() {
  if (!cluster_.isLeader()) {
    leader_ = false;
    lastHeard_.clear();
    return;
  }
  auto now = Clock::now();
  if (!leader_) {
    // A new leader has heard nobody yet: everyone starts with a full timeout of grace.
    leader_ = true;
    lastHeard_.clear();
  }
  struct Watched {
    store::Node row;
    std::string status;
  };
  auto watched = store_.read([this](const store::Tables& t) {
    std::vector<Watched> out;
    for (const auto& [name, entry] : t.nodes) {
      if (name == self_) continue;
      auto c = entry.checks.find(kSerfHealth);
      if (c != entry.checks.end()) out.push_back({entry.node, c->second.status});
    }
    return out;
  });
  std::unordered_map<std::string, Clock::time_point> still;
  for (const auto& w : watched) {
    const std::string& name = w.row.name;
    auto it = lastHeard_.find(name);
    Clock::time_point heard = it == lastHeard_.end() ? now : it->second;
    still[name] = heard;
    auto silent = now - heard;
    if (silent > options_.failureTimeout + options_.reconnectTimeout) {
      logger()->warn("reaping node={} silent for {} s", name,
                     std::chrono::duration_cast<std::chrono::seconds>(silent).count());
      store::DeregisterCommand d;
      d.node = name;
      propose(name, d);
    } else if (silent > options_.failureTimeout && w.status == store::kPassing) {
      logger()->warn("node={} missed its heartbeats for {} ms, marking it critical", name,
                     std::chrono::duration_cast<std::chrono::milliseconds>(silent).count());
      propose(name, serfHealth(w.row, store::kCritical, "Agent not live or unreachable"));
    }
  }
  lastHeard_ = std::move(still);
}

}  // namespace taskmesh::server
