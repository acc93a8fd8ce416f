#include "ecs/task_definition.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

namespace taskmesh::ecs {
namespace {

using Json = nlohmann::json;
using Strings = std::vector<std::string>;
using Objects = std::vector<const Json*>;  // elements of an array of objects, in the request
using VolumeNames = std::set<std::string, std::less<>>;

// Returns the error of an ApiResult<void> expression from the enclosing function (the
// value-returning form is TM_ECS_TRY, in api_error.h).
#define TM_ECS_TD_OK(expr)                                                       \
  do {                                                                           \
    if (auto ok_ = (expr); !ok_) return std::unexpected(std::move(ok_.error())); \
  } while (false)

constexpr int kIntMax = std::numeric_limits<int>::max();
constexpr const char* kAwsvpcPortsMessage =
    "When networkMode=awsvpc, the host ports and container ports in port mappings must match.";
constexpr const char* kEssentialDependencyMessage =
    "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container";
// Members that only the registry sets; a request cannot supply them.
constexpr const char* kRegistryMembers[] = {
    "taskDefinitionArn", "revision",       "status",       "requiresAttributes",
    "registeredAt",      "deregisteredAt", "registeredBy", "deleteRequestedAt"};

// ---------------------------------------------------------------------------------------------
// Typed reading of untrusted JSON. Absent and null members read the same (as the AWS SDKs,
// which drop nulls, send them).

// One JSON object of the request and its path in error messages ("containerDefinitions[1]",
// "" at the top level). `json` must be an object and outlive the Node.
struct Node {
  const Json& json;
  std::string path;

  std::string at(std::string_view key) const {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  const Json* find(const char* key) const {
    auto it = json.find(key);
    return it == json.end() || it->is_null() ? nullptr : &*it;
  }
};

std::string indexed(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// A value from the request for an error message: printable ASCII only (the message is
// serialized as JSON, which must be valid UTF-8), at most 64 characters, in single quotes.
std::string quoteValue(std::string_view s) {
  std::string out = "'";
  for (char ch : s.substr(0, 64)) out += std::isprint(static_cast<unsigned char>(ch)) ? ch : '?';
  return out + (s.size() > 64 ? "...'" : "'");
}

template <typename T>
const char* describe() {
  if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return "an integer";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "a boolean";
  } else if constexpr (std::is_same_v<T, Strings>) {
    return "an array of strings";
  } else if constexpr (std::is_same_v<T, Objects>) {
    return "an array of objects";
  } else {
    static_assert(std::is_same_v<T, const Json*>);
    return "an object";
  }
}

// `v` as a T, or nullopt when it has another JSON type. Integers must be JSON integers; one
// above INT64_MAX reads as INT64_MAX (every caller range-checks).
template <typename T>
std::optional<T> convert(const Json& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, int64_t>) {
    if (v.is_number_unsigned()) {
      return static_cast<int64_t>(
          std::min<uint64_t>(v.get<uint64_t>(), std::numeric_limits<int64_t>::max()));
    }
    if (v.is_number_integer()) return v.get<int64_t>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.get<bool>();
  } else if constexpr (std::is_same_v<T, Strings>) {
    if (!v.is_array()) return std::nullopt;
    Strings out;
    for (const Json& e : v) {
      if (!e.is_string()) return std::nullopt;
      out.push_back(e.get<std::string>());
    }
    return out;
  } else if constexpr (std::is_same_v<T, Objects>) {
    if (!v.is_array()) return std::nullopt;
    Objects out;
    for (const Json& e : v) {
      if (!e.is_object()) return std::nullopt;
      out.push_back(&e);
    }
    return out;
  } else if constexpr (std::is_same_v<T, const Json*>) {
    if (v.is_object()) return &v;
  }
  return std::nullopt;
}

// The member `key` of `node` as a T; nullopt when absent; ClientException
// "<path>.<key> must be <a T>" when it has another type.
template <typename T>
ApiResult<std::optional<T>> read(const Node& node, const char* key) {
  const Json* v = node.find(key);
  if (v == nullptr) return std::optional<T>();
  std::optional<T> out = convert<T>(*v);
  if (!out) return clientError(node.at(key) + " must be " + describe<T>());
  return out;
}

ApiResult<std::optional<int>> readInt(const Node& node, const char* key, int min, int max) {
  TM_ECS_TRY(auto v, read<int64_t>(node, key));
  if (!v) return std::optional<int>();
  if (*v < min || *v > max) {
    return clientError(node.at(key) + " must be between " + std::to_string(min) + " and " +
                       std::to_string(max));
  }
  return std::optional<int>(static_cast<int>(*v));
}

ApiResult<std::string> readRequiredString(const Node& node, const char* key) {
  TM_ECS_TRY(auto v, read<std::string>(node, key));
  if (!v || v->empty()) return clientError(node.at(key) + " is required");
  return std::move(*v);
}

// Calls parse(Node) for each element of the array of objects `key` (absent: none).
template <typename Parse>
ApiResult<void> forEachObject(const Node& node, const char* key, Parse&& parse) {
  TM_ECS_TRY(auto items, read<Objects>(node, key));
  if (!items) return {};
  for (size_t i = 0; i < items->size(); ++i) {
    TM_ECS_TD_OK(parse(Node{*(*items)[i], indexed(node.at(key), i)}));
  }
  return {};
}

// family, container and volume names: 1-255 of [A-Za-z0-9_-].
bool isName(std::string_view s) {
  return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
  });
}

// ECS's image rule (letters, digits, - _ : . / #), plus '@' for the repo/image@digest form.
bool isImage(std::string_view s) {
  return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) ||
           std::string_view("-_:./#@").find(ch) != std::string_view::npos;
  });
}

bool isAbsolutePath(std::string_view s) { return !s.empty() && s.front() == '/'; }

// ---------------------------------------------------------------------------------------------
// Health check (reference §3).

ApiResult<void> checkHealthCommand(const Node& node, const Strings& command) {
  if (command.empty()) return clientError(node.at("command") + " is required");
  if (command[0] == "CMD-SHELL" && command.size() != 2) {
    return clientError(node.at("command") +
                       " with CMD-SHELL must have exactly one more element, the shell command");
  }
  if (command[0] == "CMD" && command.size() < 2) {
    return clientError(node.at("command") + " with CMD must name the program to run");
  }
  return {};
}

ApiResult<HealthCheck> parseHealthCheck(const Node& node) {
  TM_ECS_TRY(auto command, read<Strings>(node, "command"));
  TM_ECS_TD_OK(checkHealthCommand(node, command.value_or(Strings{})));
  TM_ECS_TRY(auto interval, readInt(node, "interval", 5, 300));
  TM_ECS_TRY(auto timeout, readInt(node, "timeout", 2, 60));
  TM_ECS_TRY(auto retries, readInt(node, "retries", 1, 10));
  TM_ECS_TRY(auto startPeriod, readInt(node, "startPeriod", 0, 300));
  HealthCheck hc;
  hc.command = std::move(*command);
  hc.interval = interval.value_or(hc.interval);
  hc.timeout = timeout.value_or(hc.timeout);
  hc.retries = retries.value_or(hc.retries);
  hc.startPeriod = startPeriod.value_or(hc.startPeriod);
  return hc;
}

// ---------------------------------------------------------------------------------------------
// Container members, one group per concern. Each fills its members of `c`.

ApiResult<void> parseIdentity(const Node& node, ContainerDefinition& c) {
  TM_ECS_TRY(auto name, read<std::string>(node, "name"));
  if (!name || name->empty()) return clientError("Container.name should not be null or empty.");
  if (!isName(*name)) return clientError("Container.name contains invalid characters.");
  c.name = std::move(*name);
  TM_ECS_TRY(auto image, readRequiredString(node, "image"));
  if (!isImage(image)) {
    return clientError(node.at("image") +
                       " must be at most 255 letters, digits, hyphens, underscores, colons, "
                       "periods, forward slashes, number signs and at signs");
  }
  c.image = std::move(image);
  return {};
}

// "", "user", "uid", "user:group", "uid:gid", "user:gid", "uid:group".
ApiResult<void> checkUser(const Node& node, std::string_view user) {
  if (user.empty()) return {};
  size_t colon = user.find(':');
  std::string_view parts[] = {user.substr(0, colon),
                              colon == std::string_view::npos ? "x" : user.substr(colon + 1)};
  for (std::string_view part : parts) {
    if (part.empty() || part.find(':') != std::string_view::npos) {
      return clientError(node.at("user") +
                         " must be user, user:group, uid, uid:gid, user:gid or uid:group");
    }
    // Digits are a uid/gid; names cannot start with '-', so "-1" is a negative id.
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), id);
    bool isId = end == part.data() + part.size();
    if (part[0] == '-' || (isId && (ec != std::errc() || id > UINT32_MAX))) {
      return clientError(node.at("user") + ": a uid or gid must be an integer from 0 to " +
                         std::to_string(UINT32_MAX));
    }
  }
  return {};
}

ApiResult<KeyValuePair> parseEnvironmentVariable(const Node& node) {
  TM_ECS_TRY(auto name, readRequiredString(node, "name"));
  TM_ECS_TRY(auto value, read<std::string>(node, "value"));
  return KeyValuePair{std::move(name), value.value_or("")};
}

ApiResult<void> parseProcess(const Node& node, ContainerDefinition& c) {
  TM_ECS_TRY(auto entryPoint, read<Strings>(node, "entryPoint"));
  TM_ECS_TRY(auto command, read<Strings>(node, "command"));
  TM_ECS_TRY(auto workingDirectory, read<std::string>(node, "workingDirectory"));
  TM_ECS_TRY(auto user, read<std::string>(node, "user"));
  TM_ECS_TRY(auto readonlyRoot, read<bool>(node, "readonlyRootFilesystem"));
  c.entryPoint = entryPoint.value_or(Strings{});
  c.command = command.value_or(Strings{});
  c.workingDirectory = workingDirectory.value_or("");
  if (!c.workingDirectory.empty() && !isAbsolutePath(c.workingDirectory)) {
    return clientError(node.at("workingDirectory") + " must be an absolute path");
  }
  c.user = user.value_or("");
  TM_ECS_TD_OK(checkUser(node, c.user));
  c.readonlyRootFilesystem = readonlyRoot.value_or(false);
  return forEachObject(node, "environment", [&](const Node& e) -> ApiResult<void> {
    TM_ECS_TRY(auto variable, parseEnvironmentVariable(e));
    c.environment.push_back(std::move(variable));
    return {};
  });
}

std::optional<DependencyCondition> parseCondition(std::string_view s) {
  for (auto c : {DependencyCondition::kStart, DependencyCondition::kComplete,
                 DependencyCondition::kSuccess, DependencyCondition::kHealthy}) {
    if (s == conditionName(c)) return c;
  }
  return std::nullopt;
}

ApiResult<ContainerDependency> parseDependency(const Node& node) {
  TM_ECS_TRY(auto containerName, readRequiredString(node, "containerName"));
  TM_ECS_TRY(auto condition, readRequiredString(node, "condition"));
  std::optional<DependencyCondition> parsed = parseCondition(condition);
  if (!parsed) {
    return clientError(node.at("condition") + " must be one of START, COMPLETE, SUCCESS, HEALTHY");
  }
  return ContainerDependency{std::move(containerName), *parsed};
}

ApiResult<void> parseLifecycle(const Node& node, ContainerDefinition& c) {
  TM_ECS_TRY(auto essential, read<bool>(node, "essential"));
  c.essential = essential.value_or(true);
  TM_ECS_TRY(auto startTimeout, readInt(node, "startTimeout", 1, 3600));
  TM_ECS_TRY(auto stopTimeout, readInt(node, "stopTimeout", 1, 600));
  c.startTimeout = startTimeout;
  c.stopTimeout = stopTimeout;
  TM_ECS_TRY(auto healthCheck, read<const Json*>(node, "healthCheck"));
  if (healthCheck) {
    TM_ECS_TRY(auto hc, parseHealthCheck(Node{**healthCheck, node.at("healthCheck")}));
    c.healthCheck = std::move(hc);
  }
  return forEachObject(node, "dependsOn", [&](const Node& d) -> ApiResult<void> {
    TM_ECS_TRY(auto dependency, parseDependency(d));
    c.dependsOn.push_back(std::move(dependency));
    return {};
  });
}

ApiResult<MountPoint> parseMountPoint(const Node& node, const VolumeNames& volumes) {
  TM_ECS_TRY(auto sourceVolume, readRequiredString(node, "sourceVolume"));
  if (!volumes.contains(sourceVolume)) {
    return clientError(node.at("sourceVolume") + " " + quoteValue(sourceVolume) +
                       " does not name an entry of volumes[]");
  }
  TM_ECS_TRY(auto containerPath, readRequiredString(node, "containerPath"));
  if (!isAbsolutePath(containerPath)) {
    return clientError(node.at("containerPath") + " must be an absolute path");
  }
  TM_ECS_TRY(auto readOnly, read<bool>(node, "readOnly"));
  return MountPoint{std::move(sourceVolume), std::move(containerPath), readOnly.value_or(false)};
}

ApiResult<VolumeFrom> parseVolumeFrom(const Node& node) {
  TM_ECS_TRY(auto sourceContainer, readRequiredString(node, "sourceContainer"));
  TM_ECS_TRY(auto readOnly, read<bool>(node, "readOnly"));
  return VolumeFrom{std::move(sourceContainer), readOnly.value_or(false)};
}

ApiResult<void> parseStorage(const Node& node, const VolumeNames& volumes, ContainerDefinition& c) {
  TM_ECS_TD_OK(forEachObject(node, "mountPoints", [&](const Node& m) -> ApiResult<void> {
    TM_ECS_TRY(auto mountPoint, parseMountPoint(m, volumes));
    c.mountPoints.push_back(std::move(mountPoint));
    return {};
  }));
  return forEachObject(node, "volumesFrom", [&](const Node& v) -> ApiResult<void> {
    TM_ECS_TRY(auto volumeFrom, parseVolumeFrom(v));
    c.volumesFrom.push_back(std::move(volumeFrom));
    return {};
  });
}

// awsvpc: hostPort absent, 0 or equal to containerPort; the model has it equal.
ApiResult<PortMapping> parsePortMapping(const Node& node) {
  TM_ECS_TRY(auto containerPort, readInt(node, "containerPort", 1, 65535));
  if (!containerPort) return clientError(node.at("containerPort") + " is required");
  TM_ECS_TRY(auto hostPort, readInt(node, "hostPort", 0, 65535));
  if (hostPort.value_or(0) != 0 && *hostPort != *containerPort) {
    return clientError(kAwsvpcPortsMessage);
  }
  TM_ECS_TRY(auto protocol, read<std::string>(node, "protocol"));
  if (protocol && *protocol != "tcp" && *protocol != "udp") {
    return clientError(node.at("protocol") + " must be tcp or udp");
  }
  return PortMapping{*containerPort, *containerPort, protocol.value_or("tcp")};
}

ApiResult<void> parseResources(const Node& node, ContainerDefinition& c) {
  TM_ECS_TRY(auto cpu, readInt(node, "cpu", 0, kIntMax));
  TM_ECS_TRY(auto memory, readInt(node, "memory", 0, kIntMax));
  TM_ECS_TRY(auto memoryReservation, readInt(node, "memoryReservation", 0, kIntMax));
  if (memory && memoryReservation && *memory <= *memoryReservation) {
    return clientError(node.at("memory") + " must be greater than memoryReservation");
  }
  c.cpu = cpu.value_or(0);
  c.memory = memory;
  c.memoryReservation = memoryReservation;
  return {};
}

ApiResult<void> parsePorts(const Node& node, ContainerDefinition& c) {
  return forEachObject(node, "portMappings", [&](const Node& p) -> ApiResult<void> {
    TM_ECS_TRY(auto mapping, parsePortMapping(p));
    c.portMappings.push_back(std::move(mapping));
    return {};
  });
}

ApiResult<ContainerDefinition> parseContainer(const Node& node, const VolumeNames& volumes) {
  ContainerDefinition c;
  TM_ECS_TD_OK(parseIdentity(node, c));
  TM_ECS_TD_OK(parseProcess(node, c));
  TM_ECS_TD_OK(parseLifecycle(node, c));
  TM_ECS_TD_OK(parseStorage(node, volumes, c));
  TM_ECS_TD_OK(parsePorts(node, c));
  TM_ECS_TD_OK(parseResources(node, c));
  return c;
}

ApiResult<std::vector<ContainerDefinition>> parseContainers(const Node& top,
                                                            const std::vector<Volume>& volumes) {
  VolumeNames volumeNames;
  for (const Volume& v : volumes) volumeNames.insert(v.name);
  TM_ECS_TRY(auto items, read<Objects>(top, "containerDefinitions"));
  if (!items || items->empty()) return clientError("Container list cannot be empty.");
  std::vector<ContainerDefinition> containers;
  std::set<std::string> names;
  for (size_t i = 0; i < items->size(); ++i) {
    TM_ECS_TRY(auto c,
               parseContainer(Node{*(*items)[i], indexed("containerDefinitions", i)}, volumeNames));
    if (!names.insert(c.name).second) {
      return clientError("Container names must be unique within a Task Definition.");
    }
    containers.push_back(std::move(c));
  }
  return containers;
}

// ---------------------------------------------------------------------------------------------
// Rules across containers: essential, dependsOn targets and conditions, cycles (reference §4,
// §5.1). volumesFrom is an implicit START dependency on its source container.

const ContainerDefinition* findContainer(const std::vector<ContainerDefinition>& containers,
                                         const std::string& name) {
  for (const ContainerDefinition& c : containers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// edges[i]: positions of the containers container i waits for (dependsOn, then volumesFrom).
using Edges = std::vector<std::vector<size_t>>;
// Container name → position (names are unique by now); views into the containers.
using NameIndex = std::map<std::string_view, size_t>;

ApiResult<size_t> checkDependency(const std::vector<ContainerDefinition>& containers,
                                  const NameIndex& index, size_t from, const ContainerDependency& d,
                                  const std::string& path) {
  auto it = index.find(d.containerName);
  if (it == index.end()) {
    return clientError(path + ".containerName " + quoteValue(d.containerName) +
                       " is not a container of this task definition");
  }
  const ContainerDefinition& c = containers[from];
  const ContainerDefinition& target = containers[it->second];
  if (it->second == from) {
    return clientError(path + ".containerName: container '" + c.name + "' cannot depend on itself");
  }
  bool needsExit =
      d.condition == DependencyCondition::kSuccess || d.condition == DependencyCondition::kComplete;
  if (needsExit && target.essential) return clientError(kEssentialDependencyMessage);
  if (d.condition == DependencyCondition::kHealthy && !target.healthCheck) {
    return clientError(path + ": container '" + c.name + "' depends on '" + target.name +
                       "' being HEALTHY, but '" + target.name + "' has no healthCheck");
  }
  return it->second;
}

ApiResult<size_t> checkVolumeFrom(const NameIndex& index, size_t from, const VolumeFrom& v,
                                  const std::string& path) {
  auto it = index.find(v.sourceContainer);
  if (it == index.end()) {
    return clientError(path + ".sourceContainer " + quoteValue(v.sourceContainer) +
                       " is not a container of this task definition");
  }
  if (it->second == from) return clientError(path + ".sourceContainer names the container itself");
  return it->second;
}

// Checks every dependsOn and volumesFrom reference; returns the dependency graph.
ApiResult<Edges> checkDependencies(const std::vector<ContainerDefinition>& containers) {
  if (std::none_of(containers.begin(), containers.end(),
                   [](const ContainerDefinition& c) { return c.essential; })) {
    return clientError("Task definition doesn't have any essential container.");
  }
  NameIndex index;
  for (size_t i = 0; i < containers.size(); ++i) index.emplace(containers[i].name, i);
  Edges edges(containers.size());
  for (size_t i = 0; i < containers.size(); ++i) {
    const ContainerDefinition& c = containers[i];
    std::string path = indexed("containerDefinitions", i);
    for (size_t j = 0; j < c.dependsOn.size(); ++j) {
      TM_ECS_TRY(auto to, checkDependency(containers, index, i, c.dependsOn[j],
                                          indexed(path + ".dependsOn", j)));
      edges[i].push_back(to);
    }
    for (size_t j = 0; j < c.volumesFrom.size(); ++j) {
      TM_ECS_TRY(auto to,
                 checkVolumeFrom(index, i, c.volumesFrom[j], indexed(path + ".volumesFrom", j)));
      edges[i].push_back(to);
    }
  }
  return edges;
}

// Iterative depth-first search (the container list is outside input: no recursion on it).
ApiResult<void> checkCycles(const std::vector<ContainerDefinition>& containers,
                            const Edges& edges) {
  enum Color { kWhite, kGray, kBlack };
  std::vector<Color> color(containers.size(), kWhite);
  for (size_t root = 0; root < containers.size(); ++root) {
    if (color[root] != kWhite) continue;
    std::vector<std::pair<size_t, size_t>> stack{{root, 0}};  // (container, next edge)
    color[root] = kGray;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next == edges[node].size()) {
        color[node] = kBlack;
        stack.pop_back();
        continue;
      }
      size_t to = edges[node][next++];
      if (color[to] == kWhite) {
        color[to] = kGray;
        stack.emplace_back(to, 0);
      } else if (color[to] == kGray) {
        std::string cycle;
        auto from =
            std::find_if(stack.begin(), stack.end(), [&](auto& e) { return e.first == to; });
        for (auto it = from; it != stack.end(); ++it) cycle += containers[it->first].name + " -> ";
        return clientError("dependsOn has a cycle: " + cycle + containers[to].name);
      }
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Task-level members (reference §1.1).

ApiResult<std::string> parseFamily(const Node& top) {
  TM_ECS_TRY(auto family, read<std::string>(top, "family"));
  if (!family || family->empty()) return clientError("family is required");
  if (!isName(*family)) {
    return clientError("family must be 1-255 letters, digits, hyphens and underscores");
  }
  return std::move(*family);
}

ApiResult<std::string> parseNetworkMode(const Node& top) {
  TM_ECS_TRY(auto mode, read<std::string>(top, "networkMode"));
  if (mode && *mode != "awsvpc") {
    return clientError("networkMode " + quoteValue(*mode) +
                       " is not supported by this runtime; only awsvpc is");
  }
  return std::string("awsvpc");
}

// "1024" → 1024; "<n><unit>" or "<n> <unit>" (unit case-insensitive, n may have a fraction)
// → n * 1024 when that is whole. nullopt for anything else, 0, or above INT_MAX.
std::optional<int64_t> parseUnits(std::string_view s, std::string_view unit) {
  size_t i = 0, intDigits = 0, fracDigits = 0;
  int64_t whole = 0, frac = 0, scale = 1;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, ++intDigits) {
    whole = whole * 10 + (s[i] - '0');
  }
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, ++fracDigits) {
      frac = frac * 10 + (s[i] - '0');
      scale *= 10;
    }
    if (fracDigits == 0) return std::nullopt;
  }
  if (intDigits == 0 || intDigits > 9 || fracDigits > 6) return std::nullopt;
  std::string_view rest = s.substr(i);
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  int64_t value = 0;
  if (rest.empty() && fracDigits == 0) {
    value = whole;
  } else if (!rest.empty() && rest.size() == unit.size() &&
             std::equal(rest.begin(), rest.end(), unit.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
             })) {
    if ((frac * 1024) % scale != 0) return std::nullopt;
    value = whole * 1024 + frac * 1024 / scale;
  } else {
    return std::nullopt;
  }
  if (value <= 0 || value > kIntMax) return std::nullopt;
  return value;
}

ApiResult<std::string> parseTaskSize(const Node& top, const char* key, std::string_view unit,
                                     const char* expected) {
  TM_ECS_TRY(auto v, read<std::string>(top, key));
  if (!v) return std::string();
  std::optional<int64_t> n = parseUnits(*v, unit);
  if (!n) return clientError(std::string(key) + " must be " + expected + ", got " + quoteValue(*v));
  return std::to_string(*n);
}

ApiResult<Json> parseTags(const Node& top) {
  TM_ECS_TRY(auto items, read<Objects>(top, "tags"));
  Json tags = Json::array();
  if (!items) return tags;
  if (items->size() > 50) return clientError("tags must have at most 50 entries");
  for (size_t i = 0; i < items->size(); ++i) {
    Node tag{*(*items)[i], indexed("tags", i)};
    TM_ECS_TRY(auto key, read<std::string>(tag, "key"));
    TM_ECS_TRY(auto value, read<std::string>(tag, "value"));
    if (!key || key->empty() || key->size() > 128) {
      return clientError(tag.at("key") + " must be 1-128 characters");
    }
    if (key->starts_with("aws:")) {
      return clientError(tag.at("key") + " must not start with aws: (reserved for AWS use)");
    }
    if (value && value->size() > 256) {
      return clientError(tag.at("value") + " must be at most 256 characters");
    }
    tags.push_back(Json{{"key", *key}, {"value", value.value_or("")}});
  }
  return tags;
}

ApiResult<Volume> parseVolume(const Node& node) {
  TM_ECS_TRY(auto name, read<std::string>(node, "name"));
  if (!name || !isName(*name)) {
    return clientError(node.at("name") + " must be 1-255 letters, digits, hyphens and underscores");
  }
  TM_ECS_TRY(auto host, read<const Json*>(node, "host"));
  std::optional<std::string> sourcePath;
  if (host) {
    Node hostNode{**host, node.at("host")};
    TM_ECS_TRY(auto path, read<std::string>(hostNode, "sourcePath"));
    if (path && !isAbsolutePath(*path)) {
      return clientError(hostNode.at("sourcePath") + " must be an absolute path");
    }
    sourcePath = std::move(path);
  }
  return Volume{std::move(*name), sourcePath.value_or("")};
}

ApiResult<std::vector<Volume>> parseVolumes(const Node& top) {
  std::vector<Volume> volumes;
  VolumeNames names;
  TM_ECS_TD_OK(forEachObject(top, "volumes", [&](const Node& v) -> ApiResult<void> {
    TM_ECS_TRY(auto volume, parseVolume(v));
    if (!names.insert(volume.name).second) {
      return clientError(v.at("name") + " '" + volume.name + "' is not unique");
    }
    volumes.push_back(std::move(volume));
    return {};
  }));
  return volumes;
}

ApiResult<void> parseTaskMembers(const Node& top, TaskDefinition& td) {
  TM_ECS_TRY(auto family, parseFamily(top));
  TM_ECS_TRY(auto networkMode, parseNetworkMode(top));
  TM_ECS_TRY(auto cpu,
             parseTaskSize(top, "cpu", "vcpu", "CPU units (\"1024\") or vCPUs (\"1 vCPU\")"));
  TM_ECS_TRY(auto memory, parseTaskSize(top, "memory", "gb", "MiB (\"512\") or GB (\"1 GB\")"));
  TM_ECS_TRY(auto tags, parseTags(top));
  TM_ECS_TRY(auto compatibilities, read<Strings>(top, "requiresCompatibilities"));
  TM_ECS_TRY(auto volumes, parseVolumes(top));
  td.family = std::move(family);
  td.networkMode = std::move(networkMode);
  td.cpu = std::move(cpu);
  td.memory = std::move(memory);
  td.tags = std::move(tags);
  td.volumes = std::move(volumes);
  return {};
}

// ---------------------------------------------------------------------------------------------
// The returned document: the request with ECS's defaults (reference §1.2).

// Null object members read as absent; the document leaves them out.
void dropNulls(Json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it->is_null()) {
        it = j.erase(it);
      } else {
        dropNulls(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (Json& e : j) dropNulls(e);
  }
}

void fillContainerDefaults(const ContainerDefinition& c, Json& doc) {
  doc["essential"] = c.essential;
  for (const char* key : {"environment", "mountPoints", "portMappings", "volumesFrom"}) {
    if (!doc.contains(key)) doc[key] = Json::array();
  }
  for (size_t i = 0; i < c.portMappings.size(); ++i) {
    doc["portMappings"][i]["hostPort"] = c.portMappings[i].hostPort;
    doc["portMappings"][i]["protocol"] = c.portMappings[i].protocol;
  }
  if (!doc.contains("cpu")) doc["cpu"] = 0;
  if (c.healthCheck) {
    Json& hc = doc["healthCheck"];
    hc["interval"] = c.healthCheck->interval;
    hc["timeout"] = c.healthCheck->timeout;
    hc["retries"] = c.healthCheck->retries;
  }
}

Json buildDocument(const Json& request, const TaskDefinition& td) {
  Json doc = request;
  dropNulls(doc);
  doc.erase("tags");
  for (const char* key : kRegistryMembers) doc.erase(key);
  doc["networkMode"] = td.networkMode;
  if (!doc.contains("volumes")) doc["volumes"] = Json::array();
  if (!td.cpu.empty()) doc["cpu"] = td.cpu;
  if (!td.memory.empty()) doc["memory"] = td.memory;
  doc["compatibilities"] = Json::array({"EC2", "FARGATE"});
  for (size_t i = 0; i < td.containers.size(); ++i) {
    fillContainerDefaults(td.containers[i], doc["containerDefinitions"][i]);
  }
  return doc;
}

}  // namespace

const char* conditionName(DependencyCondition c) {
  switch (c) {
    case DependencyCondition::kStart:
      return "START";
    case DependencyCondition::kComplete:
      return "COMPLETE";
    case DependencyCondition::kSuccess:
      return "SUCCESS";
    case DependencyCondition::kHealthy:
      return "HEALTHY";
  }
  return "START";
}

const ContainerDefinition* TaskDefinition::container(const std::string& name) const {
  return findContainer(containers, name);
}

ApiResult<TaskDefinition> parseTaskDefinition(const nlohmann::json& request) {
  if (!request.is_object()) return clientError("The request must be a JSON object");
  Node top{request, ""};
  TaskDefinition td;
  TM_ECS_TD_OK(parseTaskMembers(top, td));
  TM_ECS_TRY(auto containers, parseContainers(top, td.volumes));
  td.containers = std::move(containers);
  TM_ECS_TRY(auto edges, checkDependencies(td.containers));
  TM_ECS_TD_OK(checkCycles(td.containers, edges));
  td.document = buildDocument(request, td);
  return td;
}

#undef TM_ECS_TD_OK

}  // namespace taskmesh::ecs
