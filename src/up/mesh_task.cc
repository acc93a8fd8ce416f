#include "up/mesh_task.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "ecs/task_definition.h"
#include "init/mesh_init.h"

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

// Seconds the app gets to pass its checks before failures of consul-client's health check count.
constexpr int kAppStartPeriod = 60;

constexpr std::array<std::string_view, 4> kMeshContainers = {"discover-servers", "consul-client",
                                                             "mesh-init", "sidecar-proxy"};

Error appError(const std::string& what) {
  return Error{ErrorCode::kInvalidArgument, "app task definition: " + what};
}

json meshMount(bool readOnly) {
  return json{
      {"sourceVolume", kMeshVolume}, {"containerPath", kMeshMountPath}, {"readOnly", readOnly}};
}

json kv(const std::string& name, const std::string& value) {
  return json{{"name", name}, {"value", value}};
}

json dependsOn(const std::string& container, const std::string& condition) {
  return json{{"containerName", container}, {"condition", condition}};
}

// A mesh container running `taskmesh <args...>`.
json meshContainer(const std::string& name, const MeshTaskOptions& o, bool essential,
                   std::vector<std::string> args) {
  return json{{"name", name},           {"image", o.image},
              {"essential", essential}, {"entryPoint", json::array({kBinaryInImage})},
              {"command", args},        {"mountPoints", json::array({meshMount(false)})}};
}

// The app definition must be an object whose containers do not collide with ours.
Result<void> checkApp(const json& app) {
  if (!app.is_object()) return makeError(appError("expected a JSON object"));
  auto containers = app.find("containerDefinitions");
  if (containers == app.end() || !containers->is_array() || containers->empty()) {
    return makeError(appError("containerDefinitions: expected a non-empty array"));
  }
  for (size_t i = 0; i < containers->size(); ++i) {
    const json& c = (*containers)[i];
    std::string where = "containerDefinitions[" + std::to_string(i) + "]";
    if (!c.is_object()) return makeError(appError(where + ": expected an object"));
    auto name = c.find("name");
    if (name == c.end() || !name->is_string()) {
      return makeError(appError(where + ".name: expected a string"));
    }
    auto n = name->get<std::string>();
    if (std::find(kMeshContainers.begin(), kMeshContainers.end(), n) != kMeshContainers.end()) {
      return makeError(appError(where + ".name: \"" + n + "\" is the name of a mesh container"));
    }
    if (auto d = c.find("dependsOn"); d != c.end() && !d->is_null() && !d->is_array()) {
      return makeError(appError(where + ".dependsOn: expected an array"));
    }
  }
  if (auto mode = app.find("networkMode");
      mode != app.end() && !mode->is_null() && *mode != "awsvpc") {
    return makeError(
        appError("networkMode: the mesh needs \"awsvpc\" (one network namespace per "
                 "task, shared by the app and its sidecar), got " +
                 mode->dump()));
  }
  if (auto volumes = app.find("volumes"); volumes != app.end() && !volumes->is_null()) {
    if (!volumes->is_array()) return makeError(appError("volumes: expected an array"));
    for (const auto& v : *volumes) {
      if (v.is_object() && v.value("name", "") == kMeshVolume) {
        return makeError(appError("volumes: \"taskmesh\" is the mesh's own volume"));
      }
    }
  }
  return {};
}

// The mesh config as mesh-init will read it in the task; validated by mesh-init's parser.
Result<init::MeshInitConfig> meshInitConfig(json& config) {
  if (!config.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "mesh config: expected a JSON object");
  }
  if (auto dir = config.find("bootstrapDir"); dir != config.end() && *dir != kMeshMountPath) {
    return makeError(ErrorCode::kInvalidArgument, "mesh config: bootstrapDir is the mesh volume, " +
                                                      std::string(kMeshMountPath) +
                                                      "; leave it out");
  }
  config["bootstrapDir"] = kMeshMountPath;
  auto parsed = init::parseMeshInitConfig(config.dump());
  if (!parsed) {
    return makeError(ErrorCode::kInvalidArgument, "mesh config: " + parsed.error().message);
  }
  return parsed;
}

void addTag(json& def, const std::string& key, const std::string& value) {
  if (!def.contains("tags") || !def["tags"].is_array()) def["tags"] = json::array();
  for (auto& t : def["tags"]) {
    if (t.is_object() && t.value("key", "") == key) {
      t["value"] = value;
      return;
    }
  }
  def["tags"].push_back(json{{"key", key}, {"value", value}});
}

Result<void> validateOutput(const json& def, const std::string& what) {
  auto parsed = ecs::parseTaskDefinition(def);
  if (!parsed) {
    return makeError(
        ErrorCode::kInvalidArgument,
        what + " does not validate (" + parsed.error().type + "): " + parsed.error().message);
  }
  return {};
}

}  // namespace

Result<json> expandMeshTask(const json& appTaskDefinition, const json& meshConfig,
                            const MeshTaskOptions& options) {
  if (auto ok = checkApp(appTaskDefinition); !ok) return makeError(ok.error());
  json config = meshConfig;
  auto parsed = meshInitConfig(config);
  if (!parsed) return makeError(parsed.error());
  const std::string serviceName = !parsed->serviceName.empty()
                                      ? parsed->serviceName
                                      : appTaskDefinition.value("family", std::string());
  const std::string publicPort = std::to_string(parsed->publicListenerPort);

  json discover = meshContainer("discover-servers", options, false,
                                {"discover-servers", "-service-name", options.serverService, "-out",
                                 std::string(kMeshMountPath) + "/server-ip", "-timeout", "5m"});
  json agent = meshContainer(
      "consul-client", options, true,
      {"agent", "-retry-join-file", std::string(kMeshMountPath) + "/server-ip", "-data-dir",
       std::string(kMeshMountPath) + "/agent", "-leave-on-terminate", "-log-level", "warn"});
  agent["dependsOn"] = json::array({dependsOn("discover-servers", "SUCCESS")});
  // HEALTHY once the task's service passes in the agent (T4), so ECS counts the task healthy
  // — for a rolling update's minimumHealthyPercent — only when it can take traffic.
  agent["healthCheck"] =
      json{{"command", json::array({"CMD", kBinaryInImage, "service-health", serviceName})},
           {"interval", options.healthInterval},
           {"timeout", 5},
           {"retries", 3},
           {"startPeriod", kAppStartPeriod}};
  json meshInit = meshContainer("mesh-init", options, false, {"mesh-init", "-timeout", "2m"});
  meshInit["dependsOn"] = json::array({dependsOn("discover-servers", "SUCCESS")});
  meshInit["environment"] = json::array({kv("TASKMESH_CONFIG_JSON", config.dump())});
  json proxy = meshContainer(
      "sidecar-proxy", options, true,
      {"proxy", "-c", std::string(kMeshMountPath) + "/bootstrap.json", "-log-level", "warn"});
  proxy["dependsOn"] = json::array({dependsOn("mesh-init", "SUCCESS")});
  proxy["mountPoints"] = json::array({meshMount(true)});
  proxy["portMappings"] =
      json::array({json{{"containerPort", parsed->publicListenerPort}, {"protocol", "tcp"}}});
  proxy["healthCheck"] =
      json{{"command", json::array({"CMD", kBinaryInImage, "net-dial", "127.0.0.1:" + publicPort})},
           {"interval", options.healthInterval},
           {"timeout", 5},
           {"retries", 3}};

  json out = appTaskDefinition;
  json containers = json::array({discover, agent, meshInit, proxy});
  for (json c : appTaskDefinition["containerDefinitions"]) {
    if (!c.contains("dependsOn") || c["dependsOn"].is_null()) c["dependsOn"] = json::array();
    c["dependsOn"].push_back(dependsOn("sidecar-proxy", "HEALTHY"));
    containers.push_back(std::move(c));
  }
  out["containerDefinitions"] = std::move(containers);
  out["networkMode"] = "awsvpc";
  if (!out.contains("volumes") || out["volumes"].is_null()) out["volumes"] = json::array();
  out["volumes"].push_back(json{{"name", kMeshVolume}});
  addTag(out, "taskmesh.io/mesh", "true");
  if (!serviceName.empty()) addTag(out, "taskmesh.io/service-name", serviceName);
  if (auto ok = validateOutput(out, "the expanded task definition"); !ok) {
    return makeError(ok.error());
  }
  return out;
}

Result<json> serverTaskDefinition(const ServerTaskOptions& options) {
  if (options.defaultIntentionPolicy != "allow" && options.defaultIntentionPolicy != "deny") {
    return makeError(ErrorCode::kInvalidArgument,
                     "-default-intention-policy: expected allow or deny, got \"" +
                         options.defaultIntentionPolicy + "\"");
  }
  json server = {
      {"name", kServerContainer},
      {"image", options.image},
      {"essential", true},
      {"entryPoint", json::array({kBinaryInImage})},
      {"command",
       json::array({"server", "-bootstrap", "-data-dir", std::string(kMeshMountPath) + "/server",
                    "-http-addr", "0.0.0.0:8500", "-default-intention-policy",
                    options.defaultIntentionPolicy, "-log-level", "warn"})},
      {"portMappings", json::array({json{{"containerPort", 8500}, {"protocol", "tcp"}}})},
      {"mountPoints", json::array({meshMount(false)})},
      {"healthCheck",
       {{"command", json::array({"CMD", kBinaryInImage, "net-dial", "127.0.0.1:8500"})},
        // Gentle: nothing waits for the server's HEALTHY (discover-servers waits for RUNNING),
        // and replacing a server task loses the mesh's state.
        {"interval", 30},
        {"timeout", 5},
        {"retries", 3},
        {"startPeriod", 60}}},
  };
  json out = {{"family", options.family},
              {"networkMode", "awsvpc"},
              {"requiresCompatibilities", json::array({"FARGATE", "EC2"})},
              {"cpu", "256"},
              {"memory", "512"},
              {"containerDefinitions", json::array({server})},
              {"volumes", json::array({json{{"name", kMeshVolume}}})},
              {"tags", json::array({json{{"key", "taskmesh.io/role"}, {"value", "server"}}})}};
  if (auto ok = validateOutput(out, "the server task definition"); !ok) {
    return makeError(ok.error());
  }
  return out;
}

}  // namespace taskmesh::up
