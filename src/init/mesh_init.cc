#include "init/mesh_init.h"
#include "base/backoff.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <random>
#include <system_error>
#include <thread>
#include <utility>

#include "base/duration.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "net/http_client.h"

namespace taskmesh::init {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kRegisterPath = "/v1/agent/service/register?replace-existing-checks=true";
constexpr const char* kBootstrapFile = "bootstrap.json";
constexpr size_t kMaxShownBytes = 60;        // of a JSON value quoted in an error
constexpr size_t kMaxAgentErrorBytes = 512;  // of an agent error body quoted in an error

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("mesh-init");
  return l;
}

// ---- config parsing -------------------------------------------------------------------------

std::string fieldPath(const std::string& where, std::string_view key) {
  return where.empty() ? std::string(key) : where + "." + std::string(key);
}

std::string indexPath(const std::string& where, size_t i) {
  return where + "[" + std::to_string(i) + "]";
}

Error fieldError(const std::string& path, const std::string& what) {
  return Error{ErrorCode::kInvalidArgument, path + ": " + what};
}

// A JSON value as it appears in an error message: compact, bounded, never throws on bad UTF-8.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kMaxShownBytes) s = s.substr(0, kMaxShownBytes - 3) + "...";
  return s;
}

// obj[key], or nullptr when absent or null.
const json* member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

Result<void> rejectUnknownKeys(const json& obj, const std::string& where,
                               std::initializer_list<std::string_view> known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string list;
    for (auto k : known) list.append(list.empty() ? "" : ", ").append(k);
    return makeError(fieldError(fieldPath(where, it.key()), "unknown field (known: " + list + ")"));
  }
  return {};
}

Result<void> firstError(std::initializer_list<Result<void>> steps) {
  for (const auto& step : steps) {
    if (!step) return step;
  }
  return {};
}

// Typed readers: each checks the JSON type and names `path` in its error.
using Reader = std::function<Result<json>(const json&, const std::string&)>;

Reader integer(int min, int max) {
  return [min, max](const json& v, const std::string& path) -> Result<json> {
    if (v.is_number_unsigned() && v.get<uint64_t>() >= static_cast<uint64_t>(std::max(min, 0)) &&
        v.get<uint64_t>() <= static_cast<uint64_t>(max)) {
      return v;
    }
    return makeError(fieldError(path, "expected an integer " + std::to_string(min) + ".." +
                                          std::to_string(max) + ", got " + shown(v)));
  };
}

const Reader kPort = integer(1, 65535);

Result<json> nonEmptyString(const json& v, const std::string& path) {
  if (v.is_string() && !v.get_ref<const std::string&>().empty()) return v;
  return makeError(fieldError(path, "expected a non-empty string, got " + shown(v)));
}

Result<json> anyString(const json& v, const std::string& path) {
  if (v.is_string()) return v;
  return makeError(fieldError(path, "expected a string, got " + shown(v)));
}

Result<json> boolean(const json& v, const std::string& path) {
  if (v.is_boolean()) return v;
  return makeError(fieldError(path, "expected true or false, got " + shown(v)));
}

Result<json> jsonObject(const json& v, const std::string& path) {
  if (v.is_object()) return v;
  return makeError(fieldError(path, "expected an object, got " + shown(v)));
}

Result<json> stringArray(const json& v, const std::string& path) {
  if (!v.is_array()) {
    return makeError(fieldError(path, "expected an array of strings, got " + shown(v)));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (auto s = anyString(v[i], indexPath(path, i)); !s) return s;
  }
  return v;
}

Result<json> stringMap(const json& v, const std::string& path) {
  if (!v.is_object()) {
    return makeError(fieldError(path, "expected an object of strings, got " + shown(v)));
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (auto s = anyString(it.value(), fieldPath(path, it.key())); !s) return s;
  }
  return v;
}

// An array whose elements are all objects; `noun` names an element ("an upstream").
Result<json> objectArray(const json& v, const std::string& path, const std::string& noun) {
  if (!v.is_array()) {
    return makeError(fieldError(path, "expected an array of objects, got " + shown(v)));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_object()) {
      return makeError(
          fieldError(indexPath(path, i), "expected " + noun + " object, got " + shown(v[i])));
    }
  }
  return v;
}

// Reads obj[key] with `read` into `out` (converted with get<T>) when present; a missing required
// field is an error that says what was expected.
template <typename T>
Result<void> field(const json& obj, const std::string& where, std::string_view key, T& out,
                   const Reader& read, const char* requiredWhat = nullptr) {
  std::string path = fieldPath(where, key);
  const json* v = member(obj, key);
  if (v == nullptr) {
    if (requiredWhat == nullptr) return {};
    return makeError(fieldError(path, std::string("missing; expected ") + requiredWhat));
  }
  auto checked = read(*v, path);
  if (!checked) return makeError(checked.error());
  out = checked->template get<T>();
  return {};
}

Result<void> parseWeights(const json& w, MeshInitConfig& c) {
  const std::string where = "service.weights";
  if (!w.is_object()) return makeError(fieldError(where, "expected an object, got " + shown(w)));
  ServiceWeights weights;
  auto ok = firstError({rejectUnknownKeys(w, where, {"passing", "warning"}),
                        field(w, where, "passing", weights.passing, integer(1, 65535)),
                        field(w, where, "warning", weights.warning, integer(0, 65535))});
  if (!ok) return ok;
  c.weights = weights;
  return {};
}

Result<void> parseService(const json& s, MeshInitConfig& c) {
  const std::string where = "service";
  if (!s.is_object()) return makeError(fieldError(where, "expected an object, got " + shown(s)));
  auto ok = firstError(
      {rejectUnknownKeys(
           s, where, {"name", "port", "tags", "meta", "enableTagOverride", "weights", "checks"}),
       field(s, where, "name", c.serviceName, nonEmptyString),
       field(s, where, "port", c.servicePort, kPort, "an integer 1..65535"),
       field(s, where, "tags", c.tags, stringArray), field(s, where, "meta", c.meta, stringMap),
       field(s, where, "enableTagOverride", c.enableTagOverride, boolean),
       field(s, where, "checks", c.checks, [](const json& v, const std::string& path) {
         return objectArray(v, path, "a Consul check");
       })});
  if (!ok) return ok;
  if (const json* w = member(s, "weights")) return parseWeights(*w, c);
  return {};
}

Result<void> parseUpstream(const json& u, const std::string& where, UpstreamConfig& out) {
  return firstError(
      {rejectUnknownKeys(u, where, {"destinationName", "localBindPort", "datacenter"}),
       field(u, where, "destinationName", out.destinationName, nonEmptyString,
             "a non-empty string"),
       field(u, where, "localBindPort", out.localBindPort, kPort, "an integer 1..65535"),
       field(u, where, "datacenter", out.datacenter, anyString)});
}

Result<void> parseProxy(const json& p, MeshInitConfig& c) {
  const std::string where = "proxy";
  if (!p.is_object()) return makeError(fieldError(where, "expected an object, got " + shown(p)));
  json upstreams = json::array();
  json config;
  auto ok = firstError(
      {rejectUnknownKeys(p, where, {"upstreams", "publicListenerPort", "config"}),
       field(p, where, "publicListenerPort", c.publicListenerPort, kPort),
       field(p, where, "config", config, jsonObject),
       field(p, where, "upstreams", upstreams, [](const json& v, const std::string& path) {
         return objectArray(v, path, "an upstream");
       })});
  if (!ok) return ok;
  if (!config.is_null()) c.proxyConfig = std::move(config);
  for (size_t i = 0; i < upstreams.size(); ++i) {
    UpstreamConfig u;
    if (auto r = parseUpstream(upstreams[i], indexPath("proxy.upstreams", i), u); !r) return r;
    c.upstreams.push_back(std::move(u));
  }
  return {};
}

// Every port mesh-init puts in the task's network namespace must be distinct.
Result<void> checkPortsDistinct(const MeshInitConfig& c) {
  std::vector<std::pair<int, std::string>> used = {
      {kProxyAdminPort, "the proxy admin listener (" + std::string(kProxyAdminAddr) + ")"}};
  auto claim = [&used](int port, const std::string& path) -> Result<void> {
    for (const auto& [p, owner] : used) {
      if (p == port) {
        return makeError(fieldError(path, std::to_string(port) + " is already used by " + owner));
      }
    }
    used.emplace_back(port, path);
    return {};
  };
  if (auto r = claim(c.servicePort, "service.port"); !r) return r;
  if (auto r = claim(c.publicListenerPort, "proxy.publicListenerPort"); !r) return r;
  for (size_t i = 0; i < c.upstreams.size(); ++i) {
    auto path = indexPath("proxy.upstreams", i) + ".localBindPort";
    if (auto r = claim(c.upstreams[i].localBindPort, path); !r) return r;
  }
  return {};
}

// ---- agent address and task identity --------------------------------------------------------

bool isIpv4(const std::string& s) {
  in_addr addr{};
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

// Printable ASCII only: the token goes into a header and must never be echoed in an error.
bool validToken(const std::string& token) {
  return std::all_of(token.begin(), token.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; });
}

// ---- I/O: retries, registration, bootstrap --------------------------------------------------

bool retryable(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kTimeout;
}

// What every network step shares: pacing and the one deadline of the whole run.
struct RunBounds {
  const MeshInitOptions& options;
  milliseconds timeout;  // -timeout
  Clock::time_point deadline;
};

// Calls `attempt(requestTimeout)` until it succeeds or fails with an error retrying cannot fix,
// backing off in between. At the deadline, gives up with kTimeout naming `what` and the last
// error.
template <typename T>
Result<T> withRetries(const RunBounds& b, const std::string& what,
                      const std::function<Result<T>(milliseconds)>& attempt) {
  static constexpr auto kLogEvery = std::chrono::seconds(5);
  Backoff backoff(b.options.initialBackoff, b.options.maxBackoff);
  std::string last;
  int attempts = 0;
  Clock::time_point lastInfo;
  for (;;) {
    auto now = Clock::now();
    auto remaining = std::chrono::duration_cast<milliseconds>(b.deadline - now);
    if (remaining <= milliseconds(0)) break;
    ++attempts;
    auto r = attempt(std::min(b.options.requestTimeout, remaining));
    if (r || !retryable(r.error())) return r;
    last = r.error().message;
    // The first failure and then one line every kLogEvery at info; every failure at debug.
    bool info = attempts == 1 || now - lastInfo >= kLogEvery;
    if (info) lastInfo = now;
    logger()->log(info ? spdlog::level::info : spdlog::level::debug,
                  "waiting for {} attempts={} reason=\"{}\"", what, attempts, last);
    if (!backoff.wait(b.deadline)) break;
  }
  return makeError(ErrorCode::kTimeout,
                   what + ": gave up after -timeout " + formatDuration(b.timeout) + " (" +
                       std::to_string(attempts) + " attempts; last error: " +
                       (last.empty() ? "no time was left to try" : last) + ")");
}

// One register call. 200 is success; 408, 429, 5xx and transport failures are kUnavailable or
// kTimeout (retried); any other answer is kInvalidArgument with the agent's error body.
Result<void> registerOnce(const AgentAddress& agent, const std::string& token, const json& body,
                          milliseconds timeout) {
  net::HttpClientRequest request;
  request.method = "PUT";
  request.url = agent.baseUrl + kRegisterPath;
  request.headers = {{"Content-Type", "application/json"}};
  if (!token.empty()) request.headers.emplace_back("X-Consul-Token", token);
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  request.timeout = timeout;
  request.maxResponseBytes = 1 << 20;
  auto response = net::httpRequest(request);
  if (!response) return makeError(response.error());
  if (response->status == 200) return {};
  std::string text = response->body.substr(0, kMaxAgentErrorBytes);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  int s = response->status;
  bool transient = s >= 500 || s == 408 || s == 429;
  return makeError(transient ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument,
                   "the agent answered HTTP " + std::to_string(s) + ": " + text);
}

Result<void> registerWithRetries(const RunBounds& b, const AgentAddress& agent,
                                 const std::string& token, const std::string& kind,
                                 const std::string& id, const json& body) {
  std::string what = "registering " + kind + " " + id + " with the agent at " + agent.hostPort;
  auto r = withRetries<void>(
      b, what, [&](milliseconds timeout) { return registerOnce(agent, token, body, timeout); });
  if (!r && r.error().code != ErrorCode::kTimeout) {
    return makeError(r.error().code, what + ": " + r.error().message);
  }
  return r;
}

Result<std::string> writeBootstrap(const std::string& dir, const json& bootstrap) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return makeError(ErrorCode::kIo, "cannot create bootstrapDir " + dir + ": " + ec.message());
  }
  std::string path = dir;
  if (path.back() != '/') path += '/';
  path += kBootstrapFile;
  auto written = writeFileAtomic(
      path, bootstrap.dump(2, ' ', false, json::error_handler_t::replace) + "\n", 0444);
  if (!written) return makeError(written.error());
  return path;
}

// Everything known before the first network call; any error here is exit 2.
struct Prepared {
  MeshInitConfig config;
  AgentAddress agent;
  milliseconds timeout{0};
};

Result<std::string> configText(const MeshInitOptions& o, const MeshInitEnvironment& env,
                               std::string& source) {
  if (!o.configFile.empty()) {
    source = "-config-file " + o.configFile;
    auto text = readFile(o.configFile);
    if (!text) {
      return makeError(ErrorCode::kInvalidArgument, "-config-file: " + text.error().message);
    }
    return text;
  }
  source = "TASKMESH_CONFIG_JSON";
  if (!env.configJson) {
    return makeError(ErrorCode::kInvalidArgument,
                     "TASKMESH_CONFIG_JSON is not set (or pass -config-file FILE)");
  }
  return *env.configJson;
}

Result<Prepared> prepare(const MeshInitOptions& o, const MeshInitEnvironment& env) {
  if (!log::setLevel(o.logLevel)) {
    return makeError(ErrorCode::kInvalidArgument, "invalid -log-level \"" + o.logLevel + "\"");
  }
  auto timeout = parsePositiveDurationFlag("-timeout", o.timeout);
  if (!timeout) return makeError(timeout.error());
  std::string source;
  auto text = configText(o, env, source);
  if (!text) return makeError(text.error());
  auto config = parseMeshInitConfig(*text);
  if (!config) return makeError(config.error().code, source + ": " + config.error().message);
  auto agent = resolveAgentAddress(config->agentHttpAddr, env.consulHttpAddr);
  if (!agent) return makeError(agent.error());
  if (!validToken(env.consulHttpToken)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "CONSUL_HTTP_TOKEN contains characters not allowed in an HTTP header");
  }
  if (env.metadataUriV4.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "ECS_CONTAINER_METADATA_URI_V4 is not set (not running in an ECS task?)");
  }
  if (auto url = net::parseHttpUrl(env.metadataUriV4); !url) {
    return makeError(ErrorCode::kInvalidArgument,
                     "ECS_CONTAINER_METADATA_URI_V4: " + url.error().message);
  }
  return Prepared{std::move(*config), std::move(*agent), *timeout};
}

struct Outcome {
  MeshRegistration registration;
  std::string bootstrapPath;
};

// The network and disk part; any error here is exit 1.
Result<Outcome> execute(const RunBounds& b, const MeshInitEnvironment& env, const Prepared& p) {
  auto metadata = withRetries<aws::TaskMetadata>(
      b, "the task metadata endpoint " + env.metadataUriV4,
      [&](milliseconds timeout) { return aws::fetchTaskMetadata(env.metadataUriV4, timeout); });
  if (!metadata) return makeError(metadata.error());
  auto task = taskIdentity(*metadata);
  if (!task) return makeError(task.error());
  Outcome out{buildRegistration(p.config, *task, p.agent, env.consulHttpToken), ""};
  const auto& reg = out.registration;
  if (auto r = registerWithRetries(b, p.agent, env.consulHttpToken, "service", reg.serviceId,
                                   reg.service);
      !r) {
    return makeError(r.error());
  }
  if (auto r = registerWithRetries(b, p.agent, env.consulHttpToken, "sidecar proxy", reg.proxyId,
                                   reg.sidecar);
      !r) {
    return makeError(r.error());
  }
  auto path = writeBootstrap(p.config.bootstrapDir, reg.bootstrap);
  if (!path) return makeError(path.error());
  out.bootstrapPath = *path;
  return out;
}

}  // namespace

MeshInitEnvironment MeshInitEnvironment::fromProcess() {
  auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
  };
  MeshInitEnvironment env;
  if (const char* config = std::getenv("TASKMESH_CONFIG_JSON")) env.configJson = config;
  env.metadataUriV4 = get("ECS_CONTAINER_METADATA_URI_V4");
  env.consulHttpAddr = get("CONSUL_HTTP_ADDR");
  env.consulHttpToken = get("CONSUL_HTTP_TOKEN");
  return env;
}

Result<MeshInitConfig> parseMeshInitConfig(std::string_view text) {
  auto parsed = parseJsonBounded(text);
  if (!parsed) {
    return makeError(ErrorCode::kInvalidArgument, "invalid JSON: " + parsed.error().message);
  }
  const json& j = *parsed;
  if (!j.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "expected a JSON object, got " + shown(j));
  }
  MeshInitConfig c;
  auto ok = firstError(
      {rejectUnknownKeys(j, "", {"bootstrapDir", "service", "proxy", "agentHttpAddr"}),
       field(j, "", "bootstrapDir", c.bootstrapDir, nonEmptyString, "a non-empty string"),
       field(j, "", "agentHttpAddr", c.agentHttpAddr, nonEmptyString)});
  if (!ok) return makeError(ok.error());
  if (!c.agentHttpAddr.empty()) {
    if (auto agent = resolveAgentAddress(c.agentHttpAddr, ""); !agent) {
      return makeError(agent.error());
    }
  }
  const json* service = member(j, "service");
  if (service == nullptr) {
    return makeError(fieldError("service", "missing; expected an object with at least \"port\""));
  }
  if (auto r = parseService(*service, c); !r) return makeError(r.error());
  if (const json* proxy = member(j, "proxy")) {
    if (auto r = parseProxy(*proxy, c); !r) return makeError(r.error());
  }
  if (auto r = checkPortsDistinct(c); !r) return makeError(r.error());
  return c;
}

Result<AgentAddress> resolveAgentAddress(const std::string& configAddr, const std::string& envAddr,
                                         const std::string& configName) {
  std::string source = !configAddr.empty() ? configName : "CONSUL_HTTP_ADDR";
  std::string address = !configAddr.empty() ? configAddr
                        : !envAddr.empty()  ? envAddr
                                            : std::string(kDefaultAgentAddr);
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument, source + ": " + why);
  };
  std::string url = address.find("://") == std::string::npos ? "http://" + address : address;
  auto parsed = net::parseHttpUrl(url);
  if (!parsed) return bad(parsed.error().message);
  if (parsed->tls) return bad("the local agent speaks plain http; got \"" + address + "\"");
  if (parsed->target != "/") {
    return bad("expected host:port or http://host:port, got \"" + address + "\"");
  }
  std::string host =
      parsed->host.find(':') != std::string::npos ? "[" + parsed->host + "]" : parsed->host;
  std::string hostPort = host + ":" + std::to_string(parsed->port);
  return AgentAddress{"http://" + hostPort, hostPort};
}

Result<TaskIdentity> taskIdentity(const aws::TaskMetadata& metadata) {
  TaskIdentity t;
  t.family = metadata.family;
  if (t.family.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "task metadata: Family is missing or empty");
  }
  size_t slash = metadata.taskArn.rfind('/');
  t.taskId = slash == std::string::npos ? metadata.taskArn : metadata.taskArn.substr(slash + 1);
  if (t.taskId.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "task metadata: TaskARN \"" + metadata.taskArn + "\" has no task ID");
  }
  t.ipv4 = metadata.taskIpv4();
  if (t.ipv4.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "task metadata: no container has an IPv4 address "
                     "(Containers[].Networks[].IPv4Addresses)");
  }
  if (!isIpv4(t.ipv4)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "task metadata: the task address \"" + t.ipv4 + "\" is not an IPv4 address");
  }
  return t;
}

namespace {

json weightsJson(const ServiceWeights& w) {
  return {{"Passing", w.passing}, {"Warning", w.warning}};
}

json serviceBody(const MeshInitConfig& c, const TaskIdentity& task, const MeshRegistration& r) {
  json body = {{"ID", r.serviceId},
               {"Name", r.serviceName},
               {"Address", task.ipv4},
               {"Port", c.servicePort},
               {"Tags", c.tags},
               {"Meta", json(c.meta)},
               {"EnableTagOverride", c.enableTagOverride}};
  if (c.weights) body["Weights"] = weightsJson(*c.weights);
  if (!c.checks.empty()) body["Checks"] = c.checks;
  return body;
}

json sidecarChecks(const MeshInitConfig& c, const TaskIdentity& task, const MeshRegistration& r) {
  json listener = {{"CheckID", r.proxyId + ":public-listener"},
                   {"Name", "Proxy Public Listener"},
                   {"TCP", task.ipv4 + ":" + std::to_string(c.publicListenerPort)},
                   {"Interval", "1s"},
                   {"Timeout", "1s"}};
  json alias = {{"CheckID", r.proxyId + ":destination-alias"},
                {"Name", "Destination Alias"},
                {"AliasService", r.serviceId}};
  json checks = json::array();
  checks.push_back(std::move(listener));
  checks.push_back(std::move(alias));
  return checks;
}

json sidecarBody(const MeshInitConfig& c, const TaskIdentity& task, const MeshRegistration& r) {
  json upstreams = json::array();
  for (const auto& u : c.upstreams) {
    json up = {{"DestinationType", "service"},
               {"DestinationName", u.destinationName},
               {"LocalBindPort", u.localBindPort}};
    if (!u.datacenter.empty()) up["Datacenter"] = u.datacenter;
    upstreams.push_back(std::move(up));
  }
  json proxy = {{"DestinationServiceName", r.serviceName},
                {"DestinationServiceID", r.serviceId},
                {"LocalServiceAddress", "127.0.0.1"},
                {"LocalServicePort", c.servicePort},
                {"Upstreams", std::move(upstreams)}};
  if (c.proxyConfig) proxy["Config"] = *c.proxyConfig;
  json body = {{"ID", r.proxyId},
               {"Name", r.serviceName + "-sidecar-proxy"},
               {"Kind", "connect-proxy"},
               {"Address", task.ipv4},
               {"Port", c.publicListenerPort},
               {"Tags", c.tags},
               {"Meta", json(c.meta)},
               {"EnableTagOverride", c.enableTagOverride},
               {"Proxy", std::move(proxy)},
               {"Checks", sidecarChecks(c, task, r)}};
  if (c.weights) body["Weights"] = weightsJson(*c.weights);
  return body;
}

json bootstrapBody(const MeshInitConfig& c, const AgentAddress& agent, const std::string& token,
                   const MeshRegistration& r) {
  json upstreams = json::array();
  for (const auto& u : c.upstreams) {
    json up = {{"destinationName", u.destinationName}, {"localBindPort", u.localBindPort}};
    upstreams.push_back(std::move(up));
  }
  return {{"proxyId", r.proxyId},
          {"serviceId", r.serviceId},
          {"serviceName", r.serviceName},
          {"agentHttpAddr", agent.hostPort},
          {"token", token},
          {"adminAddr", kProxyAdminAddr},
          {"publicListenerPort", c.publicListenerPort},
          {"localServicePort", c.servicePort},
          {"upstreams", std::move(upstreams)}};
}

}  // namespace

MeshRegistration buildRegistration(const MeshInitConfig& config, const TaskIdentity& task,
                                   const AgentAddress& agent, const std::string& token) {
  MeshRegistration r;
  r.serviceId = task.family + "-" + task.taskId;
  r.serviceName = config.serviceName.empty() ? task.family : config.serviceName;
  r.proxyId = r.serviceId + "-sidecar-proxy";
  r.service = serviceBody(config, task, r);
  r.sidecar = sidecarBody(config, task, r);
  r.bootstrap = bootstrapBody(config, agent, token, r);
  return r;
}

int runMeshInit(const MeshInitOptions& options, const MeshInitEnvironment& environment) {
  auto start = Clock::now();
  auto prepared = prepare(options, environment);
  if (!prepared) {
    logger()->error("{}", prepared.error().message);
    return kMeshInitBadConfig;
  }
  RunBounds bounds{options, prepared->timeout, start + prepared->timeout};
  auto done = execute(bounds, environment, *prepared);
  if (!done) {
    logger()->error("{}", done.error().message);
    return kMeshInitFailed;
  }
  const auto& reg = done->registration;
  const auto& c = prepared->config;
  logger()->info(
      "registered service={} name={} address={}:{} proxy={} public-listener-port={} upstreams={} "
      "agent={} bootstrap={} elapsed={}",
      reg.serviceId, reg.serviceName, reg.service.value("Address", std::string()), c.servicePort,
      reg.proxyId, c.publicListenerPort, c.upstreams.size(), prepared->agent.hostPort,
      done->bootstrapPath,
      formatDuration(std::chrono::duration_cast<milliseconds>(Clock::now() - start)));
  return kMeshInitOk;
}

int runMeshInit(const MeshInitOptions& options) {
  return runMeshInit(options, MeshInitEnvironment::fromProcess());
}

}  // namespace taskmesh::init
