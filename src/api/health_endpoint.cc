// /v1/health/* (reference §9, §12.6).
#include "api/codec.h"
#include "api/http_api.h"

namespace taskmesh::api {
namespace {

const std::vector<std::string>& tagsOf(const store::Tables& t, const store::Check& c) {
  static const std::vector<std::string> kNone;
  if (c.serviceId.empty()) return kNone;
  auto node = t.nodes.find(c.node);
  if (node == t.nodes.end()) return kNone;
  auto s = node->second.services.find(c.serviceId);
  return s == node->second.services.end() ? kNone : s->second.tags;
}

}  // namespace

Awaitable<net::HttpResponse> HttpApi::health(net::HttpRequest& req, std::string_view rest) {
  if (req.method != "GET")
    co_return net::HttpResponse::text(405, "method " + req.method + " not allowed");

  if (rest.starts_with("service/") || rest.starts_with("connect/")) {
    bool connect = rest.starts_with("connect/");
    std::string name(rest.substr(8));
    if (name.empty()) co_return net::HttpResponse::text(400, "Missing service name");
    auto passing = parseBoolParam(req, "passing");
    if (!passing) co_return errorResponse(passing.error());
    std::vector<std::string> tags = req.params("tag");
    bool onlyPassing = *passing;
    store::WatchSpec spec{.services = connect, .checks = connect, .serviceNames = {name}};
    Run run = [name, tags, onlyPassing, connect](const store::Tables& t) {
      Json out = Json::array();
      auto visit = [&](const store::NodeEntry& entry, const store::Service& s) {
        for (const auto& tag : tags) {
          if (std::find(s.tags.begin(), s.tags.end(), tag) == s.tags.end()) return;
        }
        if (onlyPassing) {
          for (const store::Check* c : t.checksForInstance(entry, s.id)) {
            if (c->status != store::kPassing) return;
          }
        }
        out.push_back(encodeCheckServiceNode(t, entry, s));
      };
      if (!connect) {
        if (auto it = t.serviceInstances.find(name); it != t.serviceInstances.end()) {
          for (const auto& [node, id] : it->second) {
            const auto& entry = t.nodes.at(node);
            visit(entry, entry.services.at(id));
          }
        }
        return Answer{t.indexForService(name), jsonResponse(out)};
      }
      for (const auto& [node, entry] : t.nodes) {
        for (const auto& [id, s] : entry.services) {
          if (isConnectProxyFor(s, name)) {
            visit(entry, s);
          }
        }
      }
      return Answer{std::max(t.servicesIndex, t.checksIndex), jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest.starts_with("checks/")) {
    std::string name(rest.substr(7));
    if (name.empty()) co_return net::HttpResponse::text(400, "Missing service name");
    store::WatchSpec spec{.serviceNames = {name}};
    Run run = [name](const store::Tables& t) {
      Json out = Json::array();
      if (auto it = t.serviceInstances.find(name); it != t.serviceInstances.end()) {
        for (const auto& [node, id] : it->second) {
          const auto& entry = t.nodes.at(node);
          const auto& s = entry.services.at(id);
          for (const auto& [cid, c] : entry.checks) {
            if (c.serviceId == id) out.push_back(encodeHealthCheck(c, s.tags));
          }
        }
      }
      return Answer{t.indexForService(name), jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest.starts_with("node/")) {
    std::string node(rest.substr(5));
    if (node.empty()) co_return net::HttpResponse::text(400, "Missing node name");
    store::WatchSpec spec{.checks = true};
    Run run = [node](const store::Tables& t) {
      Json out = Json::array();
      if (auto it = t.nodes.find(node); it != t.nodes.end()) {
        for (const auto& [cid, c] : it->second.checks)
          out.push_back(encodeHealthCheck(c, tagsOf(t, c)));
      }
      return Answer{t.checksIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest.starts_with("state/")) {
    std::string state(rest.substr(6));
    if (state.empty()) co_return net::HttpResponse::text(400, "Missing check state");
    if (state != "any" && !isValidCheckStatus(state)) {
      co_return net::HttpResponse::text(
          400, "Invalid check state \"" + state + "\": want any, passing, warning or critical");
    }
    store::WatchSpec spec{.checks = true};
    Run run = [state](const store::Tables& t) {
      Json out = Json::array();
      for (const auto& [name, entry] : t.nodes) {
        for (const auto& [cid, c] : entry.checks) {
          if (state == "any" || c.status == state)
            out.push_back(encodeHealthCheck(c, tagsOf(t, c)));
        }
      }
      return Answer{t.checksIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  co_return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

}  // namespace taskmesh::api
