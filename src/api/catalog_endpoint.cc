// /v1/catalog/* (reference §8).
#include <set>

#include "api/codec.h"
#include "api/http_api.h"

namespace taskmesh::api {
namespace {

bool hasAllTags(const store::Service& s, const std::vector<std::string>& tags) {
  for (const auto& t : tags) {
    if (std::find(s.tags.begin(), s.tags.end(), t) == s.tags.end()) return false;
  }
  return true;
}

}  // namespace

Awaitable<net::HttpResponse> HttpApi::catalog(net::HttpRequest& req, std::string_view rest) {
  if (rest == "register" || rest == "deregister") {
    if (req.method != "PUT" && req.method != "POST") {
      co_return net::HttpResponse::text(405, "method " + req.method + " not allowed");
    }
    if (rest == "register") {
      auto c = decodeRegister(req.body);
      if (!c) co_return errorResponse(c.error());
      if (c->node.datacenter.empty()) c->node.datacenter = info_.datacenter;
      store::Command command = std::move(*c);
      co_return co_await write(command, true);
    }
    auto c = decodeDeregister(req.body);
    if (!c) co_return errorResponse(c.error());
    store::Command command = std::move(*c);
    co_return co_await write(command, true);
  }
  if (req.method != "GET")
    co_return net::HttpResponse::text(405, "method " + req.method + " not allowed");

  if (rest == "datacenters") co_return jsonResponse(Json::array({info_.datacenter}));
  if (rest == "nodes") {
    store::WatchSpec spec{.nodes = true};
    Run run = [](const store::Tables& t) {
      Json out = Json::array();
      for (const auto& [name, entry] : t.nodes) out.push_back(encodeNode(entry.node));
      return Answer{t.nodesIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest == "services") {
    store::WatchSpec spec{.services = true};
    Run run = [](const store::Tables& t) {
      Json out = Json::object();
      for (const auto& [name, instances] : t.serviceInstances) {
        std::set<std::string> tags;
        for (const auto& [node, id] : instances) {
          const auto& s = t.nodes.at(node).services.at(id);
          tags.insert(s.tags.begin(), s.tags.end());
        }
        out[name] = std::vector<std::string>(tags.begin(), tags.end());
      }
      return Answer{t.servicesIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest.starts_with("service/") || rest.starts_with("connect/")) {
    bool connect = rest.starts_with("connect/");
    std::string name(rest.substr(8));
    if (name.empty()) co_return net::HttpResponse::text(400, "Missing service name");
    std::vector<std::string> tags = req.params("tag");
    store::WatchSpec spec{.services = connect, .serviceNames = {name}};
    Run run = [name, tags, connect](const store::Tables& t) {
      Json out = Json::array();
      auto visit = [&](const std::string& node, const std::string& id) {
        const auto& entry = t.nodes.at(node);
        const auto& s = entry.services.at(id);
        if (hasAllTags(s, tags)) out.push_back(encodeServiceNode(entry.node, s));
      };
      if (!connect) {
        if (auto it = t.serviceInstances.find(name); it != t.serviceInstances.end()) {
          for (const auto& [node, id] : it->second) visit(node, id);
        }
        return Answer{t.indexForService(name), jsonResponse(out)};
      }
      // Connect-capable instances: proxies whose destination is `name`.
      for (const auto& [node, entry] : t.nodes) {
        for (const auto& [id, s] : entry.services) {
          if (isConnectProxyFor(s, name)) {
            visit(node, id);
          }
        }
      }
      return Answer{t.servicesIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest.starts_with("node/") || rest.starts_with("node-services/")) {
    bool list = rest.starts_with("node-services/");
    std::string node(rest.substr(list ? 14 : 5));
    if (node.empty()) co_return net::HttpResponse::text(400, "Missing node name");
    store::WatchSpec spec{.nodes = true, .services = true};
    Run run = [node, list](const store::Tables& t) {
      uint64_t index = std::max(t.nodesIndex, t.servicesIndex);
      auto it = t.nodes.find(node);
      if (it == t.nodes.end()) return Answer{index, jsonResponse(Json())};
      Json services = list ? Json::array() : Json::object();
      for (const auto& [id, s] : it->second.services) {
        if (list) {
          services.push_back(encodeAgentService(s));
        } else {
          services[id] = encodeAgentService(s);
        }
      }
      return Answer{index, jsonResponse({{"Node", encodeNode(it->second.node)},
                                         {"Services", std::move(services)}})};
    };
    co_return co_await blocking(req, spec, run);
  }
  co_return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

}  // namespace taskmesh::api
