// Read-only views of a task served by EcsApi on GET (contract in ecs_api.h): the task
// metadata endpoint v4 (shared/reference/ecs.md §6) that consul-ecs style sidecars read, the
// timeline and the container logs.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "runtime/ecs_api.h"
#include "runtime/ecs_json.h"
#include "runtime/task_runner.h"

namespace taskmesh::runtime {
namespace {

using nlohmann::json;

constexpr size_t kMaxLogBytes = 1 << 20;  // the tail served by /logs

// RFC 3339 with nanosecond digits, UTC, as the agent writes times ("2024-01-01T00:00:00.1Z").
std::string rfc3339(double t) {
  auto secs = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  int ms = static_cast<int>((t - static_cast<double>(secs)) * 1000.0 + 0.5);
  if (ms > 999) ms = 999;
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03d000000Z", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string taskKnownStatus(const TaskRecord& t) {
  if (t.lastStatus == "PROVISIONING") return "NONE";
  if (t.lastStatus == "PENDING") return "CREATED";
  if (t.lastStatus == "DEPROVISIONING" || t.lastStatus == "STOPPED") return "STOPPED";
  return "RUNNING";
}

std::string containerKnownStatus(const ContainerRecord& c) {
  if (c.lastStatus == "PENDING") return c.createdAt > 0 ? "CREATED" : "NONE";
  return c.lastStatus;
}

json containerMetadata(Registry& registry, const TaskRecord& t, const ContainerRecord& c,
                       const json& doc) {
  json labels = {{"com.amazonaws.ecs.cluster", t.cluster},
                 {"com.amazonaws.ecs.container-name", c.name},
                 {"com.amazonaws.ecs.task-arn", registry.arns().task(t.cluster, t.id)},
                 {"com.amazonaws.ecs.task-definition-family", t.family},
                 {"com.amazonaws.ecs.task-definition-version", std::to_string(t.revision)}};
  json j = {
      {"DockerId", c.runtimeId},
      {"Name", c.name},
      {"DockerName", "ecs-" + t.family + "-" + std::to_string(t.revision) + "-" + c.name},
      {"Image", doc.value("image", "host")},
      {"ImageID", ""},
      {"Labels", labels},
      {"DesiredStatus", c.desiredStatus},
      {"KnownStatus", containerKnownStatus(c)},
      {"Limits", {{"CPU", std::max(2, doc.value("cpu", 0))}, {"Memory", doc.value("memory", 0)}}},
      {"Type", "NORMAL"},
      {"ContainerARN", registry.arns().container(t.cluster, t.id, c.uuid)}};
  if (c.exitCode) j["ExitCode"] = *c.exitCode;
  if (c.createdAt > 0) j["CreatedAt"] = rfc3339(c.createdAt);
  if (c.startedAt > 0) j["StartedAt"] = rfc3339(c.startedAt);
  if (c.finishedAt > 0) j["FinishedAt"] = rfc3339(c.finishedAt);
  if (!t.ipv4.empty()) {
    auto slash = t.subnetCidr.find('/');
    std::string prefix = slash == std::string::npos ? "" : t.subnetCidr.substr(slash);
    j["Networks"] = json::array({{{"NetworkMode", "awsvpc"},
                                  {"IPv4Addresses", json::array({t.ipv4})},
                                  {"AttachmentIndex", 0},
                                  {"MACAddress", t.macAddress},
                                  {"IPv4SubnetCIDRBlock", t.subnetCidr},
                                  {"PrivateDNSName", ipHostLabel(t.ipv4) + ".ec2.internal"},
                                  {"SubnetGatewayIpv4Address", t.gateway + prefix}}});
  }
  json ports = json::array();
  for (const auto& pm : doc.value("portMappings", json::array())) {
    ports.push_back({{"ContainerPort", pm.value("containerPort", 0)},
                     {"Protocol", pm.value("protocol", "tcp")},
                     {"HostPort", pm.value("hostPort", 0)},
                     {"HostIp", t.ipv4}});
  }
  if (!ports.empty()) j["Ports"] = ports;
  if (c.hasHealthCheck) {
    json h = {{"status", c.healthStatus}};
    if (c.healthSince > 0) h["statusSince"] = rfc3339(c.healthSince);
    if (c.healthExitCode) h["exitCode"] = *c.healthExitCode;
    if (!c.healthOutput.empty()) h["output"] = c.healthOutput;
    j["Health"] = h;
  }
  return j;
}

json taskMetadata(Registry& registry, const TaskRecord& t, bool withTags) {
  json j = {{"Cluster", t.cluster},
            {"TaskARN", registry.arns().task(t.cluster, t.id)},
            {"Family", t.family},
            {"Revision", std::to_string(t.revision)},
            {"DesiredStatus", t.desiredStatus},
            {"KnownStatus", taskKnownStatus(t)},
            {"AvailabilityZone", registry.arns().region + "a"},
            {"LaunchType", t.launchType},
            {"FaultInjectionEnabled", false},
            {"Containers", json::array()}};
  if (t.pullStartedAt > 0) j["PullStartedAt"] = rfc3339(t.pullStartedAt);
  if (t.pullStoppedAt > 0) j["PullStoppedAt"] = rfc3339(t.pullStoppedAt);
  if (t.executionStoppedAt > 0) j["ExecutionStoppedAt"] = rfc3339(t.executionStoppedAt);
  if (!t.serviceName.empty()) j["ServiceName"] = t.serviceName;
  for (const auto& c : t.containers) {
    j["Containers"].push_back(
        containerMetadata(registry, t, c, containerDocument(registry, t, c.name)));
  }
  if (withTags) {
    json tags = json::object();
    for (const auto& tag : t.tags) tags[tag.value("key", "")] = tag.value("value", "");
    j["TaskTags"] = tags;
  }
  return j;
}

json statsOf(const ContainerRecord& c) {
  return {{"read", rfc3339(nowSeconds())},
          {"name", "/" + c.runtimeId},
          {"id", c.runtimeId},
          {"num_procs", 0},
          {"pids_stats", json::object()},
          {"cpu_stats", json::object()},
          {"memory_stats", json::object()},
          {"networks", json::object()}};
}

net::HttpResponse notFound(const std::string& what) {
  return net::HttpResponse::json(dumpJson(json("V4 task metadata handler: " + what)), 404);
}

net::HttpResponse metadata(Registry& registry, const std::string& rest) {
  auto slash = rest.find('/');
  std::string id = rest.substr(0, slash);
  std::string sub = slash == std::string::npos ? "" : rest.substr(slash);
  auto* t = id.size() > 32 ? registry.task(id.substr(0, 32)) : nullptr;
  const ContainerRecord* c = nullptr;
  if (t) {
    for (const auto& x : t->containers) {
      if (x.metadataId == id) c = &x;
    }
  }
  if (!c) return notFound("unable to find container for endpoint " + id);
  if (sub.empty() || sub == "/") {
    return net::HttpResponse::json(
        dumpJson(containerMetadata(registry, *t, *c, containerDocument(registry, *t, c->name))));
  }
  if (sub == "/task") return net::HttpResponse::json(dumpJson(taskMetadata(registry, *t, false)));
  if (sub == "/taskWithTags")
    return net::HttpResponse::json(dumpJson(taskMetadata(registry, *t, true)));
  if (sub == "/stats") return net::HttpResponse::json(dumpJson(statsOf(*c)));
  if (sub == "/task/stats") {
    json all = json::object();
    for (const auto& x : t->containers) all[x.runtimeId] = statsOf(x);
    return net::HttpResponse::json(dumpJson(all));
  }
  return notFound("unknown path " + sub);
}

net::HttpResponse timeline(Registry& registry, const TaskRecord& t) {
  json events = json::array();
  for (const auto& e : t.timeline) {
    events.push_back(
        {{"at", e.at}, {"subject", e.subject}, {"event", e.event}, {"detail", e.detail}});
  }
  return net::HttpResponse::json(dumpJson(json{{"taskArn", registry.arns().task(t.cluster, t.id)},
                                               {"lastStatus", t.lastStatus},
                                               {"events", events}}));
}

net::HttpResponse logs(const std::string& tasksDir, const TaskRecord& t, const std::string& name) {
  if (!t.container(name)) {
    return net::HttpResponse::text(404, "task " + t.id + " has no container named " + name);
  }
  std::ifstream in(TaskRunner::logPath(tasksDir, t.id, name), std::ios::binary | std::ios::ate);
  if (!in) return net::HttpResponse::text(200, "");  // the container has not written anything
  auto size = static_cast<size_t>(in.tellg());
  size_t from = size > kMaxLogBytes ? size - kMaxLogBytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string text(size - from, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  auto r = net::HttpResponse::text(200, "");
  r.body = std::move(text);  // logs are bytes; served as they were written
  return r;
}

}  // namespace

net::HttpResponse EcsApi::handleInternal(const net::HttpRequest& request) {
  auto& registry = runtime_.registry();
  const std::string& path = request.path;
  if (path.rfind("/v4/", 0) == 0) return metadata(registry, path.substr(4));
  const std::string prefix = "/taskmesh/v1/tasks/";
  if (path.rfind(prefix, 0) == 0) {
    std::string rest = path.substr(prefix.size());
    auto slash = rest.find('/');
    auto* t = registry.task(rest.substr(0, slash));
    if (!t) return net::HttpResponse::text(404, "no task " + rest.substr(0, slash));
    std::string sub = slash == std::string::npos ? "" : rest.substr(slash);
    if (sub == "/timeline") return timeline(registry, *t);
    if (sub.rfind("/logs/", 0) == 0) {
      return logs(runtime_.tasksDir(), *t, sub.substr(6));
    }
  }
  return net::HttpResponse::text(404, "not found: GET " + path);
}

}  // namespace taskmesh::runtime
