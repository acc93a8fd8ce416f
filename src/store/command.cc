#include "store/command.h"

#include "base/json.h"

namespace taskmesh::store {
namespace {

// Command type tags in the encoded form. Never renumber: they are in logs on disk.
enum CommandType : int {
  kRegister = 1,
  kDeregister = 2,
  kKVSet = 3,
  kKVDelete = 4,
  kCaSet = 5,
  kIntentionSet = 6,
  kIntentionDelete = 7,
};

template <typename T>
void get(const Json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) it->get_to(out);
}

Json encodeBody(const RegisterCommand& c) {
  Json j{{"node", toJson(c.node)}, {"skip", c.skipNodeUpdate}};
  if (c.service) j["svc"] = toJson(*c.service);
  Json checks = Json::array();
  for (const Check& ch : c.checks) checks.push_back(toJson(ch));
  j["checks"] = std::move(checks);
  return j;
}
Json encodeBody(const DeregisterCommand& c) {
  return {{"node", c.node}, {"sid", c.serviceId}, {"cid", c.checkId}};
}
Json encodeBody(const KVSetCommand& c) {
  Json j{{"k", c.key},
         {"v", Json::binary_t(std::vector<uint8_t>(c.value.begin(), c.value.end()))},
         {"f", c.flags}};
  if (c.cas) j["cas"] = *c.cas;
  return j;
}
Json encodeBody(const KVDeleteCommand& c) {
  Json j{{"k", c.key}, {"r", c.recurse}};
  if (c.cas) j["cas"] = *c.cas;
  return j;
}

Json encodeBody(const CaSetCommand& c) {
  Json roots = Json::array();
  for (const CaRoot& r : c.roots) roots.push_back(toJson(r));
  return {{"cluster", c.clusterId},
          {"config", toJson(c.config)},
          {"roots", std::move(roots)},
          {"cas", c.casIndex}};
}
Json encodeBody(const IntentionSetCommand& c) { return {{"i", toJson(c.intention)}}; }
Json encodeBody(const IntentionDeleteCommand& c) {
  return {{"src", c.sourceName}, {"dst", c.destinationName}};
}

int typeOf(const Command& c) {
  return std::visit(
      [](const auto& v) -> int {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, RegisterCommand>) return kRegister;
        if constexpr (std::is_same_v<T, DeregisterCommand>) return kDeregister;
        if constexpr (std::is_same_v<T, KVSetCommand>) return kKVSet;
        if constexpr (std::is_same_v<T, KVDeleteCommand>) return kKVDelete;
        if constexpr (std::is_same_v<T, CaSetCommand>) return kCaSet;
        if constexpr (std::is_same_v<T, IntentionSetCommand>) return kIntentionSet;
        return kIntentionDelete;
      },
      c);
}

Command decodeBody(int type, const Json& j) {
  switch (type) {
    case kRegister: {
      RegisterCommand c;
      fromJson(j.at("node"), c.node);
      get(j, "skip", c.skipNodeUpdate);
      if (j.contains("svc")) {
        Service s;
        fromJson(j.at("svc"), s);
        c.service = std::move(s);
      }
      for (const Json& cj : j.at("checks")) {
        Check ch;
        fromJson(cj, ch);
        c.checks.push_back(std::move(ch));
      }
      return c;
    }
    case kDeregister:
      return DeregisterCommand{j.at("node").get<std::string>(), j.at("sid").get<std::string>(),
                               j.at("cid").get<std::string>()};
    case kKVSet: {
      KVSetCommand c;
      c.key = j.at("k").get<std::string>();
      const auto& bin = j.at("v").get_binary();
      c.value.assign(bin.begin(), bin.end());
      c.flags = j.at("f").get<uint64_t>();
      if (j.contains("cas")) c.cas = j.at("cas").get<uint64_t>();
      return c;
    }
    case kKVDelete: {
      KVDeleteCommand c;
      c.key = j.at("k").get<std::string>();
      c.recurse = j.at("r").get<bool>();
      if (j.contains("cas")) c.cas = j.at("cas").get<uint64_t>();
      return c;
    }
    case kCaSet: {
      CaSetCommand c;
      c.clusterId = j.at("cluster").get<std::string>();
      fromJson(j.at("config"), c.config);
      for (const Json& rj : j.at("roots")) {
        CaRoot r;
        fromJson(rj, r);
        c.roots.push_back(std::move(r));
      }
      c.casIndex = j.at("cas").get<uint64_t>();
      return c;
    }
    case kIntentionSet: {
      IntentionSetCommand c;
      fromJson(j.at("i"), c.intention);
      return c;
    }
    case kIntentionDelete:
      return IntentionDeleteCommand{j.at("src").get<std::string>(), j.at("dst").get<std::string>()};
  }
  throw std::invalid_argument("unknown command type " + std::to_string(type));
}

}  // namespace

std::string encodeCommand(const Command& command) {
  Json j{{"t", typeOf(command)},
         {"b", std::visit([](const auto& v) { return encodeBody(v); }, command)}};
  std::vector<uint8_t> bytes = Json::to_msgpack(j);
  // libraft 0.15 writes entries padded to 8 bytes but reads a closed segment back assuming
  // the unpadded length, so an entry whose length is not a multiple of 8 corrupts the log on
  // restart. Pad here with MessagePack nil bytes; the top-level value always ends with its
  // "t" integer, so the decoder can strip them unambiguously.
  bytes.resize((bytes.size() + 7) / 8 * 8, 0xc0);
  return std::string(bytes.begin(), bytes.end());
}

Result<Command> decodeCommand(std::string_view bytes) {
  try {
    for (int pad = 0; pad < 7 && !bytes.empty() && static_cast<uint8_t>(bytes.back()) == 0xc0;
         ++pad) {
      bytes.remove_suffix(1);
    }
    auto parsed = parseMsgpackBounded(bytes);
    if (!parsed)
      return makeError(ErrorCode::kInvalidArgument,
                       "cannot decode command: " + parsed.error().message);
    const Json& j = *parsed;
    return decodeBody(j.at("t").get<int>(), j.at("b"));
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string("cannot decode command: ") + e.what());
  }
}

Json toJson(const Node& n) {
  return {{"id", n.id},
          {"name", n.name},
          {"addr", n.address},
          {"dc", n.datacenter},
          {"tagged", n.taggedAddresses},
          {"meta", n.meta},
          {"ci", n.createIndex},
          {"mi", n.modifyIndex}};
}
void fromJson(const Json& j, Node& n) {
  get(j, "id", n.id);
  get(j, "name", n.name);
  get(j, "addr", n.address);
  get(j, "dc", n.datacenter);
  get(j, "tagged", n.taggedAddresses);
  get(j, "meta", n.meta);
  get(j, "ci", n.createIndex);
  get(j, "mi", n.modifyIndex);
}

Json toJson(const Service& s) {
  Json tagged = Json::object();
  for (const auto& [k, v] : s.taggedAddresses) tagged[k] = {{"a", v.address}, {"p", v.port}};
  return {{"id", s.id},
          {"svc", s.service},
          {"kind", s.kind},
          {"tags", s.tags},
          {"addr", s.address},
          {"port", s.port},
          {"meta", s.meta},
          {"tagged", std::move(tagged)},
          {"wp", s.weights.passing},
          {"ww", s.weights.warning},
          {"eto", s.enableTagOverride},
          {"proxy", s.proxy},
          {"connect", s.connect},
          {"ci", s.createIndex},
          {"mi", s.modifyIndex}};
}
void fromJson(const Json& j, Service& s) {
  get(j, "id", s.id);
  get(j, "svc", s.service);
  get(j, "kind", s.kind);
  get(j, "tags", s.tags);
  get(j, "addr", s.address);
  get(j, "port", s.port);
  get(j, "meta", s.meta);
  if (auto it = j.find("tagged"); it != j.end()) {
    for (const auto& [k, v] : it->items()) {
      s.taggedAddresses[k] = {v.at("a").get<std::string>(), v.at("p").get<int>()};
    }
  }
  get(j, "wp", s.weights.passing);
  get(j, "ww", s.weights.warning);
  get(j, "eto", s.enableTagOverride);
  if (auto it = j.find("proxy"); it != j.end()) s.proxy = *it;
  if (auto it = j.find("connect"); it != j.end()) s.connect = *it;
  get(j, "ci", s.createIndex);
  get(j, "mi", s.modifyIndex);
}

Json toJson(const Check& c) {
  return {{"node", c.node},      {"id", c.checkId},        {"name", c.name},
          {"st", c.status},      {"notes", c.notes},       {"out", c.output},
          {"sid", c.serviceId},  {"sname", c.serviceName}, {"type", c.type},
          {"int", c.interval},   {"to", c.timeout},        {"def", c.definition},
          {"ci", c.createIndex}, {"mi", c.modifyIndex}};
}
void fromJson(const Json& j, Check& c) {
  get(j, "node", c.node);
  get(j, "id", c.checkId);
  get(j, "name", c.name);
  get(j, "st", c.status);
  get(j, "notes", c.notes);
  get(j, "out", c.output);
  get(j, "sid", c.serviceId);
  get(j, "sname", c.serviceName);
  get(j, "type", c.type);
  get(j, "int", c.interval);
  get(j, "to", c.timeout);
  if (auto it = j.find("def"); it != j.end()) c.definition = *it;
  get(j, "ci", c.createIndex);
  get(j, "mi", c.modifyIndex);
}

Json toJson(const KVEntry& e) {
  return {{"k", e.key},
          {"v", Json::binary_t(std::vector<uint8_t>(e.value.begin(), e.value.end()))},
          {"f", e.flags},
          {"li", e.lockIndex},
          {"s", e.session},
          {"ci", e.createIndex},
          {"mi", e.modifyIndex}};
}
void fromJson(const Json& j, KVEntry& e) {
  get(j, "k", e.key);
  const auto& bin = j.at("v").get_binary();
  e.value.assign(bin.begin(), bin.end());
  get(j, "f", e.flags);
  get(j, "li", e.lockIndex);
  get(j, "s", e.session);
  get(j, "ci", e.createIndex);
  get(j, "mi", e.modifyIndex);
}

Json toJson(const CaRoot& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"serial", r.serialNumber},
          {"skid", r.signingKeyId},
          {"nb", r.notBefore},
          {"na", r.notAfter},
          {"cert", r.rootCertPem},
          {"key", r.privateKeyPem},
          {"inter", r.intermediateCertPems},
          {"active", r.active},
          {"out", r.rotatedOutAt},
          {"ci", r.createIndex},
          {"mi", r.modifyIndex}};
}
void fromJson(const Json& j, CaRoot& r) {
  get(j, "id", r.id);
  get(j, "name", r.name);
  get(j, "serial", r.serialNumber);
  get(j, "skid", r.signingKeyId);
  get(j, "nb", r.notBefore);
  get(j, "na", r.notAfter);
  get(j, "cert", r.rootCertPem);
  get(j, "key", r.privateKeyPem);
  get(j, "inter", r.intermediateCertPems);
  get(j, "active", r.active);
  get(j, "out", r.rotatedOutAt);
  get(j, "ci", r.createIndex);
  get(j, "mi", r.modifyIndex);
}

Json toJson(const CaConfig& c) {
  return {{"provider", c.provider},       {"leaf", c.leafCertTtl},
          {"rotation", c.rotationPeriod}, {"inter", c.intermediateCertTtl},
          {"root", c.rootCertTtl},        {"ci", c.createIndex},
          {"mi", c.modifyIndex}};
}
void fromJson(const Json& j, CaConfig& c) {
  get(j, "provider", c.provider);
  get(j, "leaf", c.leafCertTtl);
  get(j, "rotation", c.rotationPeriod);
  get(j, "inter", c.intermediateCertTtl);
  get(j, "root", c.rootCertTtl);
  get(j, "ci", c.createIndex);
  get(j, "mi", c.modifyIndex);
}

Json toJson(const connect::Intention& i) {
  return {{"sns", i.sourceNs},      {"src", i.sourceName},
          {"dns", i.destinationNs}, {"dst", i.destinationName},
          {"type", i.sourceType},   {"action", connect::actionName(i.action)},
          {"desc", i.description},  {"meta", i.meta},
          {"ci", i.createIndex},    {"mi", i.modifyIndex}};
}
void fromJson(const Json& j, connect::Intention& i) {
  get(j, "sns", i.sourceNs);
  get(j, "src", i.sourceName);
  get(j, "dns", i.destinationNs);
  get(j, "dst", i.destinationName);
  get(j, "type", i.sourceType);
  std::string action = "allow";
  get(j, "action", action);
  i.action = action == "deny" ? connect::IntentionAction::kDeny : connect::IntentionAction::kAllow;
  get(j, "desc", i.description);
  get(j, "meta", i.meta);
  get(j, "ci", i.createIndex);
  get(j, "mi", i.modifyIndex);
}

}  // namespace taskmesh::store
