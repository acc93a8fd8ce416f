#include "agent/agent_api.h"

#include <algorithm>
#include <random>

#include "api/codec.h"
#include "api/fields.h"
#include "api/http_api.h"
#include "base/duration.h"
#include "base/json.h"
#include "base/log.h"

namespace taskmesh::agent {
namespace {

using Json = nlohmann::json;
using net::HttpResponse;

constexpr int kSidecarMinPort = 21000;
constexpr int kSidecarMaxPort = 21255;

HttpResponse notFoundPath(const net::HttpRequest& req) {
  return HttpResponse::text(404,
                            "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

HttpResponse methodNotAllowed(const net::HttpRequest& req) {
  return HttpResponse::text(405, "method " + req.method + " not allowed");
}

HttpResponse ok() { return HttpResponse::json(""); }

std::string contentHash(const Json& j) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016zx", std::hash<std::string>{}(j.dump()));
  return buf;
}

}  // namespace

AgentApi::AgentApi(asio::io_context& io, LocalState& state, CheckRunners& runners,
                   ServerLink& servers, AntiEntropy& sync, AgentInfo info, DecodeOptions options)
    : io_(io),
      state_(state),
      runners_(runners),
      servers_(servers),
      sync_(sync),
      info_(std::move(info)),
      options_(options) {}

Awaitable<HttpResponse> AgentApi::handle(net::HttpRequest& req) {
  std::string_view path = req.path;
  if (path.starts_with("/v1/agent/")) {
    path.remove_prefix(10);
    co_return co_await agent(req, path);
  }
  for (const char* prefix : {"/v1/catalog/", "/v1/health/", "/v1/kv/", "/v1/status/",
                             "/v1/connect/", "/v1/coordinate/"}) {
    if (path.starts_with(prefix) ||
        path == std::string_view(prefix).substr(0, std::strlen(prefix) - 1)) {
      co_return co_await forward(req);
    }
  }
  co_return notFoundPath(req);
}

Awaitable<HttpResponse> AgentApi::forward(const net::HttpRequest& req) {
  // Blocking queries hold the request for up to ?wait (default 5 min, at most 10 min).
  std::chrono::milliseconds timeout(60000);
  if (req.has("index") && !req.param("index").empty() && req.param("index") != "0") {
    auto wait = std::chrono::milliseconds(300000);
    if (req.has("wait")) {
      auto w = parseDuration(req.param("wait"));
      if (w && w->count() > 0)
        wait = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(*w),
                        std::chrono::milliseconds(600000));
    }
    timeout = wait + wait / 16 + std::chrono::milliseconds(15000);
  }
  std::string token = req.header("x-consul-token");
  auto r = co_await servers_.call(req.method, req.target, req.body, timeout, token);
  if (!r) {
    co_return HttpResponse::text(500, "No known Consul servers: " + r.error().message);
  }
  HttpResponse out;
  out.status = r->status;
  out.body = std::move(r->body);
  out.contentType = r->header("content-type");
  if (out.contentType.empty()) out.contentType = "application/json";
  for (const auto& [name, value] : r->headers) {
    if (name.starts_with("x-consul-")) {
      std::string canonical = "X-Consul-";
      bool upper = true;
      for (char c : name.substr(9)) {
        canonical += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
        upper = c == '-';
      }
      out.headers.emplace_back(canonical, value);
    }
  }
  co_return out;
}

Json AgentApi::serviceJson(const store::Service& s) const {
  Json j = api::encodeAgentService(s, false);
  j["Datacenter"] = info_.datacenter;
  return j;
}

Json AgentApi::checkJson(const LocalCheck& c) const {
  std::vector<std::string> tags;
  if (const LocalService* s = state_.service(c.check.serviceId)) tags = s->service.tags;
  Json j = api::encodeHealthCheck(c.check, tags);
  return j;
}

Json AgentApi::self() const {
  Json member{{"Name", info_.nodeName},
              {"Addr", info_.advertiseAddress},
              {"Port", 8301},
              {"Tags",
               {{"role", "node"},
                {"dc", info_.datacenter},
                {"id", info_.nodeId},
                {"vsn", "2"},
                {"vsn_min", "2"},
                {"vsn_max", "3"}}},
              {"Status", 1}};
  return Json{{"Config",
               {{"Datacenter", info_.datacenter},
                {"PrimaryDatacenter", info_.datacenter},
                {"NodeName", info_.nodeName},
                {"NodeID", info_.nodeId},
                {"Server", false},
                {"Version", info_.version},
                {"Revision", "taskmesh"}}},
              {"DebugConfig", Json::object()},
              {"Coord", {{"Adjustment", 0}, {"Error", 1.5}, {"Vec", std::vector<int>(8, 0)}}},
              {"Member", member},
              {"Stats",
               {{"agent",
                 {{"services", std::to_string(state_.services().size())},
                  {"checks", std::to_string(state_.checks().size())},
                  {"joined", sync_.joined() ? "true" : "false"},
                  {"in_sync", sync_.inSync() ? "true" : "false"},
                  {"server", servers_.current()}}}}},
              {"Meta", Json::object()}};
}

int AgentApi::allocateSidecarPort(const std::string& sidecarId) const {
  if (const LocalService* existing = state_.service(sidecarId); existing && existing->service.port)
    return existing->service.port;
  std::set<int> used;
  for (const auto& [id, s] : state_.services()) used.insert(s.service.port);
  for (int p = kSidecarMinPort; p <= kSidecarMaxPort; ++p) {
    if (!used.contains(p)) return p;
  }
  return 0;
}

void AgentApi::servicesChanged() {
  auto waiters = std::move(serviceWaiters_);
  serviceWaiters_.clear();
  for (auto* t : waiters) t->cancel();
}

void AgentApi::setMaintenance(const std::string& serviceId, bool enable,
                              const std::string& reason) {
  std::string id = serviceId.empty() ? "_node_maintenance" : "_service_maintenance:" + serviceId;
  if (!enable) {
    maintenance_.erase(serviceId);
    state_.removeCheck(id);
    return;
  }
  maintenance_[serviceId] = reason;
  CheckDefinition c;
  c.id = id;
  c.name = serviceId.empty() ? "Node Maintenance Mode" : "Service Maintenance Mode";
  c.serviceId = serviceId;
  c.kind = CheckKind::kMaintenance;
  c.notes = !reason.empty() ? reason
                            : "Maintenance mode is enabled for this " +
                                  std::string(serviceId.empty() ? "node" : "service") +
                                  ", but no reason was provided. This is a default message.";
  c.initialStatus = store::kCritical;
  (void)state_.addCheck(c);
}

Awaitable<HttpResponse> AgentApi::agent(net::HttpRequest& req, std::string_view rest) {
  const bool get = req.method == "GET";
  const bool put = req.method == "PUT" || req.method == "POST";
  // Endpoints that Consul before 1.0 took as GET, and that python3-consul still sends as GET.
  const bool legacyWrite = put || get;
  auto tail = [&rest](std::string_view prefix) -> std::optional<std::string> {
    if (!rest.starts_with(prefix)) return std::nullopt;
    return std::string(rest.substr(prefix.size()));
  };
  if (rest.starts_with("connect/") && connect_) {
    if (rest == "connect/authorize") co_return co_await connect_->authorize(req);
    if (!get) co_return methodNotAllowed(req);
    if (rest == "connect/ca/roots") co_return co_await connect_->roots(req);
    if (auto service = tail("connect/ca/leaf/")) co_return co_await connect_->leaf(req, *service);
    if (auto proxy = tail("connect/proxy/")) co_return co_await connect_->proxy(req, *proxy);
  }
  if (rest == "self") {
    if (!get) co_return methodNotAllowed(req);
    co_return HttpResponse::json(api::dump(self(), req.has("pretty")));
  }
  if (rest == "members") {
    if (!get) co_return methodNotAllowed(req);
    co_return co_await forward(req);
  }
  if (rest == "services") {
    if (!get) co_return methodNotAllowed(req);
    Json out = Json::object();
    for (const auto& [id, s] : state_.services()) out[id] = serviceJson(s.service);
    co_return HttpResponse::json(api::dump(out, req.has("pretty")));
  }
  if (rest == "checks") {
    if (!get) co_return methodNotAllowed(req);
    Json out = Json::object();
    for (const auto& [id, c] : state_.checks()) out[id] = checkJson(c);
    co_return HttpResponse::json(api::dump(out, req.has("pretty")));
  }
  if (rest == "service/register") {
    if (!put) co_return methodNotAllowed(req);
    co_return registerService(req);
  }
  if (auto id = tail("service/deregister/")) {
    if (!legacyWrite) co_return methodNotAllowed(req);
    if (id->empty()) co_return HttpResponse::text(400, "Missing service ID");
    if (state_.removeService(*id)) {
      maintenance_.erase(*id);
      definitionsChanged();
    }
    co_return ok();
  }
  if (auto id = tail("service/maintenance/")) {
    if (!put) co_return methodNotAllowed(req);
    co_return maintenanceEndpoint(req, *id);
  }
  if (rest == "maintenance") {
    if (!put) co_return methodNotAllowed(req);
    co_return maintenanceEndpoint(req, "");
  }
  if (auto id = tail("service/")) {
    if (!get) co_return methodNotAllowed(req);
    co_return co_await serviceById(req, *id);
  }
  if (auto name = tail("health/service/name/")) {
    if (!get) co_return methodNotAllowed(req);
    co_return localHealth(req, true, *name);
  }
  if (auto id = tail("health/service/id/")) {
    if (!get) co_return methodNotAllowed(req);
    co_return localHealth(req, false, *id);
  }
  if (rest == "check/register") {
    if (!put) co_return methodNotAllowed(req);
    co_return registerCheck(req);
  }
  if (auto id = tail("check/deregister/")) {
    if (!legacyWrite) co_return methodNotAllowed(req);
    if (state_.removeCheck(*id)) definitionsChanged();
    co_return ok();
  }
  for (auto [verb, status] :
       {std::pair{"check/pass/", store::kPassing}, std::pair{"check/warn/", store::kWarning},
        std::pair{"check/fail/", store::kCritical}, std::pair{"check/update/", ""}}) {
    if (auto id = tail(verb)) {
      if (!(*status != '\0' ? legacyWrite : put)) co_return methodNotAllowed(req);
      co_return ttl(req, *id, status);
    }
  }
  if (auto addr = tail("join/")) {
    if (!put) co_return methodNotAllowed(req);
    auto added = servers_.addServer(*addr);
    if (!added) co_return HttpResponse::text(400, added.error().message);
    sync_.requestFullSync();
    co_return ok();
  }
  if (rest == "leave") {
    if (!put) co_return methodNotAllowed(req);
    auto left = co_await sync_.leave(std::chrono::milliseconds(10000));
    if (!left) co_return HttpResponse::text(500, left.error().message);
    if (leave_) asio::post(io_, leave_);
    co_return ok();
  }
  if (tail("token/")) {
    if (!put) co_return methodNotAllowed(req);
    co_return HttpResponse::text(401, "ACL support disabled");
  }
  co_return notFoundPath(req);
}

HttpResponse AgentApi::registerService(const net::HttpRequest& req) {
  auto body = api::parseObject(req.body);
  if (!body) return api::errorResponse(body.error());
  auto defs = decodeServiceRegistration(
      *body, options_, [this](const std::string& id) { return allocateSidecarPort(id); });
  if (!defs) return api::errorResponse(defs.error());
  bool replace =
      req.has("replace-existing-checks") && req.param("replace-existing-checks") != "false";
  for (const auto& def : *defs) state_.addService(def, replace);
  // Re-registering the parent without a sidecar removes the sidecar it had made.
  const std::string& parent = defs->front().service.id;
  std::string sidecarId = parent + "-sidecar-proxy";
  if (defs->size() == 1 && managedSidecars_.contains(parent)) {
    state_.removeService(sidecarId);
    managedSidecars_.erase(parent);
  } else if (defs->size() == 2) {
    managedSidecars_.insert(parent);
  }
  definitionsChanged();
  return ok();
}

HttpResponse AgentApi::registerCheck(const net::HttpRequest& req) {
  auto body = api::parseObject(req.body);
  if (!body) return api::errorResponse(body.error());
  auto def = decodeCheckDefinition(*body, "", options_);
  if (!def) return api::errorResponse(def.error());
  auto added = state_.addCheck(*def);
  if (!added) return HttpResponse::text(400, added.error().message);
  definitionsChanged();
  return ok();
}

HttpResponse AgentApi::ttl(const net::HttpRequest& req, const std::string& id,
                           const std::string& fixedStatus) {
  std::string status = fixedStatus;
  std::string output = req.param("note");
  if (status.empty()) {  // /check/update: {"Status", "Output"}
    auto body = api::parseObject(req.body);
    if (!body) return api::errorResponse(body.error());
    api::Fields f(*body, "");
    auto s = f.str("Status");
    auto o = f.str("Output");
    if (!s) return api::errorResponse(s.error());
    if (!o) return api::errorResponse(o.error());
    status = *s;
    output = *o;
    if (status == "pass") status = store::kPassing;
    if (status == "warn") status = store::kWarning;
    if (status == "fail") status = store::kCritical;
    if (!api::isValidCheckStatus(status)) {
      return HttpResponse::text(400, "Invalid check status: \"" + status + "\"");
    }
  }
  auto r = runners_.ttlUpdate(id, status, output);
  if (!r) return api::errorResponse(r.error());
  return ok();
}

HttpResponse AgentApi::maintenanceEndpoint(const net::HttpRequest& req, const std::string& id) {
  if (!req.has("enable")) return HttpResponse::text(400, "Missing value for enable");
  std::string v = req.param("enable");
  bool enable;
  if (v == "true" || v == "1") {
    enable = true;
  } else if (v == "false" || v == "0") {
    enable = false;
  } else {
    return HttpResponse::text(400, "Invalid value for enable: \"" + v + "\"");
  }
  if (!id.empty() && state_.service(id) == nullptr) {
    return HttpResponse::text(404, "Unknown service ID \"" + id + "\"");
  }
  setMaintenance(id, enable, req.param("reason"));
  definitionsChanged();
  return ok();
}

HttpResponse AgentApi::localHealth(const net::HttpRequest& req, bool byName, const std::string& x) {
  bool text = req.param("format") == "text" || req.header("accept") == "text/plain";
  Json list = Json::array();
  std::string worst = store::kPassing;
  for (const auto& [id, s] : state_.services()) {
    if (byName ? s.service.service != x : id != x) continue;
    std::string status = state_.aggregateStatus(id);
    worst = worseStatus(worst, status);
    Json checks = Json::array();
    for (const auto& [cid, c] : state_.checks()) {
      if (c.definition.serviceId == id || c.definition.serviceId.empty())
        checks.push_back(checkJson(c));
    }
    list.push_back(
        {{"AggregatedStatus", status}, {"Service", serviceJson(s.service)}, {"Checks", checks}});
  }
  if (list.empty()) {
    return HttpResponse::text(
        404, byName ? "ServiceName " + x + " Not Found" : "ServiceId " + x + " Not Found");
  }
  int code = worst == store::kPassing ? 200 : worst == store::kWarning ? 429 : 503;
  if (text) return HttpResponse::text(code, worst);
  HttpResponse r = HttpResponse::json(api::dump(byName ? list : list[0], req.has("pretty")));
  r.status = code;
  return r;
}

Awaitable<HttpResponse> AgentApi::serviceById(const net::HttpRequest& req, const std::string& id) {
  std::string wanted = req.param("hash");
  std::chrono::milliseconds wait(300000);
  if (req.has("wait")) {
    auto w = parseDuration(req.param("wait"));
    if (!w || w->count() < 0) co_return HttpResponse::text(400, "Invalid wait time");
    wait = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(*w),
                    std::chrono::milliseconds(600000));
  }
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const LocalService* s = state_.service(id);
    if (s == nullptr) co_return HttpResponse::text(404, "unknown service ID: " + id);
    Json j = serviceJson(s->service);
    std::string hash = contentHash(j);
    if (wanted.empty() || wanted != hash || std::chrono::steady_clock::now() >= deadline) {
      j["ContentHash"] = hash;
      HttpResponse r = HttpResponse::json(api::dump(j, req.has("pretty")));
      r.headers.emplace_back("X-Consul-ContentHash", hash);
      co_return r;
    }
    asio::steady_timer timer(io_, deadline);
    serviceWaiters_.push_back(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::erase(serviceWaiters_, &timer);
  }
}

}  // namespace taskmesh::agent
