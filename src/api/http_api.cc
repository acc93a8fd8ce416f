#include "api/http_api.h"

#include <random>

#include "api/codec.h"

namespace taskmesh::api {

net::HttpResponse errorResponse(const Error& e) {
  int status = 500;
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      status = 400;
      break;
    case ErrorCode::kNotFound:
      status = 404;
      break;
    case ErrorCode::kTooLarge:
      status = 413;
      break;
    case ErrorCode::kConflict:
      status = 409;
      break;
    default:
      status = 500;
      break;
  }
  return net::HttpResponse::text(status, e.message);
}

net::HttpResponse jsonResponse(const Json& j) {
  return net::HttpResponse::json(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

HttpApi::HttpApi(asio::io_context& io, store::StateStore& store, store::WatchHub& hub,
                 Cluster cluster, ServerInfo info)
    : io_(io), store_(store), hub_(hub), cluster_(std::move(cluster)), info_(std::move(info)) {}

Awaitable<net::HttpResponse> HttpApi::handle(net::HttpRequest& req) {
  std::string_view path = req.path;
  auto strip = [&](std::string_view prefix) {
    if (!path.starts_with(prefix)) return false;
    path.remove_prefix(prefix.size());
    return true;
  };
  if (strip("/v1/kv/") || path == "/v1/kv") {
    std::string key(path == "/v1/kv" ? std::string_view() : path);
    co_return co_await kv(req, key);
  }
  if (strip("/v1/catalog/")) co_return co_await catalog(req, path);
  if (strip("/v1/health/")) co_return co_await health(req, path);
  if (strip("/v1/status/")) co_return status(req, path);
  if (strip("/v1/connect/")) co_return co_await connect(req, path);
  if (strip("/v1/agent/")) co_return agent(req, path);
  if (internal_ && strip("/v1/internal/")) co_return internal_(req, path);
  co_return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

void HttpApi::setReadHeaders(net::HttpResponse& r, uint64_t index, bool stale) const {
  r.headers.emplace_back("X-Consul-Index", std::to_string(std::max<uint64_t>(index, 1)));
  r.headers.emplace_back("X-Consul-KnownLeader", cluster_.knownLeader() ? "true" : "false");
  r.headers.emplace_back("X-Consul-LastContact", "0");
  r.headers.emplace_back("X-Consul-Effective-Consistency", stale ? "stale" : "leader");
}

Awaitable<net::HttpResponse> HttpApi::blocking(const net::HttpRequest& req,
                                               const store::WatchSpec& spec, const Run& run) {
  auto q = parseQueryOptions(req);
  if (!q) co_return errorResponse(q.error());
  if (!q->stale && !cluster_.isLeader())
    co_return net::HttpResponse::text(500, "No cluster leader");
  // Consul adds up to wait/16 of jitter so that many watchers do not return together.
  static thread_local std::minstd_rand rng{std::random_device{}()};
  auto jitter = std::chrono::milliseconds(
      q->wait.count() >= 16
          ? static_cast<int64_t>(rng() % static_cast<uint64_t>(q->wait.count() / 16))
          : 0);
  auto deadline = std::chrono::steady_clock::now() + q->wait + jitter;
  std::string cacheKey = req.path;
  for (const auto& [k, v] : req.query) {
    if (k != "index" && k != "wait") cacheKey += "\n" + k + "=" + v;
  }
  for (;;) {
    Answer a = store_.read([&](const store::Tables& t) {
      auto hit = answers_.find(cacheKey);
      if (hit != answers_.end() && hit->second.version == t.lastIndex) return hit->second.answer;
      Answer fresh = run(t);
      if (hit != answers_.end()) {
        answersBytes_ -= std::min(answersBytes_, hit->second.answer.response.body.size());
        answers_.erase(hit);
      }
      if (answers_.size() >= kMaxCachedAnswers || answersBytes_ > kMaxCachedBytes) {
        answers_.clear();
        answersBytes_ = 0;
      }
      answersBytes_ += fresh.response.body.size();
      answers_.emplace(cacheKey, CachedAnswer{t.lastIndex, fresh});
      return fresh;
    });
    if (q->index == 0 || a.index > q->index || std::chrono::steady_clock::now() >= deadline) {
      if (q->pretty && a.response.contentType == "application/json" && !a.response.body.empty()) {
        Json j = Json::parse(a.response.body, nullptr, false);
        if (!j.is_discarded()) a.response.body = dump(j, true);
      }
      setReadHeaders(a.response, a.index, q->stale);
      co_return std::move(a.response);
    }
    // No suspension between the read above and add(): no change can be missed (WatchHub).
    asio::steady_timer timer(io_, deadline);
    auto id = hub_.add(spec, [&timer] { timer.cancel(); });
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    hub_.remove(id);
  }
}

Awaitable<net::HttpResponse> HttpApi::write(const store::Command& command, bool boolBody) {
  if (!cluster_.isLeader()) co_return net::HttpResponse::text(500, "No cluster leader");
  Result<store::ApplyResult> r = co_await cluster_.apply(command);
  if (!r) co_return errorResponse(r.error());
  if (r->error) co_return errorResponse(*r->error);
  net::HttpResponse resp = net::HttpResponse::json(boolBody ? (r->value ? "true" : "false") : "");
  resp.headers.emplace_back("X-Consul-Index", std::to_string(r->index));
  co_return resp;
}

net::HttpResponse HttpApi::status(const net::HttpRequest& req, std::string_view rest) {
  if (req.method != "GET")
    return net::HttpResponse::text(405, "method " + req.method + " not allowed");
  if (rest == "leader") return jsonResponse(Json(cluster_.leaderAddress()));
  if (rest == "peers") return jsonResponse(Json(cluster_.peers()));
  return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

net::HttpResponse HttpApi::agent(const net::HttpRequest& req, std::string_view rest) {
  if (req.method != "GET")
    return net::HttpResponse::text(405, "method " + req.method + " not allowed");
  Json member{{"Name", info_.nodeName},
              {"Addr", info_.advertiseAddress},
              {"Port", 8301},
              {"Tags",
               {{"role", "consul"},
                {"dc", info_.datacenter},
                {"port", std::to_string(info_.serverPort)},
                {"id", info_.nodeId},
                {"bootstrap", "1"},
                {"vsn", "2"}}},
              {"Status", 1},
              {"ProtocolMin", 1},
              {"ProtocolMax", 5},
              {"ProtocolCur", 2},
              {"DelegateMin", 2},
              {"DelegateMax", 5},
              {"DelegateCur", 4}};
  if (rest == "self") {
    Json self{{"Config",
               {{"Datacenter", info_.datacenter},
                {"PrimaryDatacenter", info_.datacenter},
                {"NodeName", info_.nodeName},
                {"NodeID", info_.nodeId},
                {"Server", true},
                {"Version", info_.version},
                {"Revision", "taskmesh"}}},
              {"DebugConfig", Json::object()},
              {"Coord",
               {{"Adjustment", 0}, {"Error", 1.5}, {"Vec", std::vector<int>(8, 0)}, {"Height", 0}}},
              {"Member", member},
              {"Stats", {{"raft", {{"state", cluster_.isLeader() ? "Leader" : "Follower"}}}}},
              {"Meta", Json::object()}};
    return net::HttpResponse::json(dump(self, req.has("pretty")));
  }
  if (rest == "members") {
    // Every node the leader watches (those with serfHealth): alive (1) or failed (4).
    Json members = store_.read([this, &member](const store::Tables& t) {
      Json out = Json::array({member});
      for (const auto& [name, entry] : t.nodes) {
        if (name == info_.nodeName) continue;
        auto serf = entry.checks.find("serfHealth");
        if (serf == entry.checks.end()) continue;
        out.push_back(
            {{"Name", name},
             {"Addr", entry.node.address},
             {"Port", 8301},
             {"Tags", {{"role", "node"}, {"dc", info_.datacenter}, {"id", entry.node.id}}},
             {"Status", serf->second.status == store::kPassing ? 1 : 4}});
      }
      return out;
    });
    return jsonResponse(members);
  }
  return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

}  // namespace taskmesh::api
