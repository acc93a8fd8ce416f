#include "connect/proxy_config.h"

#include <set>
#include <string_view>

namespace taskmesh::connect {
namespace {

using nlohmann::json;

// A strict reader over one JSON object: every accessor records the first error, naming the
// field by path, and leaves the target untouched when the field is absent.
class Reader {
 public:
  Reader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail("", "expected an object");
  }

  void string(const char* key, std::string& out, bool required = false) {
    const json* v = find(key, required);
    if (!v) return;
    if (!v->is_string()) return fail(key, "expected a string");
    out = v->get<std::string>();
  }

  void integer(const char* key, int& out, int min, int max, bool required = false) {
    const json* v = find(key, required);
    if (!v) return;
    if (!v->is_number_integer() || v->get<int64_t>() < min || v->get<int64_t>() > max) {
      return fail(key, "expected an integer " + std::to_string(min) + ".." + std::to_string(max));
    }
    out = static_cast<int>(v->get<int64_t>());
  }

  void index(const char* key, uint64_t& out) {
    const json* v = find(key, false);
    if (!v) return;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0)) {
      return fail(key, "expected a non-negative integer");
    }
    out = v->get<uint64_t>();
  }

  void boolean(const char* key, bool& out) {
    const json* v = find(key, false);
    if (!v) return;
    if (!v->is_boolean()) return fail(key, "expected true or false");
    out = v->get<bool>();
  }

  // An array member; absent or null gives an empty array.
  const json* array(const char* key) {
    const json* v = find(key, false);
    if (!v || v->is_null()) return nullptr;
    if (!v->is_array()) {
      fail(key, "expected an array");
      return nullptr;
    }
    return v;
  }

  const json* object(const char* key, bool required) {
    const json* v = find(key, required);
    if (v && !v->is_object()) {
      fail(key, "expected an object");
      return nullptr;
    }
    return v;
  }

  std::string path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  void fail(const char* key, const std::string& what) {
    if (error_.empty())
      error_ = (*key ? path(key) : path_.empty() ? "snapshot" : path_) + ": " + what;
  }
  void adopt(const Error& e) {
    if (error_.empty()) error_ = e.message;
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  const json* find(const char* key, bool required) {
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(key);
    if (it == j_.end() || (it->is_null() && !required)) {
      if (required) fail(key, "is required");
      return nullptr;
    }
    return &*it;
  }

  const json& j_;
  std::string path_;
  std::string error_;
};

std::string indexed(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

Result<UpstreamEndpoint> decodeEndpoint(const json& j, const std::string& path) {
  Reader r(j, path);
  UpstreamEndpoint e;
  r.string("Address", e.address, true);
  r.integer("Port", e.port, 1, 65535, true);
  r.string("Node", e.node);
  r.string("ServiceID", e.serviceId);
  if (r.ok() && e.address.empty()) r.fail("Address", "must not be empty");
  if (!r.ok()) return makeError(ErrorCode::kInvalidArgument, r.error());
  return e;
}

Result<UpstreamSnapshot> decodeUpstream(const json& j, const std::string& path) {
  Reader r(j, path);
  UpstreamSnapshot u;
  r.string("DestinationName", u.destinationName, true);
  r.string("Datacenter", u.datacenter);
  r.string("LocalBindAddress", u.localBindAddress);
  r.integer("LocalBindPort", u.localBindPort, 1, 65535, true);
  r.integer("ConnectTimeoutMs", u.connectTimeoutMs, 1, 600000);
  r.string("SpiffeID", u.spiffeId, true);
  if (const json* endpoints = r.array("Endpoints")) {
    for (size_t i = 0; i < endpoints->size() && r.ok(); ++i) {
      auto e = decodeEndpoint((*endpoints)[i], indexed(r.path("Endpoints"), i));
      if (!e)
        r.adopt(e.error());
      else
        u.endpoints.push_back(std::move(*e));
    }
  }
  if (r.ok() && u.destinationName.empty()) r.fail("DestinationName", "must not be empty");
  if (!r.ok()) return makeError(ErrorCode::kInvalidArgument, r.error());
  return u;
}

}  // namespace

Result<Intention> intentionFromJson(const json& j, const std::string& path) {
  Reader r(j, path);
  Intention in;
  std::string action;
  r.string("SourceNS", in.sourceNs);
  r.string("SourceName", in.sourceName, true);
  r.string("DestinationNS", in.destinationNs);
  r.string("DestinationName", in.destinationName, true);
  r.string("SourceType", in.sourceType);
  r.string("Action", action, true);
  r.string("Description", in.description);
  r.index("CreateIndex", in.createIndex);
  r.index("ModifyIndex", in.modifyIndex);
  if (!r.ok()) return makeError(ErrorCode::kInvalidArgument, r.error());
  auto parsed = parseAction(action);
  if (!parsed)
    return makeError(ErrorCode::kInvalidArgument, r.path("Action") + ": " + parsed.error().message);
  in.action = *parsed;
  if (auto meta = j.find("Meta"); meta != j.end() && !meta->is_null()) {
    if (!meta->is_object()) {
      return makeError(ErrorCode::kInvalidArgument, r.path("Meta") + ": expected an object");
    }
    for (const auto& [k, v] : meta->items()) {
      if (!v.is_string()) {
        return makeError(ErrorCode::kInvalidArgument,
                         r.path("Meta") + "." + k + ": expected a string");
      }
      in.meta[k] = v.get<std::string>();
    }
  }
  return in;
}

namespace {

void decodeLeafAndRoots(Reader& r, ProxySnapshot& s) {
  if (const json* leaf = r.object("Leaf", true)) {
    Reader lr(*leaf, r.path("Leaf"));
    lr.string("CertPEM", s.leafCertPem, true);
    lr.string("PrivateKeyPEM", s.leafKeyPem, true);
    lr.string("ValidBefore", s.leafValidBefore);
    if (lr.ok() && (s.leafCertPem.empty() || s.leafKeyPem.empty())) {
      lr.fail("CertPEM", "the leaf certificate and key must not be empty");
    }
    if (!lr.ok()) r.adopt(Error{ErrorCode::kInvalidArgument, lr.error()});
  }
  const json* roots = r.array("Roots");
  if (r.ok() && (!roots || roots->empty())) r.fail("Roots", "at least one root is required");
  for (size_t i = 0; roots && i < roots->size() && r.ok(); ++i) {
    const json& pem = (*roots)[i];
    if (!pem.is_string() || pem.get<std::string>().empty()) {
      r.adopt(Error{ErrorCode::kInvalidArgument,
                    indexed(r.path("Roots"), i) + ": expected a PEM certificate string"});
    } else {
      s.rootPems.push_back(pem.get<std::string>());
    }
  }
}

// Ports this proxy binds must be distinct, or a listener would fail at runtime.
void checkDistinctPorts(Reader& r, const ProxySnapshot& s) {
  std::set<std::pair<std::string, int>> bound = {{s.publicBindAddress, s.publicPort}};
  for (size_t i = 0; i < s.upstreams.size() && r.ok(); ++i) {
    const auto& u = s.upstreams[i];
    if (!bound.insert({u.localBindAddress, u.localBindPort}).second) {
      r.adopt(Error{ErrorCode::kInvalidArgument,
                    indexed(r.path("Upstreams"), i) + ".LocalBindPort: " + u.localBindAddress +
                        ":" + std::to_string(u.localBindPort) + " is already bound by this proxy"});
    }
  }
}

}  // namespace

json intentionToJson(const Intention& i) {
  return {{"ID", ""},
          {"Description", i.description},
          {"SourceNS", i.sourceNs},
          {"SourceName", i.sourceName},
          {"DestinationNS", i.destinationNs},
          {"DestinationName", i.destinationName},
          {"SourceType", i.sourceType},
          {"Action", actionName(i.action)},
          {"Meta", i.meta},
          {"Precedence", precedence(i)},
          {"CreateIndex", i.createIndex},
          {"ModifyIndex", i.modifyIndex}};
}

json toJson(const ProxySnapshot& s) {
  json upstreams = json::array();
  for (const auto& u : s.upstreams) {
    json endpoints = json::array();
    for (const auto& e : u.endpoints) {
      endpoints.push_back(
          {{"Address", e.address}, {"Port", e.port}, {"Node", e.node}, {"ServiceID", e.serviceId}});
    }
    upstreams.push_back({{"DestinationName", u.destinationName},
                         {"Datacenter", u.datacenter},
                         {"LocalBindAddress", u.localBindAddress},
                         {"LocalBindPort", u.localBindPort},
                         {"ConnectTimeoutMs", u.connectTimeoutMs},
                         {"SpiffeID", u.spiffeId},
                         {"Endpoints", std::move(endpoints)}});
  }
  json intentions = json::array();
  for (const auto& i : s.intentions) intentions.push_back(intentionToJson(i));
  return {{"Index", s.index},
          {"ProxyID", s.proxyId},
          {"Service", s.service},
          {"ServiceID", s.serviceId},
          {"Datacenter", s.datacenter},
          {"TrustDomain", s.trustDomain},
          {"PublicListener", {{"Address", s.publicBindAddress}, {"Port", s.publicPort}}},
          {"LocalApp",
           {{"Address", s.localAppAddress},
            {"Port", s.localAppPort},
            {"ConnectTimeoutMs", s.localConnectTimeoutMs}}},
          {"Upstreams", std::move(upstreams)},
          {"Leaf",
           {{"CertPEM", s.leafCertPem},
            {"PrivateKeyPEM", s.leafKeyPem},
            {"ValidBefore", s.leafValidBefore}}},
          {"Roots", s.rootPems},
          {"DefaultAllow", s.defaultAllow},
          {"Intentions", std::move(intentions)}};
}

Result<ProxySnapshot> proxySnapshotFromJson(const json& j) {
  Reader r(j, "");
  ProxySnapshot s;
  r.index("Index", s.index);
  r.string("ProxyID", s.proxyId, true);
  r.string("Service", s.service, true);
  r.string("ServiceID", s.serviceId);
  r.string("Datacenter", s.datacenter);
  r.string("TrustDomain", s.trustDomain, true);
  if (const json* pl = r.object("PublicListener", true)) {
    Reader pr(*pl, "PublicListener");
    pr.string("Address", s.publicBindAddress);
    pr.integer("Port", s.publicPort, 1, 65535, true);
    if (!pr.ok()) r.adopt(Error{ErrorCode::kInvalidArgument, pr.error()});
  }
  if (const json* app = r.object("LocalApp", true)) {
    Reader ar(*app, "LocalApp");
    ar.string("Address", s.localAppAddress);
    ar.integer("Port", s.localAppPort, 1, 65535, true);
    ar.integer("ConnectTimeoutMs", s.localConnectTimeoutMs, 1, 600000);
    if (!ar.ok()) r.adopt(Error{ErrorCode::kInvalidArgument, ar.error()});
  }
  if (const json* ups = r.array("Upstreams")) {
    for (size_t i = 0; i < ups->size() && r.ok(); ++i) {
      auto u = decodeUpstream((*ups)[i], indexed("Upstreams", i));
      if (!u)
        r.adopt(u.error());
      else
        s.upstreams.push_back(std::move(*u));
    }
  }
  if (r.ok()) decodeLeafAndRoots(r, s);
  r.boolean("DefaultAllow", s.defaultAllow);
  if (const json* ins = r.array("Intentions")) {
    for (size_t i = 0; i < ins->size() && r.ok(); ++i) {
      auto in = intentionFromJson((*ins)[i], indexed("Intentions", i));
      if (!in)
        r.adopt(in.error());
      else
        s.intentions.push_back(std::move(*in));
    }
  }
  if (r.ok()) checkDistinctPorts(r, s);
  if (r.ok() && (s.proxyId.empty() || s.service.empty() || s.trustDomain.empty())) {
    r.fail("", "ProxyID, Service and TrustDomain must not be empty");
  }
  if (!r.ok()) return makeError(ErrorCode::kInvalidArgument, r.error());
  return s;
}

}  // namespace taskmesh::connect
