#include "runtime/ecs_json.h"

#include <algorithm>

namespace taskmesh::runtime {
namespace {

using nlohmann::json;

void putTime(json& j, const char* key, double t) {
  if (t > 0) j[key] = t;
}

json containerJson(Registry& registry, const TaskRecord& t, const ContainerRecord& c) {
  const auto& arns = registry.arns();
  json doc = containerDocument(registry, t, c.name);
  json j = {{"containerArn", arns.container(t.cluster, t.id, c.uuid)},
            {"taskArn", arns.task(t.cluster, t.id)},
            {"name", c.name},
            {"image", doc.value("image", "host")},
            {"runtimeId", c.runtimeId},
            {"lastStatus", c.lastStatus},
            {"healthStatus", c.healthStatus},
            {"networkBindings", json::array()},
            {"networkInterfaces", json::array()},
            {"cpu", std::to_string(doc.value("cpu", 0))}};
  if (doc.contains("memory") && doc["memory"].is_number_integer()) {
    j["memory"] = std::to_string(doc["memory"].get<int>());
  }
  if (doc.contains("memoryReservation") && doc["memoryReservation"].is_number_integer()) {
    j["memoryReservation"] = std::to_string(doc["memoryReservation"].get<int>());
  }
  if (!t.ipv4.empty()) {
    j["networkInterfaces"].push_back(
        {{"attachmentId", t.attachmentId}, {"privateIpv4Address", t.ipv4}});
  }
  if (c.exitCode) j["exitCode"] = *c.exitCode;
  if (!c.reason.empty()) j["reason"] = c.reason;
  for (const auto& pm : doc.value("portMappings", json::array())) {
    if (!pm.is_object() || t.ipv4.empty()) continue;
    j["networkBindings"].push_back({{"bindIP", t.ipv4},
                                    {"containerPort", pm.value("containerPort", 0)},
                                    {"hostPort", pm.value("hostPort", 0)},
                                    {"protocol", pm.value("protocol", "tcp")}});
  }
  return j;
}

json attachmentJson(const TaskRecord& t) {
  json details = json::array();
  auto add = [&](const char* name, const std::string& value) {
    if (!value.empty()) details.push_back({{"name", name}, {"value", value}});
  };
  add("subnetId", t.subnetId);
  add("networkInterfaceId", "eni-" + t.attachmentId.substr(0, 17));
  add("macAddress", t.macAddress);
  if (!t.ipv4.empty()) add("privateDnsName", ipHostLabel(t.ipv4) + ".ec2.internal");
  add("privateIPv4Address", t.ipv4);
  return {{"id", t.attachmentId},
          {"type", "ElasticNetworkInterface"},
          {"status", t.attachmentStatus},
          {"details", details}};
}

json overridesJson(const TaskRecord& t) {
  json o = t.overrides.is_object() ? t.overrides : json::object();
  if (!o.contains("containerOverrides")) o["containerOverrides"] = json::array();
  if (!o.contains("inferenceAcceleratorOverrides")) {
    o["inferenceAcceleratorOverrides"] = json::array();
  }
  return o;
}

}  // namespace

// The task definition's container document (for image, cpu, memory), or an empty object.
json containerDocument(Registry& registry, const TaskRecord& t, const std::string& name) {
  auto* def = registry.taskDefinition(t.family + ":" + std::to_string(t.revision));
  if (!def) return json::object();
  for (const auto& c : def->document.value("containerDefinitions", json::array())) {
    if (c.is_object() && c.value("name", "") == name) return c;
  }
  return json::object();
}

json clusterJson(Registry& registry, const ClusterRecord& c) {
  int running = 0, pending = 0, services = 0;
  for (const auto& [_, t] : registry.tasks()) {
    if (t.cluster != c.name) continue;
    if (t.lastStatus == "RUNNING") ++running;
    if (t.lastStatus == "PROVISIONING" || t.lastStatus == "PENDING") ++pending;
  }
  for (const auto& [_, s] : registry.services()) {
    if (s.cluster == c.name && s.status == "ACTIVE") ++services;
  }
  return {{"clusterArn", registry.arns().cluster(c.name)},
          {"clusterName", c.name},
          {"status", c.status},
          {"registeredContainerInstancesCount", 0},
          {"runningTasksCount", running},
          {"pendingTasksCount", pending},
          {"activeServicesCount", services},
          {"statistics", json::array()},
          {"tags", json::array()},
          {"settings", json::array({{{"name", "containerInsights"}, {"value", "disabled"}}})},
          {"capacityProviders", json::array()},
          {"defaultCapacityProviderStrategy", json::array()}};
}

json taskDefinitionJson(const Registry& registry, const TaskDefinitionRecord& d) {
  json j = d.document;
  j["taskDefinitionArn"] = registry.arns().taskDefinition(d.family, d.revision);
  j["family"] = d.family;
  j["revision"] = d.revision;
  j["status"] = d.status;
  j["registeredAt"] = d.registeredAt;
  j["registeredBy"] = "arn:aws:iam::" + registry.arns().accountId + ":root";
  if (d.deregisteredAt > 0) j["deregisteredAt"] = d.deregisteredAt;
  if (!j.contains("requiresAttributes")) j["requiresAttributes"] = json::array();
  return j;
}

json taskJson(Registry& registry, const TaskRecord& t, bool includeTags) {
  const auto& arns = registry.arns();
  json j = {{"taskArn", arns.task(t.cluster, t.id)},
            {"clusterArn", arns.cluster(t.cluster)},
            {"taskDefinitionArn", arns.taskDefinition(t.family, t.revision)},
            {"group", t.group},
            {"version", t.version},
            {"lastStatus", t.lastStatus},
            {"desiredStatus", t.desiredStatus},
            {"healthStatus", t.healthStatus},
            {"launchType", t.launchType},
            {"availabilityZone", arns.region + "a"},
            {"connectivity", "CONNECTED"},
            {"enableExecuteCommand", false},
            {"attachments", json::array({attachmentJson(t)})},
            {"attributes", json::array({{{"name", "ecs.cpu-architecture"}, {"value", "x86_64"}}})},
            {"overrides", overridesJson(t)},
            {"containers", json::array()}};
  if (!t.startedBy.empty()) j["startedBy"] = t.startedBy;
  if (!t.stopCode.empty()) j["stopCode"] = t.stopCode;
  if (!t.stoppedReason.empty()) j["stoppedReason"] = t.stoppedReason;
  if (auto* def = registry.taskDefinition(t.family + ":" + std::to_string(t.revision))) {
    if (def->document.contains("cpu")) j["cpu"] = def->document["cpu"];
    if (def->document.contains("memory")) j["memory"] = def->document["memory"];
  }
  putTime(j, "createdAt", t.createdAt);
  putTime(j, "pullStartedAt", t.pullStartedAt);
  putTime(j, "pullStoppedAt", t.pullStoppedAt);
  putTime(j, "startedAt", t.startedAt);
  putTime(j, "connectivityAt", t.connectivityAt);
  putTime(j, "stoppingAt", t.stoppingAt);
  putTime(j, "executionStoppedAt", t.executionStoppedAt);
  putTime(j, "stoppedAt", t.stoppedAt);
  for (const auto& c : t.containers) j["containers"].push_back(containerJson(registry, t, c));
  if (includeTags) j["tags"] = t.tags;
  return j;
}

json serviceJson(Registry& registry, const ServiceRecord& s, bool includeTags) {
  const auto& arns = registry.arns();
  auto counts = [&](const std::string& deployment, const char* status) {
    int n = 0;
    for (const auto& [_, t] : registry.tasks()) {
      if (t.cluster != s.cluster || t.serviceName != s.name || t.stopped()) continue;
      if (!deployment.empty() && t.startedBy != deployment) continue;
      bool pending = t.lastStatus == "PROVISIONING" || t.lastStatus == "PENDING";
      if ((std::string(status) == "RUNNING" && t.lastStatus == "RUNNING") ||
          (std::string(status) == "PENDING" && pending)) {
        ++n;
      }
    }
    return n;
  };
  json deployments = json::array();
  for (size_t i = 0; i < s.deployments.size(); ++i) {
    const auto& d = s.deployments[i];
    deployments.push_back({{"id", d.id},
                           {"status", i == 0 ? "PRIMARY" : "ACTIVE"},
                           {"taskDefinition", arns.taskDefinition(d.family, d.revision)},
                           {"desiredCount", i == 0 ? s.desiredCount : 0},
                           {"pendingCount", counts(d.id, "PENDING")},
                           {"runningCount", counts(d.id, "RUNNING")},
                           {"failedTasks", d.failedTasks},
                           {"createdAt", d.createdAt},
                           {"updatedAt", d.updatedAt},
                           {"launchType", s.launchType},
                           {"networkConfiguration", s.networkConfiguration},
                           {"rolloutState", d.rolloutState},
                           {"rolloutStateReason", d.rolloutStateReason}});
  }
  json events = json::array();
  for (const auto& e : s.events) {
    events.push_back({{"id", e.id}, {"createdAt", e.createdAt}, {"message", e.message}});
  }
  json j = {{"serviceArn", arns.service(s.cluster, s.name)},
            {"serviceName", s.name},
            {"clusterArn", arns.cluster(s.cluster)},
            {"status", s.status},
            {"desiredCount", s.desiredCount},
            {"runningCount", counts("", "RUNNING")},
            {"pendingCount", counts("", "PENDING")},
            {"launchType", s.launchType},
            {"taskDefinition", arns.taskDefinition(s.family, s.revision)},
            {"deploymentConfiguration",
             {{"deploymentCircuitBreaker", {{"enable", false}, {"rollback", false}}},
              {"maximumPercent", s.maximumPercent},
              {"minimumHealthyPercent", s.minimumHealthyPercent}}},
            {"deployments", deployments},
            {"events", events},
            {"createdAt", s.createdAt},
            {"placementConstraints", json::array()},
            {"placementStrategy", json::array()},
            {"networkConfiguration", s.networkConfiguration},
            {"schedulingStrategy", "REPLICA"},
            {"deploymentController", {{"type", "ECS"}}},
            {"enableECSManagedTags", false},
            {"propagateTags", s.propagateTags},
            {"enableExecuteCommand", false},
            {"loadBalancers", json::array()},
            {"serviceRegistries", json::array()}};
  if (includeTags) j["tags"] = s.tags;
  return j;
}

}  // namespace taskmesh::runtime
