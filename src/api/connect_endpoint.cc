// /v1/connect/* (reference §13, §14): CA roots and configuration, intentions.
#include <algorithm>

#include "api/codec.h"
#include "api/fields.h"
#include "api/http_api.h"
#include "base/duration.h"
#include "base/json.h"
#include "connect/intentions.h"
#include "connect/proxy_config.h"
#include "connect/spiffe.h"

namespace taskmesh::api {
namespace {

constexpr std::chrono::hours kMinLeafTtl{1};
constexpr std::chrono::hours kMaxLeafTtl{8760};

net::HttpResponse notFound(const net::HttpRequest& req) {
  return net::HttpResponse::text(
      404, "Invalid URL path: not a recognized HTTP API endpoint: " + req.path);
}

net::HttpResponse methodNotAllowed(const net::HttpRequest& req) {
  return net::HttpResponse::text(405, "method " + req.method + " not allowed");
}

Json encodeRoot(const store::Tables& t, const store::CaRoot& r) {
  return {{"ID", r.id},
          {"Name", r.name},
          {"SerialNumber", r.serialNumber},
          {"SigningKeyID", r.signingKeyId},
          {"ExternalTrustDomain", t.clusterId},
          {"NotBefore", formatRfc3339(r.notBefore)},
          {"NotAfter", formatRfc3339(r.notAfter)},
          {"RootCert", r.rootCertPem},
          {"IntermediateCerts",
           r.intermediateCertPems.empty() ? Json(nullptr) : Json(r.intermediateCertPems)},
          {"Active", r.active},
          {"PrivateKeyType", "ec"},
          {"PrivateKeyBits", 256},
          {"CreateIndex", r.createIndex},
          {"ModifyIndex", r.modifyIndex}};
}

Json encodeCaConfig(const store::CaConfig& c) {
  return {{"Provider", c.provider},
          {"Config",
           {{"LeafCertTTL", c.leafCertTtl},
            {"RotationPeriod", c.rotationPeriod},
            {"IntermediateCertTTL", c.intermediateCertTtl},
            {"RootCertTTL", c.rootCertTtl}}},
          {"State", nullptr},
          {"ForceWithoutCrossSigning", false},
          {"CreateIndex", c.createIndex},
          {"ModifyIndex", c.modifyIndex}};
}

// A TTL field of the CA configuration: a Go duration within [min, max].
Result<void> ttlField(const Fields& f, const char* name, std::chrono::hours min,
                      std::chrono::hours max, std::string& out) {
  const Json* v = f.find(name);
  if (!v || v->is_null()) return {};
  if (!v->is_string()) return makeError(decodeError(f.at(name), "expected a duration string"));
  auto d = parseDuration(v->get<std::string>());
  if (!d) return makeError(decodeError(f.at(name), d.error().message));
  if (*d < min || *d > max) {
    return makeError(ErrorCode::kInvalidArgument,
                     f.at(name) + " must be between " + formatDuration(min) + " and " +
                         formatDuration(max) + ", got " + v->get<std::string>());
  }
  out = formatDuration(*d);
  return {};
}

Result<CaConfigUpdate> decodeCaConfigUpdate(std::string_view body, store::CaConfig current) {
  auto parsed = parseJsonBounded(body);
  if (!parsed || !parsed->is_object()) {
    return makeError(decodeError("", "expected a JSON object with Provider and Config"));
  }
  Fields top(*parsed, "");
  TM_TRY(provider, top.str("Provider"));
  if (!provider.empty() && provider != "consul") {
    return makeError(ErrorCode::kInvalidArgument,
                     "CA provider \"" + provider + "\" is not supported: only \"consul\"");
  }
  TM_TRY(force, top.boolean("ForceWithoutCrossSigning"));
  TM_TRY(config, top.object("Config"));
  CaConfigUpdate u{current, force};
  if (config.is_null()) return u;
  for (const auto& [key, value] : config.items()) {
    static constexpr std::string_view kKnown[] = {"LeafCertTTL", "RotationPeriod",
                                                  "IntermediateCertTTL", "RootCertTTL"};
    bool known = std::any_of(std::begin(kKnown), std::end(kKnown),
                             [&](std::string_view k) { return sameFieldName(key, k); });
    if (!known) {
      return makeError(ErrorCode::kInvalidArgument,
                       "Config." + key +
                           " is not supported (the built-in CA makes its own keys; known: "
                           "LeafCertTTL, RotationPeriod, IntermediateCertTTL, RootCertTTL)");
    }
  }
  Fields f(config, "Config");
  using std::chrono::hours;
  for (auto r :
       {ttlField(f, "LeafCertTTL", kMinLeafTtl, kMaxLeafTtl, u.config.leafCertTtl),
        ttlField(f, "RotationPeriod", hours(1), hours(876000), u.config.rotationPeriod),
        ttlField(f, "IntermediateCertTTL", hours(1), hours(876000), u.config.intermediateCertTtl),
        ttlField(f, "RootCertTTL", hours(24), hours(876000), u.config.rootCertTtl)}) {
    if (!r) return makeError(r.error());
  }
  return u;
}

// The body of PUT /v1/connect/intentions/exact: Action (required), Description, Meta,
// SourceType. L7 Permissions are refused: taskmesh's proxy is L4.
Result<connect::Intention> decodeIntentionBody(std::string_view body) {
  auto parsed = parseJsonBounded(body);
  if (!parsed || !parsed->is_object()) {
    return makeError(decodeError("", "expected a JSON object with an Action"));
  }
  Fields f(*parsed, "");
  if (const Json* p = f.find("Permissions"); p && !p->is_null()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "Permissions (L7 intentions) are not supported: use Action allow or deny");
  }
  connect::Intention in;
  TM_TRY(action, f.str("Action"));
  auto a = connect::parseAction(action);
  if (!a) return makeError(ErrorCode::kInvalidArgument, "Action: " + a.error().message);
  in.action = *a;
  TM_TRY(description, f.str("Description"));
  in.description = std::move(description);
  TM_TRY(meta, f.stringMap("Meta"));
  in.meta = std::move(meta);
  TM_TRY(type, f.str("SourceType"));
  if (!type.empty()) in.sourceType = type;  // validateIntention() names a wrong one
  return in;
}

std::vector<connect::Intention> allIntentions(const store::Tables& t) {
  std::vector<connect::Intention> out;
  out.reserve(t.intentions.size());
  for (const auto& [key, in] : t.intentions) out.push_back(in);
  return out;
}

// ?source= and ?destination=, both validated as intention names.
Result<std::pair<std::string, std::string>> exactPair(const net::HttpRequest& req) {
  std::string source = req.param("source");
  std::string destination = req.param("destination");
  if (!req.has("source"))
    return makeError(ErrorCode::kInvalidArgument, "required query parameter 'source' not set");
  if (!req.has("destination")) {
    return makeError(ErrorCode::kInvalidArgument, "required query parameter 'destination' not set");
  }
  if (auto r = connect::validateIntentionName("source", source); !r) return makeError(r.error());
  if (auto r = connect::validateIntentionName("destination", destination); !r) {
    return makeError(r.error());
  }
  return std::make_pair(std::move(source), std::move(destination));
}

}  // namespace

void HttpApi::setPolicyHeader(net::HttpResponse& r) const {
  r.headers.emplace_back("X-Consul-Default-ACL-Policy",
                         info_.defaultIntentionAllow ? "allow" : "deny");
}

Awaitable<net::HttpResponse> HttpApi::connect(net::HttpRequest& req, std::string_view rest) {
  if (rest == "ca/roots") {
    if (req.method != "GET") co_return methodNotAllowed(req);
    bool pem = req.has("pem");
    store::WatchSpec spec{.ca = true};
    Run run = [pem](const store::Tables& t) {
      if (pem) {
        std::string chain;
        for (const auto& r : t.caRoots) chain += r.rootCertPem;
        net::HttpResponse resp = net::HttpResponse::text(200, chain);
        resp.contentType = "application/pem-certificate-chain";
        return Answer{t.caIndex, std::move(resp)};
      }
      const store::CaRoot* active = t.activeRoot();
      Json roots = Json::array();
      for (const auto& r : t.caRoots) roots.push_back(encodeRoot(t, r));
      Json out{{"ActiveRootID", active ? active->id : ""},
               {"TrustDomain", t.clusterId.empty() ? "" : connect::trustDomainFor(t.clusterId)},
               {"Roots", std::move(roots)}};
      return Answer{t.caIndex, jsonResponse(out)};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (rest == "ca/configuration") co_return co_await caConfiguration(req);
  if (rest == "intentions" || rest.starts_with("intentions/")) {
    co_return co_await intentions(req, rest.substr(std::min(rest.size(), size_t{11})));
  }
  co_return notFound(req);
}

Awaitable<net::HttpResponse> HttpApi::caConfiguration(net::HttpRequest& req) {
  if (req.method == "GET") {
    store::WatchSpec spec{.ca = true};
    Run run = [](const store::Tables& t) {
      return Answer{t.caConfig.modifyIndex, jsonResponse(encodeCaConfig(t.caConfig))};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (req.method != "PUT") co_return methodNotAllowed(req);
  if (!cluster_.isLeader()) co_return net::HttpResponse::text(500, "No cluster leader");
  if (!connectHooks_.setCaConfig) co_return net::HttpResponse::text(500, "CA is not available");
  store::CaConfig current = store_.read([](const store::Tables& t) { return t.caConfig; });
  auto update = decodeCaConfigUpdate(req.body, current);
  if (!update) co_return errorResponse(update.error());
  auto done = co_await connectHooks_.setCaConfig(*update);
  if (!done) co_return errorResponse(done.error());
  co_return net::HttpResponse::json("true");
}

Awaitable<net::HttpResponse> HttpApi::intentions(net::HttpRequest& req, std::string_view rest) {
  if (rest == "exact") co_return co_await intentionExact(req);
  if (req.method != "GET") co_return methodNotAllowed(req);
  if (rest.empty()) {
    if (req.has("filter")) {
      co_return net::HttpResponse::text(400, "the filter parameter is not supported here");
    }
    store::WatchSpec spec{.intentions = true};
    Run run = [](const store::Tables& t) {
      auto all = allIntentions(t);
      connect::sortForEvaluation(all);
      Json out = Json::array();
      for (const auto& in : all) out.push_back(connect::intentionToJson(in));
      return Answer{t.intentionsIndex, jsonResponse(out)};
    };
    auto resp = co_await blocking(req, spec, run);
    setPolicyHeader(resp);
    co_return resp;
  }
  if (rest == "match") {
    std::string by = req.param("by");
    if (by != "source" && by != "destination") {
      co_return net::HttpResponse::text(
          400, "by must be \"source\" or \"destination\", got \"" + by + "\"");
    }
    std::vector<std::string> names = req.params("name");
    if (names.empty())
      co_return net::HttpResponse::text(400, "required query parameter 'name' not set");
    for (const auto& n : names) {
      if (auto r = connect::validateIntentionName("name", n); !r)
        co_return errorResponse(r.error());
    }
    auto mode = by == "source" ? connect::MatchBy::kSource : connect::MatchBy::kDestination;
    store::WatchSpec spec{.intentions = true};
    Run run = [names, mode](const store::Tables& t) {
      auto all = allIntentions(t);
      Json out = Json::object();
      for (const auto& n : names) {
        Json list = Json::array();
        for (const auto& in : connect::match(all, mode, n))
          list.push_back(connect::intentionToJson(in));
        out[n] = std::move(list);
      }
      return Answer{t.intentionsIndex, jsonResponse(out)};
    };
    auto resp = co_await blocking(req, spec, run);
    setPolicyHeader(resp);
    co_return resp;
  }
  if (rest == "check") {
    auto pair = exactPair(req);
    if (!pair) co_return errorResponse(pair.error());
    bool defaultAllow = info_.defaultIntentionAllow;
    auto decision = store_.read([&](const store::Tables& t) {
      return connect::authorize(allIntentions(t), pair->first, pair->second, defaultAllow);
    });
    auto resp = jsonResponse(Json{{"Allowed", decision.allowed}});
    setPolicyHeader(resp);
    co_return resp;
  }
  co_return notFound(req);
}

Awaitable<net::HttpResponse> HttpApi::intentionExact(net::HttpRequest& req) {
  auto pair = exactPair(req);
  if (!pair) co_return errorResponse(pair.error());
  auto [source, destination] = *pair;
  if (req.method == "GET") {
    store::WatchSpec spec{.intentions = true};
    Run run = [source, destination](const store::Tables& t) {
      auto it = t.intentions.find({source, destination});
      if (it == t.intentions.end()) {
        return Answer{t.intentionsIndex, net::HttpResponse::text(404, "Intention not found")};
      }
      return Answer{t.intentionsIndex, jsonResponse(connect::intentionToJson(it->second))};
    };
    co_return co_await blocking(req, spec, run);
  }
  if (req.method == "PUT" || req.method == "POST") {
    auto in = decodeIntentionBody(req.body);
    if (!in) co_return errorResponse(in.error());
    in->sourceName = source;
    in->destinationName = destination;
    if (auto v = connect::validateIntention(*in); !v) co_return errorResponse(v.error());
    store::Command command = store::IntentionSetCommand{std::move(*in)};
    co_return co_await write(command, true);
  }
  if (req.method == "DELETE") {
    store::Command command = store::IntentionDeleteCommand{source, destination};
    co_return co_await write(command, true);
  }
  co_return methodNotAllowed(req);
}

}  // namespace taskmesh::api
