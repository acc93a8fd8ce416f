#include "agent/connect_cache.h"

#include <functional>
#include <random>

#include "api/query.h"
#include "base/json.h"
#include "base/log.h"
#include "connect/ca.h"
#include "connect/intentions.h"
#include "connect/spiffe.h"

namespace taskmesh::agent {
namespace {

using net::HttpResponse;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kWatchWait = "60s";
constexpr milliseconds kWatchRequestTimeout{75000};  // kWatchWait + its jitter + slack
constexpr milliseconds kSignTimeout{10000};
constexpr milliseconds kBackoffInitial{100};
constexpr milliseconds kBackoffMax{10000};
constexpr milliseconds kAuthorizeWait{10000};

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("connect");
  return l;
}

int intField(const json& obj, const char* key, int fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return fallback;
  int64_t v = it->get<int64_t>();
  return v >= 0 && v <= 0x7fffffff ? static_cast<int>(v) : fallback;
}

const json& member(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

Awaitable<void> sleepFor(asio::io_context& io, milliseconds d) {
  asio::steady_timer t(io, d);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// Random point between 60 % and 90 % of [issued, notAfter) (Consul's calculateSoftExpiry).
std::chrono::system_clock::duration renewAfter(std::chrono::system_clock::duration lifetime) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> pick(0.6, 0.9);
  return std::chrono::duration_cast<std::chrono::system_clock::duration>(lifetime * pick(rng));
}

}  // namespace

struct ConnectCache::Watch {
  std::string path;
  uint64_t index = 0;
  json body;
  bool ready = false;
  bool defaultAllow = true;
  bool stopped = false;
  bool pinned = false;  // started by authorize: kept while the agent runs
  std::function<void()> onChange;
};

struct ConnectCache::Leaf {
  std::string service;
  json answer;         // the agent's leaf JSON (with the private key); null until issued
  std::string rootId;  // the root that signed it
  uint64_t index = 0;
  bool issuing = false;
  std::unique_ptr<asio::steady_timer> renewal;
};

namespace {

// One blocking watch: long-polls `w->path` on the servers until stopped.
Awaitable<void> runWatch(asio::io_context* io, ServerLink* servers,
                         std::shared_ptr<ConnectCache::Watch> w) {
  milliseconds backoff = kBackoffInitial;
  while (!w->stopped) {
    std::string target = w->path + (w->path.find('?') == std::string::npos ? "?" : "&") +
                         "index=" + std::to_string(w->index) + "&wait=" + kWatchWait;
    auto r = co_await servers->call("GET", target, "", kWatchRequestTimeout);
    if (w->stopped) break;
    Result<json> parsed = makeError(ErrorCode::kUnavailable, "no answer");
    if (r && r->status == 200) parsed = parseJsonBounded(r->body);
    if (!parsed) {
      logger()->debug("watch path={} failed status={} error=\"{}\"", w->path, r ? r->status : 0,
                      r ? r->body.substr(0, 200) : r.error().message);
      co_await sleepFor(*io, backoff);
      backoff = std::min(backoff * 2, kBackoffMax);
      continue;
    }
    backoff = kBackoffInitial;
    uint64_t index = 0;
    if (auto i = api::parseUint(r->header("x-consul-index"), "X-Consul-Index")) index = *i;
    bool allow = r->header("x-consul-default-acl-policy") != "deny";
    bool changed = !w->ready || *parsed != w->body || allow != w->defaultAllow;
    // An index that went backwards (servers restored a snapshot) restarts from 0.
    w->index = index < w->index ? 0 : index;
    w->defaultAllow = allow;
    if (changed) {
      w->body = std::move(*parsed);
      w->ready = true;
      if (w->onChange) w->onChange();
    }
  }
}

}  // namespace

ConnectCache::ConnectCache(asio::io_context& io, LocalState& state, ServerLink& servers,
                           std::string datacenter)
    : io_(io), state_(state), servers_(servers), datacenter_(std::move(datacenter)) {}

ConnectCache::~ConnectCache() { stop(); }

void ConnectCache::start() {
  running_ = true;
  reconcile();
}

void ConnectCache::ensureRoots() {
  if (roots_ || !running_) return;
  roots_ = startWatch("/v1/connect/ca/roots");
  roots_->onChange = [this] { rootsChanged(); };
}

void ConnectCache::stop() {
  running_ = false;
  if (roots_) roots_->stopped = true;
  for (auto& [k, w] : intentions_) w->stopped = true;
  for (auto& [k, w] : upstreams_) w->stopped = true;
  for (auto& [k, l] : leaves_) {
    if (l->renewal) l->renewal->cancel();
  }
  changed();
}

void ConnectCache::servicesChanged() {
  if (running_) reconcile();
  changed();
}

void ConnectCache::changed() {
  ++version_;
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto* t : waiters) t->cancel();
}

std::shared_ptr<ConnectCache::Watch> ConnectCache::startWatch(const std::string& path) {
  auto w = std::make_shared<Watch>();
  w->path = path;
  w->onChange = [this] { changed(); };
  std::shared_ptr<Watch> copy = w;
  asio::co_spawn(io_, runWatch(&io_, &servers_, copy), asio::detached);
  return w;
}

void ConnectCache::reconcile() {
  std::set<std::string> destinations;
  std::set<std::string> upstreams;
  for (const auto& [id, s] : state_.services()) {
    if (s.service.kind != "connect-proxy") continue;
    std::string dest = stringField(s.service.proxy, "DestinationServiceName");
    if (!dest.empty()) destinations.insert(dest);
    const json& ups = member(s.service.proxy, "Upstreams");
    if (!ups.is_array()) continue;
    for (const auto& u : ups) {
      std::string type = stringField(u, "DestinationType", "service");
      std::string name = stringField(u, "DestinationName");
      if (!name.empty() && (type.empty() || type == "service")) upstreams.insert(name);
    }
  }
  if (!destinations.empty()) ensureRoots();
  for (const auto& d : destinations) {
    if (!intentions_.contains(d)) {
      intentions_[d] = startWatch("/v1/connect/intentions/match?by=destination&name=" + d);
    }
    leafFor(d);
  }
  for (const auto& u : upstreams) {
    if (!upstreams_.contains(u)) upstreams_[u] = startWatch("/v1/health/connect/" + u + "?passing");
  }
  std::erase_if(intentions_, [&](auto& kv) {
    bool drop = !destinations.contains(kv.first) && !kv.second->pinned;
    if (drop) kv.second->stopped = true;
    return drop;
  });
  std::erase_if(upstreams_, [&](auto& kv) {
    bool drop = !upstreams.contains(kv.first);
    if (drop) kv.second->stopped = true;
    return drop;
  });
}

// ---- CA roots and leaves ---------------------------------------------------------------------

std::string ConnectCache::trustDomain() const {
  return roots_ && roots_->ready ? stringField(roots_->body, "TrustDomain") : "";
}

std::string ConnectCache::activeRootId() const {
  return roots_ && roots_->ready ? stringField(roots_->body, "ActiveRootID") : "";
}

std::vector<std::string> ConnectCache::rootPems() const {
  std::vector<std::string> out;
  if (!roots_ || !roots_->ready) return out;
  const json& roots = member(roots_->body, "Roots");
  if (!roots.is_array()) return out;
  for (const auto& r : roots) {
    std::string pem = stringField(r, "RootCert");
    if (!pem.empty()) out.push_back(std::move(pem));
  }
  return out;
}

void ConnectCache::rootsChanged() {
  std::string active = activeRootId();
  if (!active.empty()) {
    for (auto& [service, leaf] : leaves_) {
      if (leaf->rootId != active) issue(service);
    }
  }
  changed();
}

ConnectCache::Leaf& ConnectCache::leafFor(const std::string& service) {
  auto& slot = leaves_[service];
  if (!slot) {
    slot = std::make_unique<Leaf>();
    slot->service = service;
    issue(service);
  }
  return *slot;
}

namespace {

// Makes a key and CSR, has the servers sign it, retrying with backoff until it succeeds or
// the cache stops; returns the leaf answer (with the private key) or null when stopped.
Awaitable<json> signLeaf(asio::io_context* io, ServerLink* servers, const bool* running,
                         connect::ServiceId id) {
  milliseconds backoff = kBackoffInitial;
  while (*running) {
    auto request = connect::makeLeafRequest(id);
    if (!request) {
      logger()->error("cannot make a CSR service={} error=\"{}\"", id.service,
                      request.error().message);
      co_return json();
    }
    json body{{"CSR", request->csrPem}};
    auto r = co_await servers->call("POST", "/v1/internal/connect/sign", body.dump(), kSignTimeout);
    if (!*running) break;
    if (r && r->status == 200) {
      auto leaf = parseJsonBounded(r->body);
      if (leaf && leaf->is_object() && !stringField(*leaf, "CertPEM").empty()) {
        (*leaf)["PrivateKeyPEM"] = request->privateKeyPem;
        co_return std::move(*leaf);
      }
    }
    logger()->warn("signing the leaf certificate failed service={} status={} error=\"{}\"",
                   id.service, r ? r->status : 0, r ? r->body.substr(0, 200) : r.error().message);
    co_await sleepFor(*io, backoff);
    backoff = std::min(backoff * 2, kBackoffMax);
  }
  co_return json();
}

}  // namespace

void ConnectCache::issue(const std::string& service) {
  Leaf& leaf = *leaves_.at(service);
  std::string td = trustDomain();
  if (leaf.issuing || !running_ || td.empty()) return;  // rootsChanged() issues once roots come
  leaf.issuing = true;
  connect::ServiceId id{td, "default", datacenter_, service};
  asio::co_spawn(io_, signLeaf(&io_, &servers_, &running_, id),
                 [this, service](std::exception_ptr e, json answer) {
                   auto it = leaves_.find(service);
                   if (it == leaves_.end()) return;
                   Leaf& l = *it->second;
                   l.issuing = false;
                   if (e || answer.is_null() || !running_) return;
                   l.rootId = stringField(answer, "RootID");
                   l.answer = std::move(answer);
                   changed();
                   l.index = version_;
                   l.answer["CreateIndex"] = l.index;
                   l.answer["ModifyIndex"] = l.index;
                   logger()->info("leaf certificate issued service={} serial={} valid-before={}",
                                  service, stringField(l.answer, "SerialNumber"),
                                  stringField(l.answer, "ValidBefore"));
                   scheduleRenewal(l);
                   // The root may have rotated while this CSR was in flight.
                   if (!activeRootId().empty() && l.rootId != activeRootId()) issue(service);
                 });
}

void ConnectCache::scheduleRenewal(Leaf& leaf) {
  auto notAfter = connect::certNotAfter(stringField(leaf.answer, "CertPEM"));
  if (!notAfter) return;
  auto now = std::chrono::system_clock::now();
  auto wait =
      *notAfter > now ? renewAfter(*notAfter - now) : std::chrono::system_clock::duration(0);
  if (!leaf.renewal) leaf.renewal = std::make_unique<asio::steady_timer>(io_);
  leaf.renewal->expires_after(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
  std::string service = leaf.service;
  leaf.renewal->async_wait([this, service](boost::system::error_code ec) {
    if (!ec && running_ && leaves_.contains(service)) issue(service);
  });
}

// ---- blocking endpoints ----------------------------------------------------------------------

Awaitable<HttpResponse> ConnectCache::blocking(const net::HttpRequest& req,
                                               const Compute& compute) {
  auto q = api::parseQueryOptions(req);
  if (!q) co_return HttpResponse::text(400, q.error().message);
  auto deadline = std::chrono::steady_clock::now() + q->wait;
  for (;;) {
    Answer a = compute();
    bool expired = std::chrono::steady_clock::now() >= deadline;
    if ((a.ready && (q->index == 0 || a.index != q->index)) || expired || !running_) {
      if (a.ready) a.response.headers.emplace_back("X-Consul-Index", std::to_string(a.index));
      co_return std::move(a.response);
    }
    asio::steady_timer timer(io_, deadline);
    waiters_.push_back(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::erase(waiters_, &timer);
  }
}

Awaitable<HttpResponse> ConnectCache::roots(const net::HttpRequest& req) {
  ensureRoots();
  Compute compute = [this] {
    if (!roots_ || !roots_->ready || roots_->body.value("Roots", json::array()).empty()) {
      return Answer{0, HttpResponse::text(503, "the CA roots are not known yet"), false};
    }
    return Answer{std::max<uint64_t>(roots_->index, 1), HttpResponse::json(roots_->body.dump()),
                  true};
  };
  co_return co_await blocking(req, compute);
}

Awaitable<HttpResponse> ConnectCache::leaf(const net::HttpRequest& req,
                                           const std::string& service) {
  if (service.empty() || service.size() > 256)
    co_return HttpResponse::text(400, "Missing service name");
  if (auto id = connect::parseServiceUri("spiffe://x.consul/ns/default/dc/dc/svc/" + service);
      !id) {
    co_return HttpResponse::text(400, "invalid service name \"" + service + "\"");
  }
  ensureRoots();
  leafFor(service);
  Compute compute = [this, service] {
    const Leaf& l = *leaves_.at(service);
    if (l.answer.is_null()) {
      return Answer{0,
                    HttpResponse::text(503, "the leaf certificate for " + service +
                                                " is not issued yet (waiting for the servers)"),
                    false};
    }
    return Answer{l.index, HttpResponse::json(l.answer.dump()), true};
  };
  co_return co_await blocking(req, compute);
}

Awaitable<HttpResponse> ConnectCache::authorize(const net::HttpRequest& req) {
  if (req.method != "POST" && req.method != "PUT") {
    co_return HttpResponse::text(405, "method " + req.method + " not allowed");
  }
  auto body = parseJsonBounded(req.body);
  if (!body || !body->is_object())
    co_return HttpResponse::text(400, "Request decode failed: expected a JSON object");
  std::string target = stringField(*body, "Target");
  std::string uri = stringField(*body, "ClientCertURI");
  if (target.empty()) co_return HttpResponse::text(400, "Target service must be specified");
  if (uri.empty()) co_return HttpResponse::text(400, "ClientCertURI must be specified");
  if (auto v = connect::validateIntentionName("Target", target); !v || target == "*") {
    co_return HttpResponse::text(400, "Target: invalid service name \"" + target + "\"");
  }
  auto id = connect::parseServiceUri(uri);
  if (!id) co_return HttpResponse::text(400, "ClientCertURI: " + id.error().message);
  ensureRoots();
  auto& w = intentions_[target];
  if (!w) w = startWatch("/v1/connect/intentions/match?by=destination&name=" + target);
  w->pinned = true;
  std::shared_ptr<Watch> watch = w;
  net::HttpRequest waitReq;
  waitReq.query.emplace("wait", std::to_string(kAuthorizeWait.count()) + "ms");
  Compute compute = [this, watch, target, source = *id] {
    if (!watch->ready || trustDomain().empty()) {
      return Answer{
          0, HttpResponse::text(500, "intentions for " + target + " are not available yet"), false};
    }
    json out;
    if (source.trustDomain != trustDomain()) {
      out = {{"Authorized", false},
             {"Reason", "Client certificate is from trust domain " + source.trustDomain +
                            ", not this cluster's " + trustDomain()}};
      return Answer{1, HttpResponse::json(out.dump()), true};
    }
    std::vector<connect::Intention> list;
    const json& matched = member(watch->body, target.c_str());
    for (size_t i = 0; matched.is_array() && i < matched.size(); ++i) {
      if (auto in = connect::intentionFromJson(matched[i], "intention"))
        list.push_back(std::move(*in));
    }
    auto d = connect::authorize(list, source.service, target, watch->defaultAllow);
    out = {{"Authorized", d.allowed}, {"Reason", d.reason}};
    return Answer{1, HttpResponse::json(out.dump()), true};
  };
  co_return co_await blocking(waitReq, compute);
}

// ---- proxy snapshots -------------------------------------------------------------------------

std::optional<connect::ProxySnapshot> ConnectCache::buildSnapshot(const LocalService& local,
                                                                  std::string& notReady) const {
  const store::Service& svc = local.service;
  const json& p = svc.proxy;
  connect::ProxySnapshot s;
  s.proxyId = svc.id;
  s.service = stringField(p, "DestinationServiceName");
  s.serviceId = stringField(p, "DestinationServiceID");
  s.datacenter = datacenter_;
  s.trustDomain = trustDomain();
  const json& config = member(p, "Config");
  s.publicBindAddress = stringField(config, "bind_address", "0.0.0.0");
  s.publicPort = intField(config, "bind_port", svc.port);
  s.localAppAddress = stringField(p, "LocalServiceAddress", "127.0.0.1");
  s.localAppPort = intField(p, "LocalServicePort", 0);
  s.localConnectTimeoutMs = intField(config, "local_connect_timeout_ms", 5000);
  if (s.service.empty() || s.localAppPort == 0 || s.publicPort == 0) {
    notReady = "the proxy registration has no DestinationServiceName, LocalServicePort or Port";
    return std::nullopt;
  }
  if (s.trustDomain.empty()) {
    notReady = "the CA roots are not known yet";
    return std::nullopt;
  }
  s.rootPems = rootPems();
  auto leaf = leaves_.find(s.service);
  if (leaf == leaves_.end() || leaf->second->answer.is_null()) {
    notReady = "the leaf certificate for " + s.service + " is not issued yet";
    return std::nullopt;
  }
  s.leafCertPem = stringField(leaf->second->answer, "CertPEM");
  s.leafKeyPem = stringField(leaf->second->answer, "PrivateKeyPEM");
  s.leafValidBefore = stringField(leaf->second->answer, "ValidBefore");
  auto in = intentions_.find(s.service);
  if (in == intentions_.end() || !in->second->ready) {
    notReady = "the intentions for " + s.service + " are not known yet";
    return std::nullopt;
  }
  s.defaultAllow = in->second->defaultAllow;
  const json& matched = member(in->second->body, s.service.c_str());
  for (size_t i = 0; matched.is_array() && i < matched.size(); ++i) {
    if (auto x = connect::intentionFromJson(matched[i], "intention"))
      s.intentions.push_back(std::move(*x));
  }
  const json& ups = member(p, "Upstreams");
  for (size_t i = 0; ups.is_array() && i < ups.size(); ++i) {
    const json& u = ups[i];
    connect::UpstreamSnapshot up;
    up.destinationName = stringField(u, "DestinationName");
    std::string type = stringField(u, "DestinationType", "service");
    if (up.destinationName.empty() || !(type.empty() || type == "service")) continue;
    up.datacenter = stringField(u, "Datacenter");
    up.localBindAddress = stringField(u, "LocalBindAddress", "127.0.0.1");
    up.localBindPort = intField(u, "LocalBindPort", 0);
    up.connectTimeoutMs = intField(member(u, "Config"), "connect_timeout_ms", 5000);
    up.spiffeId =
        connect::ServiceId{s.trustDomain, "default",
                           up.datacenter.empty() ? datacenter_ : up.datacenter, up.destinationName}
            .uri();
    auto w = upstreams_.find(up.destinationName);
    if (w == upstreams_.end() || !w->second->ready) {
      notReady = "the endpoints of upstream " + up.destinationName + " are not known yet";
      return std::nullopt;
    }
    for (const auto& csn : w->second->body) {
      const json& node = member(csn, "Node");
      const json& service = member(csn, "Service");
      connect::UpstreamEndpoint e;
      e.address = stringField(service, "Address");
      if (e.address.empty()) e.address = stringField(node, "Address");
      e.port = intField(service, "Port", 0);
      e.node = stringField(node, "Node");
      e.serviceId = stringField(service, "ID");
      if (!e.address.empty() && e.port > 0 && e.port <= 65535) up.endpoints.push_back(std::move(e));
    }
    s.upstreams.push_back(std::move(up));
  }
  return s;
}

Awaitable<HttpResponse> ConnectCache::proxy(const net::HttpRequest& req,
                                            const std::string& proxyId) {
  if (req.method != "GET")
    co_return HttpResponse::text(405, "method " + req.method + " not allowed");
  Compute compute = [this, proxyId] {
    const LocalService* local = state_.service(proxyId);
    if (!local || local->service.kind != "connect-proxy") {
      return Answer{0, HttpResponse::text(404, "unknown proxy service ID: " + proxyId), true};
    }
    std::string notReady;
    auto snapshot = buildSnapshot(*local, notReady);
    if (!snapshot) {
      return Answer{0, HttpResponse::text(503, "proxy " + proxyId + " is not ready: " + notReady),
                    false};
    }
    json j = connect::toJson(*snapshot);
    size_t hash = std::hash<std::string>{}(j.dump());
    auto& [lastHash, index] = snapshotIndex_[proxyId];
    if (index == 0 || lastHash != hash) {
      lastHash = hash;
      index = version_;
    }
    j["Index"] = index;
    return Answer{index, HttpResponse::json(j.dump()), true};
  };
  co_return co_await blocking(req, compute);
}

}  // namespace taskmesh::agent
