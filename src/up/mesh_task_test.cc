#include "up/mesh_task.h"

#include <gtest/gtest.h>

#include "ecs/task_definition.h"

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

json app() {
  return json::parse(R"({
    "family": "web",
    "cpu": "256", "memory": "512",
    "containerDefinitions": [
      {"name": "app", "image": "host", "essential": true,
       "command": ["python3", "-m", "http.server", "8080", "--bind", "127.0.0.1"],
       "dependsOn": [{"containerName": "log", "condition": "START"}]},
      {"name": "log", "image": "host", "essential": false, "command": ["sleep", "infinity"]}
    ],
    "tags": [{"key": "team", "value": "web"}]
  })");
}

json mesh() {
  return json::parse(R"({
    "service": {"name": "web", "port": 8080},
    "proxy": {"upstreams": [{"destinationName": "api", "localBindPort": 1234}]}
  })");
}

const json* container(const json& def, const std::string& name) {
  for (const auto& c : def["containerDefinitions"]) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

bool hasDependency(const json& c, const std::string& on, const std::string& condition) {
  for (const auto& d : c.value("dependsOn", json::array())) {
    if (d["containerName"] == on && d["condition"] == condition) return true;
  }
  return false;
}

TEST(MeshTask, ExpandsIntoTheTimelineChain) {
  auto out = expandMeshTask(app(), mesh(), MeshTaskOptions{});
  ASSERT_TRUE(out) << out.error().message;
  const json& d = *out;
  std::vector<std::string> names;
  for (const auto& c : d["containerDefinitions"]) names.push_back(c["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"discover-servers", "consul-client", "mesh-init",
                                             "sidecar-proxy", "app", "log"}));
  EXPECT_EQ(d["networkMode"], "awsvpc");
  EXPECT_EQ(d["family"], "web");
  EXPECT_EQ(d["cpu"], "256");

  const json& discover = *container(d, "discover-servers");
  EXPECT_FALSE(discover["essential"].get<bool>());
  EXPECT_EQ(discover["command"][2], "taskmesh-server");
  const json& agent = *container(d, "consul-client");
  EXPECT_TRUE(agent["essential"].get<bool>());
  EXPECT_TRUE(hasDependency(agent, "discover-servers", "SUCCESS"));
  EXPECT_EQ(agent["healthCheck"]["command"],
            json::array({"CMD", kBinaryInImage, "service-health", "web"}));
  EXPECT_EQ(agent["healthCheck"]["startPeriod"], 60);
  const json& init = *container(d, "mesh-init");
  EXPECT_TRUE(hasDependency(init, "discover-servers", "SUCCESS"));
  auto config = json::parse(init["environment"][0]["value"].get<std::string>());
  EXPECT_EQ(init["environment"][0]["name"], "TASKMESH_CONFIG_JSON");
  EXPECT_EQ(config["bootstrapDir"], "/taskmesh");
  EXPECT_EQ(config["proxy"]["upstreams"][0]["localBindPort"], 1234);
  const json& proxy = *container(d, "sidecar-proxy");
  EXPECT_TRUE(proxy["essential"].get<bool>());
  EXPECT_TRUE(hasDependency(proxy, "mesh-init", "SUCCESS"));
  EXPECT_EQ(proxy["healthCheck"]["command"],
            json::array({"CMD", kBinaryInImage, "net-dial", "127.0.0.1:20000"}));
  EXPECT_EQ(proxy["mountPoints"][0]["readOnly"], true);
  // Every app container waits for the proxy; its own dependencies stay.
  const json& a = *container(d, "app");
  EXPECT_TRUE(hasDependency(a, "sidecar-proxy", "HEALTHY"));
  EXPECT_TRUE(hasDependency(a, "log", "START"));
  EXPECT_TRUE(hasDependency(*container(d, "log"), "sidecar-proxy", "HEALTHY"));
  EXPECT_EQ(d["volumes"].back()["name"], "taskmesh");
  EXPECT_EQ(d["tags"].size(), 3u);
  // The runtime accepts it as it is.
  EXPECT_TRUE(ecs::parseTaskDefinition(d));
}

TEST(MeshTask, OptionsReachTheContainers) {
  MeshTaskOptions o;
  o.image = "registry.example/taskmesh:1.0";
  o.serverService = "mesh-server";
  json m = mesh();
  m["proxy"]["publicListenerPort"] = 21000;
  auto out = expandMeshTask(app(), m, o);
  ASSERT_TRUE(out) << out.error().message;
  for (const auto& name : {"discover-servers", "consul-client", "mesh-init", "sidecar-proxy"}) {
    EXPECT_EQ((*container(*out, name))["image"], o.image) << name;
  }
  EXPECT_EQ((*container(*out, "discover-servers"))["command"][2], "mesh-server");
  EXPECT_EQ((*container(*out, "sidecar-proxy"))["healthCheck"]["command"][3], "127.0.0.1:21000");
  EXPECT_EQ((*container(*out, "app"))["image"], "host");
}

TEST(MeshTask, BadInputNamesWhatIsWrong) {
  struct Case {
    json app;
    json mesh;
    std::string contains;
  };
  json reserved = app();
  reserved["containerDefinitions"][0]["name"] = "sidecar-proxy";
  json bridge = app();
  bridge["networkMode"] = "bridge";
  json volume = app();
  volume["volumes"] = json::array({json{{"name", "taskmesh"}}});
  json noContainers = app();
  noContainers["containerDefinitions"] = json::array();
  json badPort = mesh();
  badPort["service"]["port"] = "http";
  json clash = mesh();
  clash["proxy"]["upstreams"][0]["localBindPort"] = 8080;
  json unknown = mesh();
  unknown["servce"] = json::object();
  json otherDir = mesh();
  otherDir["bootstrapDir"] = "/consul";
  json badApp = app();
  badApp["containerDefinitions"][0]["dependsOn"][0]["containerName"] = "nope";
  std::vector<Case> cases = {
      {json::array(), mesh(), "app task definition: expected a JSON object"},
      {reserved, mesh(), "\"sidecar-proxy\" is the name of a mesh container"},
      {bridge, mesh(), "networkMode"},
      {volume, mesh(), "mesh's own volume"},
      {noContainers, mesh(), "containerDefinitions"},
      {app(), badPort, "mesh config: service.port"},
      {app(), clash, "mesh config: proxy.upstreams[0].localBindPort: 8080 is already used"},
      {app(), unknown, "mesh config: servce: unknown field"},
      {app(), otherDir, "bootstrapDir"},
      {app(), json::object(), "mesh config: service: missing"},
      {badApp, mesh(), "does not validate"},
  };
  for (const auto& c : cases) {
    auto out = expandMeshTask(c.app, c.mesh, MeshTaskOptions{});
    ASSERT_FALSE(out) << c.contains;
    EXPECT_NE(out.error().message.find(c.contains), std::string::npos)
        << out.error().message << " / expected: " << c.contains;
  }
}

TEST(MeshTask, ServerTaskDefinition) {
  auto out = serverTaskDefinition(ServerTaskOptions{});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)["family"], "taskmesh-server");
  const json& c = (*out)["containerDefinitions"][0];
  EXPECT_EQ(c["name"], "consul-server");
  EXPECT_TRUE(c["essential"].get<bool>());
  EXPECT_NE(c["command"].dump().find("0.0.0.0:8500"), std::string::npos);
  ServerTaskOptions bad;
  bad.defaultIntentionPolicy = "maybe";
  auto refused = serverTaskDefinition(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("-default-intention-policy"), std::string::npos);
}

}  // namespace
}  // namespace taskmesh::up
