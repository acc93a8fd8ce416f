// /v1/kv/:key (reference §10).
#include <set>

#include "api/codec.h"
#include "api/http_api.h"

namespace taskmesh::api {
namespace {

Result<std::optional<uint64_t>> optionalUint(const net::HttpRequest& req, const std::string& name) {
  if (!req.has(name)) return std::optional<uint64_t>();
  auto v = parseUint(req.param(name), name);
  if (!v)
    return makeError(
        ErrorCode::kInvalidArgument,
        "Invalid " + name + " value \"" + req.param(name) + "\": want an unsigned integer");
  return std::optional<uint64_t>(*v);
}

}  // namespace

Awaitable<net::HttpResponse> HttpApi::kv(net::HttpRequest& req, const std::string& key) {
  if (req.method == "GET") co_return co_await kvGet(req, key);
  if (req.method == "PUT" || req.method == "POST") {
    if (key.empty()) co_return net::HttpResponse::text(400, "Missing key name");
    if (req.has("acquire") || req.has("release")) {
      if (req.has("cas") || (req.has("acquire") && req.has("release"))) {
        co_return net::HttpResponse::text(
            400, "Conflicting flags: cas, acquire and release are mutually exclusive");
      }
      co_return net::HttpResponse::text(
          400, "Sessions are not supported: ?acquire and ?release cannot be used");
    }
    if (req.body.size() > kMaxKVValueBytes) {
      co_return net::HttpResponse::text(
          413, "Request body(" + std::to_string(req.body.size()) +
                   " bytes) too large, max size: " + std::to_string(kMaxKVValueBytes) + " bytes");
    }
    auto flags = optionalUint(req, "flags");
    if (!flags) co_return errorResponse(flags.error());
    auto cas = optionalUint(req, "cas");
    if (!cas) co_return errorResponse(cas.error());
    store::Command command =
        store::KVSetCommand{key, std::move(req.body), flags->value_or(0), *cas};
    co_return co_await write(command, true);
  }
  if (req.method == "DELETE") {
    auto recurse = parseBoolParam(req, "recurse");
    if (!recurse) co_return errorResponse(recurse.error());
    if (key.empty() && !*recurse) co_return net::HttpResponse::text(400, "Missing key name");
    auto cas = optionalUint(req, "cas");
    if (!cas) co_return errorResponse(cas.error());
    if (*recurse && cas->has_value()) {
      co_return net::HttpResponse::text(400,
                                        "Conflicting flags: cas and recurse cannot be combined");
    }
    store::Command command = store::KVDeleteCommand{key, *recurse, *cas};
    co_return co_await write(command, true);
  }
  net::HttpResponse r =
      net::HttpResponse::text(405, "method " + req.method + " not allowed: use GET, PUT or DELETE");
  r.headers.emplace_back("Allow", "GET, PUT, DELETE");
  co_return r;
}

Awaitable<net::HttpResponse> HttpApi::kvGet(net::HttpRequest& req, const std::string& key) {
  bool keys = req.has("keys");
  bool recurse = req.has("recurse") || keys;
  bool raw = req.has("raw");
  std::string separator = req.has("separator") ? req.param("separator") : req.param("seperator");
  if (key.empty() && !recurse) co_return net::HttpResponse::text(400, "Missing key name");
  store::WatchSpec spec;
  if (recurse) {
    spec.kvPrefixes = {key};
  } else {
    spec.kvKeys = {key};
  }
  Run run = [key, keys, recurse, raw, separator](const store::Tables& t) {
    // Consul's index rules: a key's own ModifyIndex; for a missing key the table index; for a
    // listing the newest change under the prefix, deletes included.
    if (!recurse) {
      auto it = t.kvs.find(key);
      if (it == t.kvs.end()) return Answer{t.kvsIndex, net::HttpResponse::text(404, "")};
      uint64_t index = it->second.modifyIndex;
      if (raw) {
        net::HttpResponse r = net::HttpResponse::text(200, it->second.value);
        r.contentType = "text/plain";
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        r.headers.emplace_back("Content-Security-Policy", "sandbox");
        return Answer{index, std::move(r)};
      }
      return Answer{index, jsonResponse(Json::array({encodeKV(it->second)}))};
    }
    uint64_t index = t.indexForKVPrefix(key);
    Json out = Json::array();
    std::string lastPrefix;
    for (auto it = t.kvs.lower_bound(key); it != t.kvs.end() && it->first.starts_with(key); ++it) {
      if (!keys) {
        out.push_back(encodeKV(it->second));
        continue;
      }
      if (!separator.empty()) {
        size_t pos = it->first.find(separator, key.size());
        if (pos != std::string::npos) {
          std::string prefix = it->first.substr(0, pos + separator.size());
          if (prefix != lastPrefix) out.push_back(prefix);
          lastPrefix = prefix;
          continue;
        }
      }
      out.push_back(it->first);
    }
    if (!keys && out.empty()) return Answer{index, net::HttpResponse::text(404, "")};
    return Answer{index, jsonResponse(out)};
  };
  co_return co_await blocking(req, spec, run);
}

}  // namespace taskmesh::api
