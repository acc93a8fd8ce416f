#include "api/codec.h"

#include "api/fields.h"

#include <openssl/evp.h>

#include "base/json.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace taskmesh::api {

bool isValidCheckStatus(std::string_view s) {
  return s == store::kPassing || s == store::kWarning || s == store::kCritical;
}

Result<Json> parseObject(std::string_view body) {
  auto parsed = parseJsonBounded(body);
  if (!parsed)
    return makeError(decodeError("", "body is not valid JSON: " + parsed.error().message));
  Json j = std::move(*parsed);
  if (!j.is_object())
    return makeError(decodeError("", "expected a JSON object, got " + typeName(j)));
  return j;
}

Result<store::Service> decodeService(const Json& j, const std::string& path) {
  if (!j.is_object()) return makeError(decodeError(path, "expected an object, got " + typeName(j)));
  Fields f(j, path);
  store::Service s;
  TM_TRY(name, f.str("Service"));
  TM_TRY(id, f.str("ID"));
  TM_TRY(kind, f.str("Kind"));
  TM_TRY(tags, f.stringList("Tags"));
  TM_TRY(address, f.str("Address"));
  TM_TRY(port, f.integer("Port", 0, 65535));
  TM_TRY(meta, f.stringMap("Meta"));
  TM_TRY(eto, f.boolean("EnableTagOverride"));
  TM_TRY(proxy, f.object("Proxy"));
  TM_TRY(connect, f.object("Connect"));
  if (name.empty()) return makeError(Error{ErrorCode::kInvalidArgument, "Missing service name"});
  if (address == "0.0.0.0" || address == "::" || address == "[::]") {
    return makeError(Error{ErrorCode::kInvalidArgument, "Invalid service address"});
  }
  if (kind != "" && kind != "connect-proxy" && kind != "mesh-gateway" &&
      kind != "terminating-gateway" && kind != "ingress-gateway" && kind != "api-gateway") {
    return makeError(decodeError(f.at("Kind"), "unknown service kind \"" + kind + "\""));
  }
  s.service = name;
  s.id = id.empty() ? name : id;
  s.kind = kind;
  s.tags = std::move(tags);
  s.address = address;
  s.port = static_cast<int>(port);
  s.meta = std::move(meta);
  s.enableTagOverride = eto;
  s.proxy = std::move(proxy);
  s.connect = std::move(connect);
  if (const Json* w = f.find("Weights"); w != nullptr && !w->is_null()) {
    if (!w->is_object())
      return makeError(decodeError(f.at("Weights"), "expected an object, got " + typeName(*w)));
    Fields wf(*w, f.at("Weights"));
    TM_TRY(passing, wf.integer("Passing", 0, 1 << 30));
    TM_TRY(warning, wf.integer("Warning", 0, 1 << 30));
    if (passing < 1)
      return makeError(
          Error{ErrorCode::kInvalidArgument, "Invalid Weights: Passing must be greater than 0"});
    s.weights = {static_cast<int>(passing), static_cast<int>(warning)};
  }
  if (const Json* ta = f.find("TaggedAddresses"); ta != nullptr && !ta->is_null()) {
    if (!ta->is_object())
      return makeError(
          decodeError(f.at("TaggedAddresses"), "expected an object, got " + typeName(*ta)));
    for (auto it = ta->begin(); it != ta->end(); ++it) {
      std::string p = f.at("TaggedAddresses") + "." + it.key();
      if (!it->is_object())
        return makeError(decodeError(p, "expected an object, got " + typeName(*it)));
      Fields af(*it, p);
      TM_TRY(a, af.str("Address"));
      TM_TRY(ap, af.integer("Port", 0, 65535));
      s.taggedAddresses[it.key()] = {a, static_cast<int>(ap)};
    }
  }
  return s;
}

Result<store::Check> decodeCheck(const Json& j, const std::string& path) {
  if (!j.is_object()) return makeError(decodeError(path, "expected an object, got " + typeName(j)));
  Fields f(j, path);
  store::Check c;
  TM_TRY(id, f.str("CheckID"));
  TM_TRY(name, f.str("Name"));
  TM_TRY(status, f.str("Status"));
  TM_TRY(notes, f.str("Notes"));
  TM_TRY(output, f.str("Output"));
  TM_TRY(serviceId, f.str("ServiceID"));
  TM_TRY(type, f.str("Type"));
  TM_TRY(definition, f.object("Definition"));
  if (id.empty() && name.empty()) {
    return makeError(Error{ErrorCode::kInvalidArgument,
                           "Invalid check: " + (path.empty() ? std::string("check") : path) +
                               " needs a CheckID or a Name"});
  }
  if (!status.empty() && !isValidCheckStatus(status)) {
    return makeError(
        Error{ErrorCode::kInvalidArgument,
              "Status for checks must 'passing', 'warning', 'critical', got \"" + status + "\""});
  }
  c.checkId = id.empty() ? name : id;
  c.name = name.empty() ? id : name;
  c.status = status.empty() ? store::kCritical : status;
  c.notes = std::move(notes);
  c.output = std::move(output);
  c.serviceId = std::move(serviceId);
  c.type = std::move(type);
  c.definition = std::move(definition);
  if (c.definition.is_object()) {
    Fields d(c.definition, f.at("Definition"));
    TM_TRY(interval, d.str("Interval"));
    TM_TRY(timeout, d.str("Timeout"));
    c.interval = std::move(interval);
    c.timeout = std::move(timeout);
  }
  return c;
}

Result<store::RegisterCommand> decodeRegister(std::string_view body) {
  TM_TRY(j, parseObject(body));
  Fields f(j, "");
  store::RegisterCommand c;
  TM_TRY(node, f.str("Node"));
  TM_TRY(id, f.str("ID"));
  TM_TRY(address, f.str("Address"));
  TM_TRY(dc, f.str("Datacenter"));
  TM_TRY(tagged, f.stringMap("TaggedAddresses"));
  TM_TRY(meta, f.stringMap("NodeMeta"));
  TM_TRY(skip, f.boolean("SkipNodeUpdate"));
  if (node.empty()) return makeError(Error{ErrorCode::kInvalidArgument, "Must provide node"});
  if (address.empty() && !skip)
    return makeError(Error{ErrorCode::kInvalidArgument, "Must provide address"});
  c.node = {id, node, address, dc, std::move(tagged), std::move(meta), 0, 0};
  c.skipNodeUpdate = skip;
  if (const Json* s = f.find("Service"); s != nullptr && !s->is_null()) {
    TM_TRY(service, decodeService(*s, "Service"));
    c.service = std::move(service);
  }
  std::vector<std::pair<const Json*, std::string>> checks;
  if (const Json* ch = f.find("Check"); ch != nullptr && !ch->is_null())
    checks.push_back({ch, "Check"});
  if (const Json* list = f.find("Checks"); list != nullptr && !list->is_null()) {
    if (!list->is_array())
      return makeError(decodeError("Checks", "expected an array, got " + typeName(*list)));
    for (size_t i = 0; i < list->size(); ++i)
      checks.push_back({&(*list)[i], "Checks[" + std::to_string(i) + "]"});
  }
  for (const auto& [cj, path] : checks) {
    TM_TRY(check, decodeCheck(*cj, path));
    check.node = node;
    c.checks.push_back(std::move(check));
  }
  return c;
}

Result<store::DeregisterCommand> decodeDeregister(std::string_view body) {
  TM_TRY(j, parseObject(body));
  Fields f(j, "");
  TM_TRY(node, f.str("Node"));
  TM_TRY(serviceId, f.str("ServiceID"));
  TM_TRY(checkId, f.str("CheckID"));
  if (node.empty()) return makeError(Error{ErrorCode::kInvalidArgument, "Must provide node"});
  return store::DeregisterCommand{node, serviceId, checkId};
}

Json encodeNode(const store::Node& n) {
  return {{"ID", n.id},
          {"Node", n.name},
          {"Address", n.address},
          {"Datacenter", n.datacenter},
          {"TaggedAddresses", n.taggedAddresses.empty() ? Json() : Json(n.taggedAddresses)},
          {"Meta", n.meta.empty() ? Json::object() : Json(n.meta)},
          {"CreateIndex", n.createIndex},
          {"ModifyIndex", n.modifyIndex}};
}

namespace {
Json taggedJson(const store::Service& s) {
  Json t = Json::object();
  for (const auto& [k, v] : s.taggedAddresses) t[k] = {{"Address", v.address}, {"Port", v.port}};
  return t;
}
Json weightsJson(const store::Service& s) {
  return {{"Passing", s.weights.passing}, {"Warning", s.weights.warning}};
}
}  // namespace

Json encodeAgentService(const store::Service& s, bool withIndexes) {
  Json j{{"ID", s.id},
         {"Service", s.service},
         {"Tags", s.tags},
         {"Meta", s.meta.empty() ? Json::object() : Json(s.meta)},
         {"Port", s.port},
         {"Address", s.address},
         {"Weights", weightsJson(s)},
         {"EnableTagOverride", s.enableTagOverride}};
  if (j["Tags"].is_null()) j["Tags"] = Json::array();
  if (!s.taggedAddresses.empty()) j["TaggedAddresses"] = taggedJson(s);
  if (!s.kind.empty()) j["Kind"] = s.kind;
  if (!s.proxy.is_null()) j["Proxy"] = s.proxy;
  if (!s.connect.is_null()) j["Connect"] = s.connect;
  if (withIndexes) {
    j["CreateIndex"] = s.createIndex;
    j["ModifyIndex"] = s.modifyIndex;
  }
  return j;
}

Json encodeServiceNode(const store::Node& n, const store::Service& s) {
  Json tags = s.tags.empty() ? Json::array() : Json(s.tags);
  return {{"ID", n.id},
          {"Node", n.name},
          {"Address", n.address},
          {"Datacenter", n.datacenter},
          {"TaggedAddresses", n.taggedAddresses.empty() ? Json() : Json(n.taggedAddresses)},
          {"NodeMeta", n.meta.empty() ? Json::object() : Json(n.meta)},
          {"ServiceKind", s.kind},
          {"ServiceID", s.id},
          {"ServiceName", s.service},
          {"ServiceTags", std::move(tags)},
          {"ServiceAddress", s.address},
          {"ServiceTaggedAddresses", taggedJson(s)},
          {"ServiceWeights", weightsJson(s)},
          {"ServiceMeta", s.meta.empty() ? Json::object() : Json(s.meta)},
          {"ServicePort", s.port},
          {"ServiceEnableTagOverride", s.enableTagOverride},
          {"ServiceProxy", s.proxy.is_null() ? Json::object() : s.proxy},
          {"ServiceConnect", s.connect.is_null() ? Json::object() : s.connect},
          {"CreateIndex", s.createIndex},
          {"ModifyIndex", s.modifyIndex}};
}

Json encodeHealthCheck(const store::Check& c, const std::vector<std::string>& serviceTags) {
  return {{"Node", c.node},
          {"CheckID", c.checkId},
          {"Name", c.name},
          {"Status", c.status},
          {"Notes", c.notes},
          {"Output", c.output},
          {"ServiceID", c.serviceId},
          {"ServiceName", c.serviceName},
          {"ServiceTags", serviceTags.empty() ? Json::array() : Json(serviceTags)},
          {"Type", c.type},
          {"Interval", c.interval},
          {"Timeout", c.timeout},
          {"Definition", c.definition.is_null() ? Json::object() : c.definition},
          {"Namespace", "default"},
          {"CreateIndex", c.createIndex},
          {"ModifyIndex", c.modifyIndex}};
}

Json encodeCheckServiceNode(const store::Tables& t, const store::NodeEntry& node,
                            const store::Service& s) {
  Json checks = Json::array();
  static const std::vector<std::string> kNoTags;
  for (const store::Check* c : t.checksForInstance(node, s.id)) {
    checks.push_back(encodeHealthCheck(*c, c->serviceId.empty() ? kNoTags : s.tags));
  }
  return {{"Node", encodeNode(node.node)},
          {"Service", encodeAgentService(s)},
          {"Checks", std::move(checks)}};
}

Json encodeKV(const store::KVEntry& e) {
  Json j{{"LockIndex", e.lockIndex},
         {"Key", e.key},
         {"Flags", e.flags},
         {"Value", e.value.empty() ? Json() : Json(base64Encode(e.value))},
         {"CreateIndex", e.createIndex},
         {"ModifyIndex", e.modifyIndex}};
  if (!e.session.empty()) j["Session"] = e.session;
  return j;
}

bool isConnectProxyFor(const store::Service& s, const std::string& service) {
  if (s.kind != "connect-proxy" || !s.proxy.is_object()) return false;
  // Proxy is client JSON kept as given: the field may be missing or of any type.
  auto it = s.proxy.find("DestinationServiceName");
  return it != s.proxy.end() && it->is_string() && it->get_ref<const std::string&>() == service;
}

std::string base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string dump(const Json& j, bool pretty) {
  return pretty ? j.dump(4, ' ', false, Json::error_handler_t::replace)
                : j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace taskmesh::api
