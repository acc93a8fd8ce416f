#include "ecs/task_definition.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taskmesh::ecs {
namespace {

using Json = nlohmann::json;

Json minimal() {
  return Json::parse(
      R"({"family": "web", "containerDefinitions": [{"name": "app", "image": "nginx"}]})");
}

// minimal() with `members` merged into its one container.
Json withContainer(const Json& members) {
  Json r = minimal();
  r["containerDefinitions"][0].update(members);
  return r;
}

// Two containers, "app" (essential) and "side"; `members` is merged into "side", which is
// containerDefinitions[1].
Json withSecond(const Json& members) {
  Json r = minimal();
  Json side = {{"name", "side"}, {"image", "busybox"}};
  side.update(members);
  r["containerDefinitions"].push_back(side);
  return r;
}

struct Case {
  Json request;
  std::string message;
};

void expectClientErrors(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request.dump(-1, ' ', false, Json::error_handler_t::replace));
    ApiResult<TaskDefinition> r = parseTaskDefinition(c.request);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().type, "ClientException");
    EXPECT_EQ(r.error().message, c.message);
  }
}

TaskDefinition parseOk(const Json& request) {
  ApiResult<TaskDefinition> r = parseTaskDefinition(request);
  EXPECT_TRUE(r.has_value()) << request.dump() << ": " << (r ? "" : r.error().message);
  return r.value_or(TaskDefinition{});
}

TEST(TaskDefinition, RequestMustBeAnObjectWithFamilyAndContainers) {
  Json noFamily = minimal();
  noFamily.erase("family");
  Json noContainers = minimal();
  noContainers.erase("containerDefinitions");
  Json emptyContainers = minimal();
  emptyContainers["containerDefinitions"] = Json::array();
  Json badFamily = minimal();
  badFamily["family"] = "web.app";
  Json longFamily = minimal();
  longFamily["family"] = std::string(256, 'f');
  Json numericFamily = minimal();
  numericFamily["family"] = 7;
  Json containersNotObjects = minimal();
  containersNotObjects["containerDefinitions"] = Json::array({"app"});
  expectClientErrors({
      {Json::array(), "The request must be a JSON object"},
      {noFamily, "family is required"},
      {badFamily, "family must be 1-255 letters, digits, hyphens and underscores"},
      {longFamily, "family must be 1-255 letters, digits, hyphens and underscores"},
      {numericFamily, "family must be a string"},
      {noContainers, "Container list cannot be empty."},
      {emptyContainers, "Container list cannot be empty."},
      {containersNotObjects, "containerDefinitions must be an array of objects"},
  });
  Json maxFamily = minimal();
  maxFamily["family"] = std::string(255, 'f');
  EXPECT_EQ(parseOk(maxFamily).family, std::string(255, 'f'));
}

TEST(TaskDefinition, ContainerNameAndImageRules) {
  Json noName = minimal();
  noName["containerDefinitions"][0].erase("name");
  Json noImage = minimal();
  noImage["containerDefinitions"][0].erase("image");
  expectClientErrors({
      {noName, "Container.name should not be null or empty."},
      {withContainer({{"name", ""}}), "Container.name should not be null or empty."},
      {withContainer({{"name", "my app"}}), "Container.name contains invalid characters."},
      {withContainer({{"name", std::string(256, 'a')}}),
       "Container.name contains invalid characters."},
      {withContainer({{"name", 1}}), "containerDefinitions[0].name must be a string"},
      {withSecond({{"name", "app"}}), "Container names must be unique within a Task Definition."},
      {noImage, "containerDefinitions[0].image is required"},
      {withContainer({{"image", "nginx latest"}}),
       "containerDefinitions[0].image must be at most 255 letters, digits, hyphens, "
       "underscores, colons, periods, forward slashes, number signs and at signs"},
  });
  const char* image = "public.ecr.aws/a_b/img-1:v1.2#x";
  EXPECT_EQ(parseOk(withContainer({{"image", image}})).containers[0].image, image);
  const char* digest = "ghcr.io/org/img@sha256:0123abcd";
  EXPECT_EQ(parseOk(withContainer({{"image", digest}})).containers[0].image, digest);
}

TEST(TaskDefinition, AtLeastOneEssentialContainer) {
  expectClientErrors({
      {withContainer({{"essential", false}}),
       "Task definition doesn't have any essential container."},
  });
  TaskDefinition td = parseOk(withSecond({{"essential", false}}));
  EXPECT_TRUE(td.containers[0].essential);
  EXPECT_FALSE(td.containers[1].essential);
}

TEST(TaskDefinition, MembersAreTypeChecked) {
  expectClientErrors({
      {withContainer({{"command", "sleep 1"}}),
       "containerDefinitions[0].command must be an array of strings"},
      {withSecond({{"command", {"sleep", 1}}}),
       "containerDefinitions[1].command must be an array of strings"},
      {withSecond({{"entryPoint", {{{"a", "b"}}}}}),
       "containerDefinitions[1].entryPoint must be an array of strings"},
      {withSecond({{"essential", "true"}}), "containerDefinitions[1].essential must be a boolean"},
      {withSecond({{"readonlyRootFilesystem", 1}}),
       "containerDefinitions[1].readonlyRootFilesystem must be a boolean"},
      {withSecond({{"user", 1000}}), "containerDefinitions[1].user must be a string"},
      {withSecond({{"workingDirectory", true}}),
       "containerDefinitions[1].workingDirectory must be a string"},
      {withSecond({{"startTimeout", 5.0}}),
       "containerDefinitions[1].startTimeout must be an integer"},
      {withSecond({{"stopTimeout", "30"}}),
       "containerDefinitions[1].stopTimeout must be an integer"},
      {withSecond({{"memory", 512.5}}), "containerDefinitions[1].memory must be an integer"},
      {withSecond({{"healthCheck", {"CMD", "true"}}}),
       "containerDefinitions[1].healthCheck must be an object"},
      {withSecond({{"dependsOn", {{"app", "START"}}}}),
       "containerDefinitions[1].dependsOn must be an array of objects"},
      {withSecond({{"portMappings", {80}}}),
       "containerDefinitions[1].portMappings must be an array of objects"},
      {withSecond({{"mountPoints", {{"sourceVolume", "v"}}}}),
       "containerDefinitions[1].mountPoints must be an array of objects"},
      {withSecond({{"volumesFrom", "app"}}),
       "containerDefinitions[1].volumesFrom must be an array of objects"},
      {withSecond({{"environment", {{{"name", "A"}, {"value", 1}}}}}),
       "containerDefinitions[1].environment[0].value must be a string"},
  });
}

TEST(TaskDefinition, NullMembersReadAsAbsent) {
  Json request = withContainer({{"command", nullptr}, {"healthCheck", nullptr}});
  request["volumes"] = nullptr;
  TaskDefinition td = parseOk(request);
  EXPECT_TRUE(td.containers[0].command.empty());
  EXPECT_FALSE(td.containers[0].healthCheck.has_value());
  EXPECT_FALSE(td.document["containerDefinitions"][0].contains("healthCheck"));
  EXPECT_EQ(td.document["volumes"], Json::array());
}

TEST(TaskDefinition, DependsOnFieldsAndTargets) {
  auto dependsOn = [](Json dependency) {
    return withSecond({{"dependsOn", Json::array({std::move(dependency)})}});
  };
  expectClientErrors({
      {dependsOn({{"condition", "START"}}),
       "containerDefinitions[1].dependsOn[0].containerName is required"},
      {dependsOn({{"containerName", "app"}}),
       "containerDefinitions[1].dependsOn[0].condition is required"},
      {dependsOn({{"containerName", "app"}, {"condition", "RUNNING"}}),
       "containerDefinitions[1].dependsOn[0].condition must be one of START, COMPLETE, SUCCESS, "
       "HEALTHY"},
      {dependsOn({{"containerName", "db"}, {"condition", "START"}}),
       "containerDefinitions[1].dependsOn[0].containerName 'db' is not a container of this task "
       "definition"},
      {dependsOn({{"containerName", "side"}, {"condition", "START"}}),
       "containerDefinitions[1].dependsOn[0].containerName: container 'side' cannot depend on "
       "itself"},
  });
}

TEST(TaskDefinition, DependencyConditionsNeedTheRightTarget) {
  auto dependsOn = [](const char* condition) {
    return withSecond({{"dependsOn", {{{"containerName", "app"}, {"condition", condition}}}}});
  };
  const char* essentialMessage =
      "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container";
  expectClientErrors({
      {dependsOn("SUCCESS"), essentialMessage},
      {dependsOn("COMPLETE"), essentialMessage},
      {dependsOn("HEALTHY"),
       "containerDefinitions[1].dependsOn[0]: container 'side' depends on 'app' being HEALTHY, "
       "but 'app' has no healthCheck"},
  });
  TaskDefinition td = parseOk(dependsOn("START"));
  ASSERT_EQ(td.containers[1].dependsOn.size(), 1u);
  EXPECT_EQ(td.containers[1].dependsOn[0].containerName, "app");
  EXPECT_EQ(td.containers[1].dependsOn[0].condition, DependencyCondition::kStart);
}

TEST(TaskDefinition, DependencyCyclesAreRejected) {
  Json twoCycle = withSecond({{"dependsOn", {{{"containerName", "app"}, {"condition", "START"}}}}});
  twoCycle["containerDefinitions"][0]["dependsOn"] = {
      {{"containerName", "side"}, {"condition", "START"}}};
  Json threeCycle = twoCycle;
  threeCycle["containerDefinitions"][1]["dependsOn"][0]["containerName"] = "third";
  threeCycle["containerDefinitions"].push_back(
      {{"name", "third"},
       {"image", "busybox"},
       {"dependsOn", {{{"containerName", "app"}, {"condition", "START"}}}}});
  Json viaVolumesFrom = withSecond({{"volumesFrom", {{{"sourceContainer", "app"}}}}});
  viaVolumesFrom["containerDefinitions"][0]["dependsOn"] = {
      {{"containerName", "side"}, {"condition", "START"}}};
  expectClientErrors({
      {twoCycle, "dependsOn has a cycle: app -> side -> app"},
      {threeCycle, "dependsOn has a cycle: app -> side -> third -> app"},
      {viaVolumesFrom, "dependsOn has a cycle: app -> side -> app"},
  });
  // A diamond is not a cycle.
  Json diamond = withSecond({{"dependsOn", {{{"containerName", "app"}, {"condition", "START"}}}}});
  diamond["containerDefinitions"].push_back(
      {{"name", "third"},
       {"image", "busybox"},
       {"dependsOn",
        {{{"containerName", "app"}, {"condition", "START"}},
         {{"containerName", "side"}, {"condition", "START"}}}}});
  parseOk(diamond);
}

TEST(TaskDefinition, LongDependencyChainIsNotACycle) {
  Json request = minimal();
  for (int i = 1; i < 2000; ++i) {
    request["containerDefinitions"].push_back(
        {{"name", "c" + std::to_string(i)},
         {"image", "busybox"},
         {"dependsOn",
          {{{"containerName", i == 1 ? "app" : "c" + std::to_string(i - 1)},
            {"condition", "START"}}}}});
  }
  EXPECT_EQ(parseOk(request).containers.size(), 2000u);
}

TEST(TaskDefinition, VolumesFromNeedsAnotherExistingContainer) {
  expectClientErrors({
      {withSecond({{"volumesFrom", {{{"readOnly", true}}}}}),
       "containerDefinitions[1].volumesFrom[0].sourceContainer is required"},
      {withSecond({{"volumesFrom", {{{"sourceContainer", "db"}}}}}),
       "containerDefinitions[1].volumesFrom[0].sourceContainer 'db' is not a container of this "
       "task definition"},
      {withSecond({{"volumesFrom", {{{"sourceContainer", "side"}}}}}),
       "containerDefinitions[1].volumesFrom[0].sourceContainer names the container itself"},
  });
  TaskDefinition td =
      parseOk(withSecond({{"volumesFrom", {{{"sourceContainer", "app"}, {"readOnly", true}}}}}));
  ASSERT_EQ(td.containers[1].volumesFrom.size(), 1u);
  EXPECT_EQ(td.containers[1].volumesFrom[0].sourceContainer, "app");
  EXPECT_TRUE(td.containers[1].volumesFrom[0].readOnly);
}

TEST(TaskDefinition, HealthCheckRules) {
  auto hc = [](Json members) {
    Json h = {{"command", {"CMD", "true"}}};
    h.update(members);
    return withContainer({{"healthCheck", h}});
  };
  const std::string p = "containerDefinitions[0].healthCheck.";
  expectClientErrors({
      {withContainer({{"healthCheck", Json::object()}}), p + "command is required"},
      {hc({{"command", Json::array()}}), p + "command is required"},
      {hc({{"command", "true"}}), p + "command must be an array of strings"},
      {hc({{"command", {"CMD-SHELL"}}}),
       p + "command with CMD-SHELL must have exactly one more element, the shell command"},
      {hc({{"command", {"CMD-SHELL", "curl", "-f"}}}),
       p + "command with CMD-SHELL must have exactly one more element, the shell command"},
      {hc({{"command", {"CMD"}}}), p + "command with CMD must name the program to run"},
      {hc({{"interval", 4}}), p + "interval must be between 5 and 300"},
      {hc({{"interval", 301}}), p + "interval must be between 5 and 300"},
      {hc({{"timeout", 1}}), p + "timeout must be between 2 and 60"},
      {hc({{"timeout", 61}}), p + "timeout must be between 2 and 60"},
      {hc({{"retries", 0}}), p + "retries must be between 1 and 10"},
      {hc({{"retries", 11}}), p + "retries must be between 1 and 10"},
      {hc({{"startPeriod", -1}}), p + "startPeriod must be between 0 and 300"},
      {hc({{"startPeriod", 301}}), p + "startPeriod must be between 0 and 300"},
      {hc({{"interval", 1e3}}), p + "interval must be an integer"},
      {hc({{"interval", 18446744073709551615ull}}), p + "interval must be between 5 and 300"},
  });
  TaskDefinition td = parseOk(hc({{"command", {"CMD-SHELL", "curl -f http://localhost/"}}}));
  const HealthCheck& h = *td.containers[0].healthCheck;
  EXPECT_EQ(h.command, (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost/"}));
  EXPECT_EQ(h.interval, 30);
  EXPECT_EQ(h.timeout, 5);
  EXPECT_EQ(h.retries, 3);
  EXPECT_EQ(h.startPeriod, 0);
  EXPECT_EQ(td.document["containerDefinitions"][0]["healthCheck"],
            Json::parse(R"({"command": ["CMD-SHELL", "curl -f http://localhost/"],
                            "interval": 30, "timeout": 5, "retries": 3})"));
  TaskDefinition bounds =
      parseOk(hc({{"interval", 5}, {"timeout", 60}, {"retries", 10}, {"startPeriod", 300}}));
  EXPECT_EQ(bounds.containers[0].healthCheck->startPeriod, 300);
  EXPECT_EQ(bounds.document["containerDefinitions"][0]["healthCheck"]["startPeriod"], 300);
}

TEST(TaskDefinition, VolumesAndMountPoints) {
  auto withVolumes = [](Json volumes, Json mountPoints) {
    Json r = withContainer({{"mountPoints", std::move(mountPoints)}});
    r["volumes"] = std::move(volumes);
    return r;
  };
  Json data = {{{"name", "data"}}};
  expectClientErrors({
      {withVolumes(Json::array(), {{{"sourceVolume", "data"}, {"containerPath", "/data"}}}),
       "containerDefinitions[0].mountPoints[0].sourceVolume 'data' does not name an entry of "
       "volumes[]"},
      {withVolumes(data, {{{"containerPath", "/data"}}}),
       "containerDefinitions[0].mountPoints[0].sourceVolume is required"},
      {withVolumes(data, {{{"sourceVolume", "data"}}}),
       "containerDefinitions[0].mountPoints[0].containerPath is required"},
      {withVolumes(data, {{{"sourceVolume", "data"}, {"containerPath", "data"}}}),
       "containerDefinitions[0].mountPoints[0].containerPath must be an absolute path"},
      {withVolumes({{{"name", "a b"}}}, Json::array()),
       "volumes[0].name must be 1-255 letters, digits, hyphens and underscores"},
      {withVolumes({{{"host", Json::object()}}}, Json::array()),
       "volumes[0].name must be 1-255 letters, digits, hyphens and underscores"},
      {withVolumes({{{"name", "data"}}, {{"name", "data"}}}, Json::array()),
       "volumes[1].name 'data' is not unique"},
      {withVolumes({{{"name", "data"}, {"host", {{"sourcePath", "srv/data"}}}}}, Json::array()),
       "volumes[0].host.sourcePath must be an absolute path"},
      {withVolumes({{{"name", "data"}, {"host", "/srv"}}}, Json::array()),
       "volumes[0].host must be an object"},
      {withVolumes("data", Json::array()), "volumes must be an array of objects"},
  });
  TaskDefinition td = parseOk(
      withVolumes({{{"name", "data"}, {"host", {{"sourcePath", "/srv/data"}}}}, {{"name", "tmp"}}},
                  {{{"sourceVolume", "data"}, {"containerPath", "/data"}, {"readOnly", true}}}));
  ASSERT_EQ(td.volumes.size(), 2u);
  EXPECT_EQ(td.volumes[0].name, "data");
  EXPECT_EQ(td.volumes[0].hostSourcePath, "/srv/data");
  EXPECT_EQ(td.volumes[1].hostSourcePath, "");
  ASSERT_EQ(td.containers[0].mountPoints.size(), 1u);
  EXPECT_EQ(td.containers[0].mountPoints[0].sourceVolume, "data");
  EXPECT_EQ(td.containers[0].mountPoints[0].containerPath, "/data");
  EXPECT_TRUE(td.containers[0].mountPoints[0].readOnly);
}

TEST(TaskDefinition, PortMappings) {
  auto ports = [](Json mapping) {
    return withContainer({{"portMappings", Json::array({std::move(mapping)})}});
  };
  const std::string p = "containerDefinitions[0].portMappings[0].";
  expectClientErrors({
      {ports({{"hostPort", 80}}), p + "containerPort is required"},
      {ports({{"containerPort", 0}}), p + "containerPort must be between 1 and 65535"},
      {ports({{"containerPort", 65536}}), p + "containerPort must be between 1 and 65535"},
      {ports({{"containerPort", "80"}}), p + "containerPort must be an integer"},
      {ports({{"containerPort", 80}, {"hostPort", 8080}}),
       "When networkMode=awsvpc, the host ports and container ports in port mappings must "
       "match."},
      {ports({{"containerPort", 80}, {"hostPort", -1}}),
       p + "hostPort must be between 0 and 65535"},
      {ports({{"containerPort", 80}, {"protocol", "sctp"}}), p + "protocol must be tcp or udp"},
      {ports({{"containerPort", 80}, {"protocol", "TCP"}}), p + "protocol must be tcp or udp"},
  });
  Json request =
      withContainer({{"portMappings",
                      {{{"containerPort", 80}},
                       {{"containerPort", 53}, {"hostPort", 0}, {"protocol", "udp"}},
                       {{"containerPort", 443}, {"hostPort", 443}, {"name", "https"}}}}});
  TaskDefinition td = parseOk(request);
  const std::vector<PortMapping>& m = td.containers[0].portMappings;
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].containerPort, 80);
  EXPECT_EQ(m[0].hostPort, 80);
  EXPECT_EQ(m[0].protocol, "tcp");
  EXPECT_EQ(m[1].hostPort, 53);
  EXPECT_EQ(m[1].protocol, "udp");
  EXPECT_EQ(td.document["containerDefinitions"][0]["portMappings"],
            Json::parse(R"([{"containerPort": 80, "hostPort": 80, "protocol": "tcp"},
                            {"containerPort": 53, "hostPort": 53, "protocol": "udp"},
                            {"containerPort": 443, "hostPort": 443, "protocol": "tcp",
                             "name": "https"}])"));
}

TEST(TaskDefinition, StartAndStopTimeouts) {
  const std::string p = "containerDefinitions[0].";
  expectClientErrors({
      {withContainer({{"startTimeout", 0}}), p + "startTimeout must be between 1 and 3600"},
      {withContainer({{"startTimeout", 3601}}), p + "startTimeout must be between 1 and 3600"},
      {withContainer({{"stopTimeout", 0}}), p + "stopTimeout must be between 1 and 600"},
      {withContainer({{"stopTimeout", 601}}), p + "stopTimeout must be between 1 and 600"},
  });
  TaskDefinition td = parseOk(withContainer({{"startTimeout", 3600}, {"stopTimeout", 600}}));
  EXPECT_EQ(td.containers[0].startTimeout, 3600);
  EXPECT_EQ(td.containers[0].stopTimeout, 600);
  TaskDefinition unset = parseOk(minimal());
  EXPECT_FALSE(unset.containers[0].startTimeout.has_value());
  EXPECT_FALSE(unset.containers[0].stopTimeout.has_value());
}

TEST(TaskDefinition, UserForms) {
  for (const char* user :
       {"", "0", "1000", "1000:1000", "app", "app:app", "app:1000", "1000:app", "4294967295"}) {
    SCOPED_TRACE(user);
    EXPECT_EQ(parseOk(withContainer({{"user", user}})).containers[0].user, user);
  }
  const std::string forms =
      "containerDefinitions[0].user must be user, user:group, uid, uid:gid, user:gid or "
      "uid:group";
  const std::string ids =
      "containerDefinitions[0].user: a uid or gid must be an integer from 0 to 4294967295";
  expectClientErrors({
      {withContainer({{"user", ":1000"}}), forms},
      {withContainer({{"user", "1000:"}}), forms},
      {withContainer({{"user", "a:b:c"}}), forms},
      {withContainer({{"user", "-1"}}), ids},
      {withContainer({{"user", "1000:-5"}}), ids},
      {withContainer({{"user", "4294967296"}}), ids},
      {withContainer({{"user", "99999999999999999999999"}}), ids},
  });
}

TEST(TaskDefinition, ProcessMembers) {
  expectClientErrors({
      {withContainer({{"workingDirectory", "srv"}}),
       "containerDefinitions[0].workingDirectory must be an absolute path"},
      {withContainer({{"environment", {{{"value", "x"}}}}}),
       "containerDefinitions[0].environment[0].name is required"},
      {withContainer({{"environment", {{{"name", ""}, {"value", "x"}}}}}),
       "containerDefinitions[0].environment[0].name is required"},
      {withContainer({{"environment", {{"A", "x"}}}}),
       "containerDefinitions[0].environment must be an array of objects"},
  });
  TaskDefinition td =
      parseOk(withContainer({{"entryPoint", {"/bin/sh", "-c"}},
                             {"command", {"echo hi"}},
                             {"environment", {{{"name", "A"}, {"value", "1"}}, {{"name", "B"}}}},
                             {"workingDirectory", "/srv"},
                             {"readonlyRootFilesystem", true}}));
  const ContainerDefinition& c = td.containers[0];
  EXPECT_EQ(c.entryPoint, (std::vector<std::string>{"/bin/sh", "-c"}));
  EXPECT_EQ(c.command, (std::vector<std::string>{"echo hi"}));
  ASSERT_EQ(c.environment.size(), 2u);
  EXPECT_EQ(c.environment[0].name, "A");
  EXPECT_EQ(c.environment[0].value, "1");
  EXPECT_EQ(c.environment[1].value, "");
  EXPECT_EQ(c.workingDirectory, "/srv");
  EXPECT_TRUE(c.readonlyRootFilesystem);
}

TEST(TaskDefinition, OnlyAwsvpcNetworkMode) {
  Json bridge = minimal();
  bridge["networkMode"] = "bridge";
  Json numeric = minimal();
  numeric["networkMode"] = 1;
  expectClientErrors({
      {bridge, "networkMode 'bridge' is not supported by this runtime; only awsvpc is"},
      {numeric, "networkMode must be a string"},
  });
  TaskDefinition td = parseOk(minimal());
  EXPECT_EQ(td.networkMode, "awsvpc");
  EXPECT_EQ(td.document["networkMode"], "awsvpc");
}

TEST(TaskDefinition, TaskCpuAndMemoryAreNormalized) {
  struct Size {
    const char* cpu;
    const char* memory;
    const char* wantCpu;
    const char* wantMemory;
  };
  for (const Size& s :
       {Size{"1024", "512", "1024", "512"}, Size{"1 vCPU", "1GB", "1024", "1024"},
        Size{"1 vcpu", "1 GB", "1024", "1024"}, Size{"0.25 vCPU", "0.5GB", "256", "512"},
        Size{"2vCPU", "16 gb", "2048", "16384"}}) {
    SCOPED_TRACE(s.cpu);
    Json request = minimal();
    request["cpu"] = s.cpu;
    request["memory"] = s.memory;
    TaskDefinition td = parseOk(request);
    EXPECT_EQ(td.cpu, s.wantCpu);
    EXPECT_EQ(td.memory, s.wantMemory);
    EXPECT_EQ(td.document["cpu"], s.wantCpu);
    EXPECT_EQ(td.document["memory"], s.wantMemory);
  }
  auto task = [](const char* key, Json value) {
    Json r = minimal();
    r[key] = std::move(value);
    return r;
  };
  const std::string cpu = "cpu must be CPU units (\"1024\") or vCPUs (\"1 vCPU\"), got ";
  const std::string memory = "memory must be MiB (\"512\") or GB (\"1 GB\"), got ";
  expectClientErrors({
      {task("cpu", "1 CPU"), cpu + "'1 CPU'"},
      {task("cpu", "0.3 vCPU"), cpu + "'0.3 vCPU'"},
      {task("cpu", "0"), cpu + "'0'"},
      {task("cpu", ""), cpu + "''"},
      {task("cpu", "1.5"), cpu + "'1.5'"},
      {task("cpu", "99999999999"), cpu + "'99999999999'"},
      {task("cpu", 1024), "cpu must be a string"},
      {task("memory", "1 MB"), memory + "'1 MB'"},
      {task("memory", "-512"), memory + "'-512'"},
      {task("memory", " 512"), memory + "' 512'"},
      {task("memory", "1\xff"), memory + "'1?'"},
  });
  TaskDefinition unset = parseOk(minimal());
  EXPECT_EQ(unset.cpu, "");
  EXPECT_FALSE(unset.document.contains("cpu"));
  EXPECT_FALSE(unset.document.contains("memory"));
}

TEST(TaskDefinition, ContainerResources) {
  const std::string p = "containerDefinitions[0].";
  expectClientErrors({
      {withContainer({{"cpu", -1}}), p + "cpu must be between 0 and 2147483647"},
      {withContainer({{"memory", 2147483648}}), p + "memory must be between 0 and 2147483647"},
      {withContainer({{"memoryReservation", "128"}}), p + "memoryReservation must be an integer"},
      {withContainer({{"memory", 128}, {"memoryReservation", 128}}),
       p + "memory must be greater than memoryReservation"},
  });
  TaskDefinition td =
      parseOk(withContainer({{"cpu", 256}, {"memory", 512}, {"memoryReservation", 256}}));
  EXPECT_EQ(td.containers[0].cpu, 256);
  EXPECT_EQ(td.containers[0].memory, 512);
  EXPECT_EQ(td.containers[0].memoryReservation, 256);
  TaskDefinition unset = parseOk(minimal());
  EXPECT_EQ(unset.containers[0].cpu, 0);
  EXPECT_FALSE(unset.containers[0].memory.has_value());
  EXPECT_EQ(unset.document["containerDefinitions"][0]["cpu"], 0);
}

TEST(TaskDefinition, Tags) {
  auto tagged = [](Json tags) {
    Json r = minimal();
    r["tags"] = std::move(tags);
    return r;
  };
  Json many = Json::array();
  for (int i = 0; i < 51; ++i) many.push_back({{"key", "k" + std::to_string(i)}, {"value", "v"}});
  expectClientErrors({
      {tagged(many), "tags must have at most 50 entries"},
      {tagged({{{"value", "v"}}}), "tags[0].key must be 1-128 characters"},
      {tagged({{{"key", std::string(129, 'k')}}}), "tags[0].key must be 1-128 characters"},
      {tagged({{{"key", "k"}, {"value", std::string(257, 'v')}}}),
       "tags[0].value must be at most 256 characters"},
      {tagged({{{"key", "aws:owner"}, {"value", "me"}}}),
       "tags[0].key must not start with aws: (reserved for AWS use)"},
      {tagged({{{"key", 1}}}), "tags[0].key must be a string"},
      {tagged({{"k", "v"}}), "tags must be an array of objects"},
  });
  many.erase(50);
  EXPECT_EQ(parseOk(tagged(many)).tags.size(), 50u);
  TaskDefinition td = parseOk(tagged({{{"key", "team"}, {"value", "mesh"}}, {{"key", "empty"}}}));
  EXPECT_EQ(td.tags, Json::parse(R"([{"key": "team", "value": "mesh"},
                                     {"key": "empty", "value": ""}])"));
  EXPECT_FALSE(td.document.contains("tags"));
}

TEST(TaskDefinition, DocumentKeepsUnknownMembersAndDropsRegistryMembers) {
  Json request = withContainer(
      {{"logConfiguration", {{"logDriver", "awslogs"}}}, {"dockerLabels", {{"a", "b"}}}});
  request["pidMode"] = "task";
  request["revision"] = 9;
  request["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:1:task-definition/web:9";
  request["status"] = "INACTIVE";
  TaskDefinition td = parseOk(request);
  const Json& doc = td.document;
  EXPECT_EQ(doc["pidMode"], "task");
  EXPECT_EQ(doc["containerDefinitions"][0]["logConfiguration"]["logDriver"], "awslogs");
  EXPECT_EQ(doc["containerDefinitions"][0]["dockerLabels"]["a"], "b");
  EXPECT_FALSE(doc.contains("revision"));
  EXPECT_FALSE(doc.contains("taskDefinitionArn"));
  EXPECT_FALSE(doc.contains("status"));
  EXPECT_FALSE(doc.contains("requiresCompatibilities"));
  EXPECT_EQ(doc["compatibilities"], Json::array({"EC2", "FARGATE"}));
  EXPECT_EQ(td.revision, 0);

  Json fargate = minimal();
  fargate["requiresCompatibilities"] = {"FARGATE"};
  EXPECT_EQ(parseOk(fargate).document["requiresCompatibilities"], Json::array({"FARGATE"}));
  fargate["requiresCompatibilities"] = "FARGATE";
  expectClientErrors({{fargate, "requiresCompatibilities must be an array of strings"}});
}

TEST(TaskDefinition, MinimalDocumentMatchesEcsDefaults) {
  TaskDefinition td = parseOk(minimal());
  EXPECT_EQ(td.document, Json::parse(R"({
    "family": "web", "networkMode": "awsvpc", "volumes": [],
    "compatibilities": ["EC2", "FARGATE"],
    "containerDefinitions": [{"name": "app", "image": "nginx", "essential": true, "cpu": 0,
      "environment": [], "mountPoints": [], "portMappings": [], "volumesFrom": []}]})"));
}

TEST(TaskDefinition, NamesOfConditionsAndContainers) {
  EXPECT_STREQ(conditionName(DependencyCondition::kStart), "START");
  EXPECT_STREQ(conditionName(DependencyCondition::kComplete), "COMPLETE");
  EXPECT_STREQ(conditionName(DependencyCondition::kSuccess), "SUCCESS");
  EXPECT_STREQ(conditionName(DependencyCondition::kHealthy), "HEALTHY");
  TaskDefinition td = parseOk(withSecond(Json::object()));
  ASSERT_NE(td.container("side"), nullptr);
  EXPECT_EQ(td.container("side")->image, "busybox");
  EXPECT_EQ(td.container("nope"), nullptr);
}

// The shape the consul-ecs mesh-task Terraform module registers: mesh-init runs once
// (non-essential, SUCCESS), the dataplane has a net-dial health check without a CMD prefix, the
// app waits for the dataplane to be HEALTHY, and both share a volume.
Json meshTask() {
  return Json::parse(R"({
    "family": "web-mesh",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "0.5 vCPU",
    "memory": "1 GB",
    "volumes": [{"name": "consul_data"}],
    "tags": [{"key": "consul.hashicorp.com/mesh", "value": "true"}],
    "containerDefinitions": [
      {"name": "consul-ecs-mesh-init", "image": "hashicorp/consul-ecs:0.7.0",
       "essential": false, "command": ["mesh-init"], "user": "5995",
       "mountPoints": [{"sourceVolume": "consul_data", "containerPath": "/consul"}],
       "environment": [{"name": "CONSUL_ECS_CONFIG_JSON", "value": "{}"}]},
      {"name": "consul-dataplane", "image": "hashicorp/consul-dataplane:1.1.0",
       "dependsOn": [{"containerName": "consul-ecs-mesh-init", "condition": "SUCCESS"}],
       "entryPoint": ["/consul/consul-ecs", "envoy-entrypoint"],
       "command": ["consul-dataplane", "-config-file", "/consul/dataplane.json"],
       "healthCheck": {"command": ["/consul/consul-ecs", "net-dial", "127.0.0.1:20000"],
                       "interval": 5, "retries": 10, "timeout": 5},
       "mountPoints": [{"sourceVolume": "consul_data", "containerPath": "/consul",
                        "readOnly": true}],
       "portMappings": [{"containerPort": 20000}], "stopTimeout": 30},
      {"name": "web", "image": "ghcr.io/example/web:1.0",
       "dependsOn": [{"containerName": "consul-dataplane", "condition": "HEALTHY"}],
       "portMappings": [{"containerPort": 9090, "hostPort": 9090, "protocol": "tcp"}],
       "cpu": 128, "memory": 256, "memoryReservation": 128, "startTimeout": 120,
       "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "web"}}}
    ]})");
}

TEST(TaskDefinition, ConsulMeshTaskParses) {
  TaskDefinition td = parseOk(meshTask());
  EXPECT_EQ(td.family, "web-mesh");
  EXPECT_EQ(td.networkMode, "awsvpc");
  EXPECT_EQ(td.cpu, "512");
  EXPECT_EQ(td.memory, "1024");
  EXPECT_EQ(td.status, "ACTIVE");
  EXPECT_EQ(td.tags, Json::parse(R"([{"key": "consul.hashicorp.com/mesh", "value": "true"}])"));
  ASSERT_EQ(td.volumes.size(), 1u);
  EXPECT_EQ(td.volumes[0].name, "consul_data");
  EXPECT_EQ(td.volumes[0].hostSourcePath, "");
  ASSERT_EQ(td.containers.size(), 3u);

  const ContainerDefinition& init = td.containers[0];
  EXPECT_FALSE(init.essential);
  EXPECT_EQ(init.user, "5995");
  EXPECT_EQ(init.command, (std::vector<std::string>{"mesh-init"}));
  ASSERT_EQ(init.mountPoints.size(), 1u);
  EXPECT_FALSE(init.mountPoints[0].readOnly);
  ASSERT_EQ(init.environment.size(), 1u);
  EXPECT_EQ(init.environment[0].name, "CONSUL_ECS_CONFIG_JSON");

  const ContainerDefinition& proxy = *td.container("consul-dataplane");
  EXPECT_TRUE(proxy.essential);
  ASSERT_EQ(proxy.dependsOn.size(), 1u);
  EXPECT_EQ(proxy.dependsOn[0].containerName, "consul-ecs-mesh-init");
  EXPECT_EQ(proxy.dependsOn[0].condition, DependencyCondition::kSuccess);
  ASSERT_TRUE(proxy.healthCheck.has_value());
  EXPECT_EQ(proxy.healthCheck->command,
            (std::vector<std::string>{"/consul/consul-ecs", "net-dial", "127.0.0.1:20000"}));
  EXPECT_EQ(proxy.healthCheck->interval, 5);
  EXPECT_EQ(proxy.healthCheck->timeout, 5);
  EXPECT_EQ(proxy.healthCheck->retries, 10);
  EXPECT_EQ(proxy.healthCheck->startPeriod, 0);
  EXPECT_TRUE(proxy.mountPoints[0].readOnly);
  EXPECT_EQ(proxy.stopTimeout, 30);
  ASSERT_EQ(proxy.portMappings.size(), 1u);
  EXPECT_EQ(proxy.portMappings[0].hostPort, 20000);

  const ContainerDefinition& web = *td.container("web");
  EXPECT_EQ(web.dependsOn[0].condition, DependencyCondition::kHealthy);
  EXPECT_EQ(web.startTimeout, 120);
  EXPECT_EQ(web.cpu, 128);
  EXPECT_EQ(web.memory, 256);
  EXPECT_EQ(web.memoryReservation, 128);
  EXPECT_FALSE(web.healthCheck.has_value());
}

TEST(TaskDefinition, ConsulMeshTaskDocumentHasEcsDefaults) {
  Json doc = parseOk(meshTask()).document;
  EXPECT_EQ(doc["networkMode"], "awsvpc");
  EXPECT_EQ(doc["cpu"], "512");
  EXPECT_EQ(doc["memory"], "1024");
  EXPECT_EQ(doc["requiresCompatibilities"], Json::array({"FARGATE"}));
  EXPECT_EQ(doc["compatibilities"], Json::array({"EC2", "FARGATE"}));
  EXPECT_EQ(doc["volumes"], Json::parse(R"([{"name": "consul_data"}])"));
  EXPECT_FALSE(doc.contains("tags"));

  const Json& init = doc["containerDefinitions"][0];
  EXPECT_EQ(init["essential"], false);
  EXPECT_EQ(init["cpu"], 0);
  EXPECT_EQ(init["portMappings"], Json::array());
  EXPECT_EQ(init["volumesFrom"], Json::array());
  EXPECT_FALSE(init.contains("healthCheck"));

  const Json& proxy = doc["containerDefinitions"][1];
  EXPECT_EQ(proxy["essential"], true);
  EXPECT_EQ(proxy["environment"], Json::array());
  EXPECT_EQ(proxy["healthCheck"], Json::parse(R"({
      "command": ["/consul/consul-ecs", "net-dial", "127.0.0.1:20000"],
      "interval": 5, "retries": 10, "timeout": 5})"));
  EXPECT_EQ(proxy["portMappings"],
            Json::parse(R"([{"containerPort": 20000, "hostPort": 20000, "protocol": "tcp"}])"));

  const Json& web = doc["containerDefinitions"][2];
  EXPECT_EQ(web["essential"], true);
  EXPECT_EQ(web["cpu"], 128);
  EXPECT_EQ(web["mountPoints"], Json::array());
  EXPECT_EQ(web["logConfiguration"]["options"]["awslogs-group"], "web");
}

}  // namespace
}  // namespace taskmesh::ecs
