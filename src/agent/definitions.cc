#include "agent/definitions.h"

#include "api/codec.h"
#include "api/fields.h"
#include "base/duration.h"
#include "net/http_client.h"
#include "net/http_server.h"

namespace taskmesh::agent {
namespace {

using api::decodeError;
using api::Fields;
using api::typeName;

constexpr Millis kDefaultTimeout{10000};
constexpr Millis kDefaultScriptTimeout{30000};

Error invalidCheck(const std::string& what) {
  return Error{ErrorCode::kInvalidArgument, "Invalid check: " + what};
}

// A duration as Consul's agent accepts it: a Go duration string, or a number of nanoseconds.
Result<Millis> durationField(const Fields& f, std::string_view name) {
  if (const Json* v = f.find(name); v != nullptr && v->is_number()) {
    double ns = v->get<double>();
    if (ns < 0) return makeError(decodeError(f.at(name), "must not be negative"));
    if (ns > 1e18) return makeError(decodeError(f.at(name), "out of range"));
    return std::chrono::duration_cast<Millis>(std::chrono::nanoseconds(static_cast<int64_t>(ns)));
  }
  TM_TRY(text, f.str(name));
  if (text.empty()) return Millis{0};
  auto d = parseDuration(text);
  if (!d) return makeError(decodeError(f.at(name), d.error().message));
  if (d->count() < 0) return makeError(decodeError(f.at(name), "must not be negative"));
  return std::chrono::duration_cast<Millis>(*d);
}

std::string formatMillis(Millis d) { return formatDuration(d); }

}  // namespace

const char* kindName(CheckKind kind) {
  switch (kind) {
    case CheckKind::kTtl:
      return "ttl";
    case CheckKind::kHttp:
      return "http";
    case CheckKind::kTcp:
      return "tcp";
    case CheckKind::kScript:
      return "script";
    case CheckKind::kAlias:
      return "alias";
    case CheckKind::kMaintenance:
      return "maintenance";
  }
  return "ttl";
}

Json CheckDefinition::definitionJson() const {
  Json header = Json::object();
  for (const auto& [k, v] : this->header) header[k] = v;
  return Json{{"Interval", formatMillis(interval)},
              {"Timeout", formatMillis(timeout)},
              {"DeregisterCriticalServiceAfter", formatMillis(deregisterCriticalServiceAfter)},
              {"HTTP", http},
              {"Header", this->header.empty() ? Json() : header},
              {"Method", kind == CheckKind::kHttp ? method : ""},
              {"Body", body},
              {"TLSServerName", ""},
              {"TLSSkipVerify", false},
              {"TCP", tcp}};
}

Json CheckDefinition::toJson() const {
  Json j = {{"ID", id},
            {"Name", name},
            {"ServiceID", serviceId},
            {"Notes", notes},
            {"Status", initialStatus},
            {"SuccessBeforePassing", successBeforePassing},
            {"FailuresBeforeWarning", failuresBeforeWarning},
            {"FailuresBeforeCritical", failuresBeforeCritical},
            {"OutputMaxSize", outputMaxSize}};
  auto put = [&j](const char* key, Millis d) {
    if (d.count() > 0) j[key] = formatMillis(d);
  };
  put("Interval", interval);
  put("Timeout", timeout);
  put("TTL", ttl);
  put("DeregisterCriticalServiceAfter", deregisterCriticalServiceAfter);
  switch (kind) {
    case CheckKind::kHttp: {
      j["HTTP"] = http;
      j["Method"] = method;
      j["Body"] = body;
      Json h = Json::object();
      for (const auto& [k, v] : header) h[k] = v;
      j["Header"] = h;
      break;
    }
    case CheckKind::kTcp:
      j["TCP"] = tcp;
      break;
    case CheckKind::kScript:
      j["Args"] = args;
      break;
    case CheckKind::kAlias:
      j["AliasService"] = aliasService;
      j["AliasNode"] = aliasNode;
      break;
    case CheckKind::kTtl:
    case CheckKind::kMaintenance:
      break;
  }
  return j;
}

Result<CheckDefinition> decodeCheckDefinition(const Json& j, const std::string& path,
                                              const DecodeOptions& options,
                                              const std::string& serviceId,
                                              const std::string& defaultId,
                                              const std::string& defaultName) {
  if (!j.is_object()) return makeError(decodeError(path, "expected an object, got " + typeName(j)));
  Fields f(j, path);
  CheckDefinition c;
  TM_TRY(id, f.str("ID"));
  TM_TRY(checkId, f.str("CheckID"));
  TM_TRY(name, f.str("Name"));
  TM_TRY(sid, f.str("ServiceID"));
  TM_TRY(notes, f.str("Notes"));
  TM_TRY(status, f.str("Status"));
  TM_TRY(http, f.str("HTTP"));
  TM_TRY(method, f.str("Method"));
  TM_TRY(body, f.str("Body"));
  TM_TRY(tcp, f.str("TCP"));
  TM_TRY(args, f.stringList("Args"));
  TM_TRY(scriptArgs, f.stringList("ScriptArgs"));
  TM_TRY(script, f.str("Script"));
  TM_TRY(aliasService, f.str("AliasService"));
  TM_TRY(aliasNode, f.str("AliasNode"));
  TM_TRY(grpc, f.str("GRPC"));
  TM_TRY(docker, f.str("DockerContainerID"));
  TM_TRY(h2ping, f.str("H2PING"));
  TM_TRY(interval, durationField(f, "Interval"));
  TM_TRY(timeout, durationField(f, "Timeout"));
  TM_TRY(ttl, durationField(f, "TTL"));
  TM_TRY(dcsa, durationField(f, "DeregisterCriticalServiceAfter"));
  TM_TRY(sbp, f.integer("SuccessBeforePassing", 0, 1 << 20));
  TM_TRY(fbw, f.integer("FailuresBeforeWarning", 0, 1 << 20));
  TM_TRY(fbc, f.integer("FailuresBeforeCritical", 0, 1 << 20));
  TM_TRY(outMax, f.integer("OutputMaxSize", 0, 1 << 20));
  if (!grpc.empty() || !docker.empty() || !h2ping.empty()) {
    return makeError(invalidCheck("GRPC, Docker and H2PING checks are not supported by taskmesh"));
  }
  if (!script.empty()) {
    return makeError(invalidCheck("the legacy Script field is not supported; use Args"));
  }
  if (args.empty()) args = std::move(scriptArgs);

  c.id = !id.empty() ? id : !checkId.empty() ? checkId : defaultId;
  c.name = !name.empty() ? name : defaultName;
  if (c.name.empty()) {
    return makeError(Error{ErrorCode::kInvalidArgument, "Missing check name"});
  }
  if (c.id.empty()) c.id = c.name;
  c.serviceId = sid.empty() ? serviceId : sid;
  c.notes = std::move(notes);
  if (!status.empty() && !api::isValidCheckStatus(status)) {
    return makeError(
        Error{ErrorCode::kInvalidArgument,
              "Status for checks must 'passing', 'warning', 'critical', got \"" + status + "\""});
  }
  if (!status.empty()) c.initialStatus = status;

  int kinds = (!http.empty()) + (!tcp.empty()) + (!args.empty()) + (ttl.count() > 0) +
              (!aliasService.empty() || !aliasNode.empty());
  if (kinds == 0) {
    return makeError(
        invalidCheck((path.empty() ? std::string("check") : path) +
                     " must have one of TTL, HTTP, TCP, Args (script) or AliasService/AliasNode"));
  }
  if (kinds > 1) {
    return makeError(invalidCheck((path.empty() ? std::string("check") : path) +
                                  " has more than one of TTL, HTTP, TCP, Args and Alias*"));
  }
  if (!http.empty()) {
    c.kind = CheckKind::kHttp;
    auto url = net::parseHttpUrl(http);
    if (!url) return makeError(invalidCheck(f.at("HTTP") + ": " + url.error().message));
    c.http = std::move(http);
    c.method = method.empty() ? "GET" : method;
    c.body = std::move(body);
    if (const Json* h = f.find("Header"); h != nullptr && !h->is_null()) {
      if (!h->is_object())
        return makeError(decodeError(f.at("Header"), "expected an object, got " + typeName(*h)));
      for (auto it = h->begin(); it != h->end(); ++it) {
        std::string p = f.at("Header") + "[\"" + it.key() + "\"]";
        if (!it->is_array())
          return makeError(decodeError(p, "expected an array of strings, got " + typeName(*it)));
        for (const auto& v : *it) {
          if (!v.is_string())
            return makeError(decodeError(p, "expected an array of strings, got " + typeName(v)));
          c.header[it.key()].push_back(v.get<std::string>());
        }
      }
    }
  } else if (!tcp.empty()) {
    c.kind = CheckKind::kTcp;
    auto hp = net::splitHostPort(tcp);
    if (!hp || hp->second == 0)
      return makeError(invalidCheck(f.at("TCP") + ": \"" + tcp + "\" is not host:port"));
    c.tcp = std::move(tcp);
  } else if (!args.empty()) {
    c.kind = CheckKind::kScript;
    if (!options.enableScriptChecks) {
      return makeError(
          invalidCheck("Scripts are disabled on this agent; to enable, configure "
                       "'enable_script_checks' or 'enable_local_script_checks' to true"));
    }
    c.args = std::move(args);
  } else if (ttl.count() > 0) {
    c.kind = CheckKind::kTtl;
    c.ttl = ttl;
  } else {
    c.kind = CheckKind::kAlias;
    c.aliasService = std::move(aliasService);
    c.aliasNode = std::move(aliasNode);
  }
  bool needsInterval =
      c.kind == CheckKind::kHttp || c.kind == CheckKind::kTcp || c.kind == CheckKind::kScript;
  if (needsInterval && interval.count() <= 0) {
    return makeError(
        invalidCheck(f.at("Interval") + " is required for " + kindName(c.kind) + " checks"));
  }
  if (needsInterval && interval < Millis(10)) {
    return makeError(invalidCheck(f.at("Interval") + " must be at least 10ms"));
  }
  c.interval = interval;
  c.timeout = timeout.count() > 0
                  ? timeout
                  : (c.kind == CheckKind::kScript ? kDefaultScriptTimeout : kDefaultTimeout);
  c.deregisterCriticalServiceAfter = dcsa;
  c.successBeforePassing = static_cast<int>(sbp);
  c.failuresBeforeCritical = static_cast<int>(fbc);
  // 0 (absent or given) means "same as FailuresBeforeCritical", as in Consul's addCheck.
  c.failuresBeforeWarning = fbw > 0 ? static_cast<int>(fbw) : c.failuresBeforeCritical;
  c.outputMaxSize = outMax > 0 ? static_cast<size_t>(outMax) : 4096;
  return c;
}

namespace {

// Checks given with a service ("Check" and "Checks"), IDs generated as agent.go does:
// "service:<id>" for one, "service:<id>:<i>" (1-based) for several.
Result<std::vector<CheckDefinition>> serviceChecks(const Fields& f, const store::Service& s,
                                                   const DecodeOptions& options) {
  std::vector<std::pair<const Json*, std::string>> given;
  // An empty "Check": {} means no check, as in Consul (clients send it by default).
  if (const Json* one = f.find("Check");
      one != nullptr && !one->is_null() && !(one->is_object() && one->empty()))
    given.push_back({one, f.at("Check")});
  if (const Json* list = f.find("Checks"); list != nullptr && !list->is_null()) {
    if (!list->is_array())
      return makeError(decodeError(f.at("Checks"), "expected an array, got " + typeName(*list)));
    for (size_t i = 0; i < list->size(); ++i)
      given.push_back({&(*list)[i], f.at("Checks") + "[" + std::to_string(i) + "]"});
  }
  std::vector<CheckDefinition> out;
  for (size_t i = 0; i < given.size(); ++i) {
    std::string id = "service:" + s.id;
    if (given.size() > 1) id += ":" + std::to_string(i + 1);
    TM_TRY(check, decodeCheckDefinition(*given[i].first, given[i].second, options, s.id, id,
                                        "Service '" + s.service + "' check"));
    if (check.serviceId != s.id) {
      return makeError(
          invalidCheck(given[i].second + ".ServiceID must be the service's ID \"" + s.id + "\""));
    }
    out.push_back(std::move(check));
  }
  return out;
}

// The service fields of an agent registration (Name, not the catalog's Service).
Result<store::Service> decodeAgentService(const Json& j, const std::string& path) {
  Fields f(j, path);
  TM_TRY(name, f.str("Name"));
  if (name.empty()) return makeError(Error{ErrorCode::kInvalidArgument, "Missing service name"});
  // The catalog decoder does the field checks; it reads the name from "Service".
  Json copy = j;
  for (auto it = copy.begin(); it != copy.end();) {
    std::string k = it.key();
    bool drop = api::sameFieldName(k, "Check") || api::sameFieldName(k, "Checks") ||
                api::sameFieldName(k, "Service");
    it = drop ? copy.erase(it) : std::next(it);
  }
  copy["Service"] = name;
  return api::decodeService(copy, path);
}

}  // namespace

Result<std::vector<ServiceDefinition>> decodeServiceRegistration(const Json& body,
                                                                 const DecodeOptions& options,
                                                                 const PortAllocator& ports) {
  if (!body.is_object())
    return makeError(decodeError("", "expected a JSON object, got " + typeName(body)));
  Fields f(body, "");
  TM_TRY(service, decodeAgentService(body, ""));
  if (service.kind == "connect-proxy") {
    // A named copy: Fields keeps a reference, which must outlive it.
    const Json proxy = service.proxy.is_object() ? service.proxy : Json::object();
    Fields pf(proxy, "Proxy");
    TM_TRY(dest, pf.str("DestinationServiceName"));
    if (dest.empty()) {
      return makeError(Error{ErrorCode::kInvalidArgument,
                             "Validation failed: Proxy.DestinationServiceName must be non-empty "
                             "for Connect proxy services"});
    }
    if (service.port == 0) {
      return makeError(Error{ErrorCode::kInvalidArgument,
                             "Validation failed: Port must be set for a Connect proxy"});
    }
  }
  TM_TRY(checks, serviceChecks(f, service, options));
  std::vector<ServiceDefinition> out;
  Json sidecarJson;
  if (service.connect.is_object()) {
    Fields cf(service.connect, "Connect");
    if (const Json* sc = cf.find("SidecarService"); sc != nullptr && !sc->is_null()) {
      if (!sc->is_object())
        return makeError(
            decodeError("Connect.SidecarService", "expected an object, got " + typeName(*sc)));
      sidecarJson = *sc;
    }
  }
  store::Service parent = service;
  if (!sidecarJson.is_null()) {
    // The parent is stored without the nested sidecar, as Consul does.
    for (auto it = parent.connect.begin(); it != parent.connect.end();) {
      it =
          api::sameFieldName(it.key(), "SidecarService") ? parent.connect.erase(it) : std::next(it);
    }
    if (parent.connect.empty()) parent.connect = Json();
  }
  out.push_back({parent, std::move(checks)});
  if (sidecarJson.is_null()) return out;

  const std::string path = "Connect.SidecarService";
  Fields sf(sidecarJson, path);
  for (const char* forbidden : {"ID", "Kind"}) {
    if (const Json* v = sf.find(forbidden); v != nullptr && !v->is_null()) {
      return makeError(Error{ErrorCode::kInvalidArgument, std::string("Invalid SidecarService: ") +
                                                              forbidden + " can't be set"});
    }
  }
  if (const Json* c = sf.find("Connect"); c != nullptr && !c->is_null()) {
    return makeError(Error{ErrorCode::kInvalidArgument,
                           "Invalid SidecarService: Connect can't be set on a sidecar"});
  }
  Json sj = sidecarJson;
  TM_TRY(sidecarName, sf.str("Name"));
  if (sidecarName.empty()) sj["Name"] = service.service + "-sidecar-proxy";
  TM_TRY(sidecar, decodeAgentService(sj, path));
  sidecar.id = service.id + "-sidecar-proxy";
  sidecar.kind = "connect-proxy";
  // Empty (not only absent) Tags, Meta and Address come from the parent, as in Consul.
  if (sidecar.tags.empty()) sidecar.tags = service.tags;
  if (sidecar.meta.empty()) sidecar.meta = service.meta;
  if (sidecar.address.empty()) sidecar.address = service.address;
  if (sidecar.port == 0) {
    sidecar.port = ports ? ports(sidecar.id) : 0;
    if (sidecar.port == 0) {
      return makeError(Error{ErrorCode::kInvalidArgument,
                             "Invalid SidecarService: no free sidecar port in the range"});
    }
  }
  Json proxy = sidecar.proxy.is_object() ? sidecar.proxy : Json::object();
  Fields pf(proxy, path + ".Proxy");
  auto setDefault = [&proxy, &pf](const char* key, Json value) {
    const Json* v = pf.find(key);
    if (v == nullptr || v->is_null() || (v->is_string() && v->get<std::string>().empty()) ||
        (v->is_number() && v->get<int64_t>() == 0)) {
      proxy[key] = std::move(value);
    }
  };
  setDefault("DestinationServiceName", service.service);
  setDefault("DestinationServiceID", service.id);
  setDefault("LocalServiceAddress", "127.0.0.1");
  setDefault("LocalServicePort", service.port);
  sidecar.proxy = proxy;
  TM_TRY(sidecarChecks, serviceChecks(sf, sidecar, options));
  if (sidecarChecks.empty()) {
    CheckDefinition listening;
    listening.id = "service:" + sidecar.id + ":1";
    listening.name = "Connect Sidecar Listening";
    listening.serviceId = sidecar.id;
    listening.kind = CheckKind::kTcp;
    listening.tcp = "127.0.0.1:" + std::to_string(sidecar.port);
    listening.interval = Millis(10000);
    listening.timeout = kDefaultTimeout;
    CheckDefinition alias;
    alias.id = "service:" + sidecar.id + ":2";
    alias.name = "Connect Sidecar Aliasing " + service.id;
    alias.serviceId = sidecar.id;
    alias.kind = CheckKind::kAlias;
    alias.aliasService = service.id;
    sidecarChecks = {listening, alias};
  }
  out.push_back({sidecar, std::move(sidecarChecks)});
  return out;
}

}  // namespace taskmesh::agent
