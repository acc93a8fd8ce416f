#include "agent/anti_entropy.h"

#include <random>

#include "api/codec.h"
#include "base/json.h"
#include "base/log.h"
#include "net/http.h"

namespace taskmesh::agent {
namespace {

using Json = nlohmann::json;
constexpr std::chrono::milliseconds kWriteTimeout{10000};
// Named, because g++ 12 must not see temporaries bound to coroutine parameters.
const std::string kRegister = "/v1/catalog/register";
const std::string kDeregister = "/v1/catalog/deregister";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("agent");
  return l;
}

Json nodeJson(const store::Node& n) {
  Json j{{"Node", n.name}, {"Address", n.address}};
  if (!n.id.empty()) j["ID"] = n.id;
  if (!n.datacenter.empty()) j["Datacenter"] = n.datacenter;
  if (!n.taggedAddresses.empty()) j["TaggedAddresses"] = n.taggedAddresses;
  if (!n.meta.empty()) j["NodeMeta"] = n.meta;
  return j;
}

Json checkJson(const store::Check& c) {
  Json j{{"Node", c.node},           {"CheckID", c.checkId}, {"Name", c.name},
         {"Status", c.status},       {"Notes", c.notes},     {"Output", c.output},
         {"ServiceID", c.serviceId}, {"Type", c.type}};
  if (!c.definition.is_null()) j["Definition"] = c.definition;
  return j;
}

// What the servers must hold for a check, compared field by field.
bool sameCheck(const store::Check& local, const Json& remote) {
  return stringField(remote, "Name") == local.name &&
         stringField(remote, "Status") == local.status &&
         stringField(remote, "Output") == local.output &&
         stringField(remote, "Notes") == local.notes &&
         stringField(remote, "ServiceID") == local.serviceId;
}

}  // namespace

AntiEntropy::AntiEntropy(asio::io_context& io, LocalState& state, ServerLink& servers,
                         store::Node node, AntiEntropyOptions options)
    : io_(io),
      state_(state),
      servers_(servers),
      node_(std::move(node)),
      options_(options),
      wake_(io),
      heartbeatTimer_(io) {}

void AntiEntropy::start() {
  asio::co_spawn(io_, loop(), asio::detached);
  asio::co_spawn(io_, heartbeats(), asio::detached);
}

void AntiEntropy::stop() {
  stopped_ = true;
  wake_.cancel();
  heartbeatTimer_.cancel();
}

void AntiEntropy::kick() {
  kicked_ = true;
  wake_.cancel();
}

void AntiEntropy::requestFullSync() {
  fullRequested_ = true;
  kick();
}

Awaitable<Result<void>> AntiEntropy::put(const std::string& target, const Json& body) {
  auto r = co_await servers_.call(
      "PUT", target, body.dump(-1, ' ', false, Json::error_handler_t::replace), kWriteTimeout);
  if (!r) co_return makeError(r.error());
  joined_ = true;
  if (r->status != 200) {
    co_return makeError(ErrorCode::kUnavailable, "PUT " + target + " answered " +
                                                     std::to_string(r->status) + ": " + r->body);
  }
  co_return Result<void>{};
}

Awaitable<void> AntiEntropy::loop() {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  auto backoff = std::chrono::milliseconds(100);
  auto nextFull = std::chrono::steady_clock::now();
  while (!stopped_) {
    if (!kicked_ && !fullRequested_ && std::chrono::steady_clock::now() < nextFull) {
      wake_.expires_at(nextFull);
      boost::system::error_code ec;
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopped_) break;
    }
    kicked_ = false;
    bool full = fullRequested_ || std::chrono::steady_clock::now() >= nextFull;
    Result<void> r{};
    if (full) {
      fullRequested_ = false;
      r = co_await readBack();
    }
    if (r) r = co_await syncChanges();
    if (r) {
      if (full) {
        synced_ = true;
        // Spread full syncs of many agents: interval plus up to 25% jitter.
        auto jitter = options_.fullSyncInterval.count() / 4;
        nextFull = std::chrono::steady_clock::now() + options_.fullSyncInterval +
                   std::chrono::milliseconds(jitter > 0 ? rng() % jitter : 0);
      }
      backoff = std::chrono::milliseconds(100);
      continue;
    }
    logger()->warn("sync with the servers failed, retrying in {} ms error=\"{}\"", backoff.count(),
                   r.error().message);
    fullRequested_ = true;
    wake_.expires_after(backoff + std::chrono::milliseconds(rng() % (backoff.count() / 2 + 1)));
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    backoff = std::min(backoff * 2, options_.maxBackoff);
  }
}

Awaitable<Result<void>> AntiEntropy::readBack() {
  std::string nodePath = net::percentEncodePathSegment(node_.name);
  std::string servicesTarget = "/v1/catalog/node-services/" + nodePath;
  auto services = co_await servers_.call("GET", servicesTarget, "", kWriteTimeout);
  if (!services) co_return makeError(services.error());
  joined_ = true;
  if (services->status != 200 && services->status != 404) {
    co_return makeError(ErrorCode::kUnavailable,
                        "GET " + servicesTarget + " answered " + std::to_string(services->status));
  }
  std::string checksTarget = "/v1/health/node/" + nodePath;
  auto checks = co_await servers_.call("GET", checksTarget, "", kWriteTimeout);
  if (!checks) co_return makeError(checks.error());
  if (checks->status != 200) {
    co_return makeError(ErrorCode::kUnavailable,
                        "GET " + checksTarget + " answered " + std::to_string(checks->status));
  }
  Json sj = Json::parse(services->body, nullptr, false);
  Json cj = Json::parse(checks->body, nullptr, false);
  if (!cj.is_array()) co_return makeError(ErrorCode::kUnavailable, checksTarget + ": not a list");

  state_.markAllOutOfSync();  // then mark back what the servers already hold
  nodeInSync_ = false;
  if (sj.is_object() && sj["Node"].is_object()) {
    const Json& n = sj["Node"];
    nodeInSync_ = stringField(n, "Address") == node_.address && stringField(n, "ID") == node_.id;
    if (sj["Services"].is_array()) {
      std::set<std::string> seen;
      for (const Json& s : sj["Services"]) {
        auto remote = api::decodeService(s, "Services");
        if (!remote) continue;
        const LocalService* local = state_.service(remote->id);
        if (local == nullptr) {
          state_.deletedServices().insert(remote->id);
        } else if (store::sameContent(local->service, *remote)) {
          state_.markServiceInSync(remote->id);
        }
      }
    }
  }
  for (const Json& c : cj) {
    std::string id = stringField(c, "CheckID");
    if (id == "serfHealth") continue;  // maintained by the leader
    const LocalCheck* local = state_.check(id);
    if (local == nullptr) {
      // A check of a service being deregistered goes with it.
      std::string sid = stringField(c, "ServiceID");
      if (sid.empty() || !state_.deletedServices().contains(sid)) state_.deletedChecks().insert(id);
    } else if (sameCheck(local->check, c)) {
      state_.markCheckInSync(id);
    }
  }
  co_return Result<void>{};
}

Awaitable<Result<void>> AntiEntropy::syncChanges() {
  std::string node = node_.name;
  if (!nodeInSync_) {
    Json body = nodeJson(node_);
    auto r = co_await put(kRegister, body);
    if (!r) co_return r;
    nodeInSync_ = true;
    heartbeatTimer_.cancel();  // heartbeat now: the leader adds serfHealth on the first one
  }
  std::vector<std::string> services(state_.deletedServices().begin(),
                                    state_.deletedServices().end());
  for (const auto& id : services) {
    if (state_.service(id) != nullptr) {  // registered again meanwhile
      state_.deletedServices().erase(id);
      continue;
    }
    Json body{{"Node", node}, {"ServiceID", id}};
    auto r = co_await put(kDeregister, body);
    if (!r) co_return r;
    if (state_.service(id) == nullptr) state_.deletedServices().erase(id);
  }
  std::vector<std::string> checks(state_.deletedChecks().begin(), state_.deletedChecks().end());
  for (const auto& id : checks) {
    if (state_.check(id) != nullptr) {
      state_.deletedChecks().erase(id);
      continue;
    }
    Json body{{"Node", node}, {"CheckID", id}};
    auto r = co_await put(kDeregister, body);
    if (!r) co_return r;
    if (state_.check(id) == nullptr) state_.deletedChecks().erase(id);
  }
  // Services with anything out of sync go as one write each: the service and all its checks.
  std::vector<std::string> dirty;
  for (const auto& [id, s] : state_.services()) {
    bool need = !s.inSync;
    for (const LocalCheck* c : state_.checksOf(id)) need = need || !c->inSync;
    if (need) dirty.push_back(id);
  }
  for (const auto& id : dirty) {
    const LocalService* s = state_.service(id);
    if (s == nullptr) continue;
    store::Service sent = s->service;
    std::vector<store::Check> sentChecks;
    Json body = nodeJson(node_);
    body["SkipNodeUpdate"] = true;
    Json service = api::encodeAgentService(sent, false);
    body["Service"] = service;
    Json list = Json::array();
    for (const LocalCheck* c : state_.checksOf(id)) {
      sentChecks.push_back(c->check);
      list.push_back(checkJson(c->check));
    }
    body["Checks"] = list;
    auto r = co_await put(kRegister, body);
    if (!r) co_return r;
    if (const LocalService* now = state_.service(id); now && now->service == sent)
      state_.markServiceInSync(id);
    for (const auto& c : sentChecks) {
      if (const LocalCheck* now = state_.check(c.checkId); now && now->check == c)
        state_.markCheckInSync(c.checkId);
    }
  }
  // Node-level checks, together in one write.
  std::vector<store::Check> nodeChecks;
  Json list = Json::array();
  for (const auto& [id, c] : state_.checks()) {
    if (c.definition.serviceId.empty() && !c.inSync) {
      nodeChecks.push_back(c.check);
      list.push_back(checkJson(c.check));
    }
  }
  if (!nodeChecks.empty()) {
    Json body = nodeJson(node_);
    body["SkipNodeUpdate"] = true;
    body["Checks"] = list;
    auto r = co_await put(kRegister, body);
    if (!r) co_return r;
    for (const auto& c : nodeChecks) {
      if (const LocalCheck* now = state_.check(c.checkId); now && now->check == c)
        state_.markCheckInSync(c.checkId);
    }
  }
  co_return Result<void>{};
}

Awaitable<void> AntiEntropy::heartbeats() {
  std::chrono::milliseconds interval(1000);
  std::string target = "/v1/internal/heartbeat/" + net::percentEncodePathSegment(node_.name);
  while (!stopped_) {
    auto r = co_await servers_.call("PUT", target, "", std::chrono::milliseconds(5000));
    if (r) {
      joined_ = true;
      if (r->status == 404) {
        // The servers do not know this node (never registered, or reaped): register it all.
        logger()->info("servers do not know node={}, registering it again", node_.name);
        nodeInSync_ = false;
        requestFullSync();
      } else if (r->status == 200) {
        Json j = Json::parse(r->body, nullptr, false);
        if (j.is_object() && j["IntervalMs"].is_number_integer()) {
          interval = std::chrono::milliseconds(
              std::clamp<int64_t>(j["IntervalMs"].get<int64_t>(), 100, 60000));
        }
      }
    } else {
      logger()->debug("heartbeat failed error=\"{}\"", r.error().message);
    }
    heartbeatTimer_.expires_after(interval);
    boost::system::error_code ec;
    co_await heartbeatTimer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

Awaitable<Result<void>> AntiEntropy::leave(std::chrono::milliseconds timeout) {
  Json body{{"Node", node_.name}};
  auto r = co_await servers_.call("PUT", "/v1/catalog/deregister", body.dump(), timeout);
  if (!r) co_return makeError(r.error());
  if (r->status != 200)
    co_return makeError(ErrorCode::kUnavailable, "deregistering the node answered " +
                                                     std::to_string(r->status) + ": " + r->body);
  co_return Result<void>{};
}

}  // namespace taskmesh::agent
