// ECS API operations on tasks and services (contract in ecs_api.h / ecs_operations.h).
#include <algorithm>

#include "runtime/ecs_json.h"
#include "runtime/ecs_operations.h"
#include "runtime/service_scheduler.h"

namespace taskmesh::runtime::ops {
namespace {

ecs::ApiResult<const TaskDefinitionRecord*> activeDefinition(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto ref, p.str("taskDefinition", true));
  auto* d = rt.registry().taskDefinition(ref);
  if (!d) return ecs::clientError("TaskDefinition not found.");
  if (d->status != "ACTIVE") return ecs::clientError("TaskDefinition is inactive");
  return d;
}

// networkConfiguration.awsvpcConfiguration.subnets, required as ECS requires it for awsvpc.
ecs::ApiResult<Json> networkConfiguration(const Params& p) {
  TM_ECS_TRY(auto nc, p.value("networkConfiguration", Json::object()));
  if (nc.empty()) {
    return ecs::invalidParameter(
        "Network Configuration must be provided when networkMode 'awsvpc' is specified.");
  }
  auto vpc = nc.value("awsvpcConfiguration", Json());
  if (!vpc.is_object() || !vpc.contains("subnets") || !vpc["subnets"].is_array() ||
      vpc["subnets"].empty() || !vpc["subnets"][0].is_string()) {
    return ecs::invalidParameter("subnets can not be empty.");
  }
  return nc;
}

ecs::ApiResult<std::string> launchType(const Params& p) {
  TM_ECS_TRY(auto lt, p.str("launchType"));
  if (lt.empty()) return std::string("EC2");
  if (lt != "EC2" && lt != "FARGATE" && lt != "EXTERNAL") {
    return ecs::invalidParameter("launchType must be EC2, FARGATE or EXTERNAL.");
  }
  return lt;
}

ecs::ApiResult<std::string> propagateTags(const Params& p) {
  TM_ECS_TRY(auto v, p.str("propagateTags"));
  if (v.empty()) return std::string("NONE");
  if (v != "TASK_DEFINITION" && v != "SERVICE" && v != "NONE") {
    return ecs::invalidParameter("propagateTags must be TASK_DEFINITION, SERVICE or NONE.");
  }
  return v;
}

bool isStringList(const Json& j) {
  return j.is_array() &&
         std::all_of(j.begin(), j.end(), [](const Json& e) { return e.is_string(); });
}

// One containerOverrides entry: a known container name, command a list of strings,
// environment a list of {name, value} strings. (Other members are kept and ignored.)
ecs::ApiResult<void> containerOverride(const Json& c, const TaskDefinitionRecord& def) {
  if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) {
    return ecs::invalidParameter("containerOverrides[].name must be a string.");
  }
  std::string name = c["name"].get<std::string>();
  bool known = false;
  for (const auto& d : def.document.value("containerDefinitions", Json::array())) {
    known |= d.is_object() && d.contains("name") && d["name"] == name;
  }
  if (!known) {
    return ecs::invalidParameter("Override for container named " + name +
                                 " is not a container in the TaskDefinition.");
  }
  if (c.contains("command") && !isStringList(c["command"])) {
    return ecs::invalidParameter("containerOverrides.command must be a list of strings.");
  }
  if (c.contains("environment")) {
    const auto& env = c["environment"];
    bool ok = env.is_array() && std::all_of(env.begin(), env.end(), [](const Json& kv) {
                return kv.is_object() && kv.contains("name") && kv["name"].is_string() &&
                       (!kv.contains("value") || kv["value"].is_string());
              });
    if (!ok) {
      return ecs::invalidParameter(
          "containerOverrides.environment must be a list of {name, value} strings.");
    }
  }
  return {};
}

ecs::ApiResult<Json> overrides(const Params& p, const TaskDefinitionRecord& def) {
  TM_ECS_TRY(auto o, p.value("overrides", Json::object()));
  if (dumpJson(o).size() > 8192) {
    return ecs::invalidParameter("overrides is over 8192 characters.");
  }
  if (!o.contains("containerOverrides")) return o;
  const auto& co = o["containerOverrides"];
  if (!co.is_array()) return ecs::invalidParameter("overrides.containerOverrides must be a list.");
  for (const auto& c : co) {
    if (auto ok = containerOverride(c, def); !ok) return std::unexpected(ok.error());
  }
  return o;
}

ecs::ApiResult<ServiceRecord*> activeService(Runtime& rt, const Params& p, const char* key,
                                             const std::string& cluster) {
  TM_ECS_TRY(auto name, p.str(key, true));
  auto* s = rt.registry().service(cluster, name);
  if (!s || s->status == "INACTIVE") {
    return ecs::apiError("ServiceNotFoundException", "Service not found.");
  }
  return s;
}

ecs::ApiResult<void> deploymentConfiguration(const Params& p, ServiceRecord& s) {
  TM_ECS_TRY(auto dc, p.value("deploymentConfiguration", Json::object()));
  Params d(dc);
  TM_ECS_TRY(auto maxPct, d.integer("maximumPercent", s.maximumPercent, 100, 200));
  TM_ECS_TRY(auto minPct, d.integer("minimumHealthyPercent", s.minimumHealthyPercent, 0, 100));
  s.maximumPercent = maxPct;
  s.minimumHealthyPercent = minPct;
  return {};
}

}  // namespace

ecs::ApiResult<Json> runTask(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto* def, activeDefinition(rt, p));
  TM_ECS_TRY(auto count, p.integer("count", 1, 1, 10));
  TM_ECS_TRY(auto nc, networkConfiguration(p));
  TM_ECS_TRY(auto group, p.str("group"));
  TM_ECS_TRY(auto startedBy, p.str("startedBy"));
  if (!startedBy.empty() && !detail::validName(startedBy, 36)) {
    return ecs::invalidParameter(
        "startedBy must be up to 36 letters, numbers, hyphens and "
        "underscores.");
  }
  TM_ECS_TRY(auto lt, launchType(p));
  TM_ECS_TRY(auto ov, overrides(p, *def));
  TM_ECS_TRY(auto tags, detail::validTags(p));
  TM_ECS_TRY(auto propagate, propagateTags(p));
  if (propagate == "TASK_DEFINITION") tags.insert(tags.begin(), def->tags.begin(), def->tags.end());
  RunTaskParams params{.cluster = cluster->name,
                       .definition = def,
                       .count = count,
                       .group = group,
                       .startedBy = startedBy,
                       .serviceName = "",
                       .launchType = lt,
                       .subnetId = nc["awsvpcConfiguration"]["subnets"][0],
                       .overrides = ov,
                       .tags = tags};
  TM_ECS_TRY(auto ids, rt.runTask(params));
  Json out = {{"tasks", Json::array()}, {"failures", Json::array()}};
  for (const auto& id : ids) {
    out["tasks"].push_back(taskJson(rt.registry(), *rt.registry().task(id), true));
  }
  return out;
}

ecs::ApiResult<Json> stopTask(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto ref, p.str("task", true));
  TM_ECS_TRY(auto reason, p.str("reason"));
  if (reason.size() > 255) return ecs::invalidParameter("reason is over 255 characters.");
  auto* t = rt.registry().task(ref, cluster->name);
  if (!t) return ecs::invalidParameter("The referenced task was not found.");
  rt.stopTask(t->id, "UserInitiated", reason.empty() ? "Task stopped by user" : reason);
  return Json{{"task", taskJson(rt.registry(), *t, false)}};
}

ecs::ApiResult<Json> listTasks(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto family, p.str("family"));
  TM_ECS_TRY(auto serviceName, p.str("serviceName"));
  TM_ECS_TRY(auto startedBy, p.str("startedBy"));
  TM_ECS_TRY(auto desired, p.str("desiredStatus"));
  TM_ECS_TRY(auto lt, p.str("launchType"));
  TM_ECS_TRY(auto instance, p.str("containerInstance"));
  if (desired.empty()) desired = "RUNNING";
  if (desired != "RUNNING" && desired != "PENDING" && desired != "STOPPED") {
    return ecs::invalidParameter("desiredStatus must be RUNNING, PENDING or STOPPED.");
  }
  if (!serviceName.empty() && !rt.registry().service(cluster->name, serviceName)) {
    return ecs::apiError("ServiceNotFoundException", "Service not found.");
  }
  std::vector<const TaskRecord*> matches;
  for (const auto& [_, t] : rt.registry().tasks()) {
    if (t.cluster != cluster->name || t.desiredStatus != desired || !instance.empty()) continue;
    if (!family.empty() && t.family != family) continue;
    if (!serviceName.empty() && t.serviceName != lastArnSegment(serviceName)) continue;
    if (!startedBy.empty() && t.startedBy != startedBy) continue;
    if (!lt.empty() && t.launchType != lt) continue;
    matches.push_back(&t);
  }
  std::sort(matches.begin(), matches.end(), [](const TaskRecord* a, const TaskRecord* b) {
    return a->createdAt != b->createdAt ? a->createdAt < b->createdAt : a->id < b->id;
  });
  std::vector<std::string> arns;
  for (const auto* t : matches) arns.push_back(rt.registry().arns().task(t->cluster, t->id));
  TM_ECS_TRY(auto page, detail::paginate(arns, p));
  Json out = {{"taskArns", page.items}};
  if (!page.nextToken.empty()) out["nextToken"] = page.nextToken;
  return out;
}

ecs::ApiResult<Json> describeTasks(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto refs, p.strings("tasks", true));
  if (refs.empty() || refs.size() > 100) {
    return ecs::invalidParameter("tasks must contain between 1 and 100 task IDs or ARNs.");
  }
  bool tags = p.includes("TAGS");
  Json out = {{"tasks", Json::array()}, {"failures", Json::array()}};
  for (const auto& ref : refs) {
    if (auto* t = rt.registry().task(ref, cluster->name)) {
      out["tasks"].push_back(taskJson(rt.registry(), *t, tags));
    } else {
      std::string arn =
          ref.rfind("arn:", 0) == 0 ? ref : rt.registry().arns().task(cluster->name, ref);
      out["failures"].push_back({{"arn", arn}, {"reason", "MISSING"}});
    }
  }
  return out;
}

ecs::ApiResult<Json> createService(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto name, p.str("serviceName", true));
  if (!detail::validName(name, 255)) {
    return ecs::invalidParameter(
        "serviceName can contain only letters, numbers, hyphens and "
        "underscores, up to 255.");
  }
  auto* existing = rt.registry().service(cluster->name, name);
  if (existing && existing->status != "INACTIVE") {
    return ecs::invalidParameter("Creation of service was not idempotent.");
  }
  TM_ECS_TRY(auto* def, activeDefinition(rt, p));
  TM_ECS_TRY(auto desired, p.integer("desiredCount", 0, 0, 1000));
  TM_ECS_TRY(auto nc, networkConfiguration(p));
  TM_ECS_TRY(auto lt, launchType(p));
  TM_ECS_TRY(auto propagate, propagateTags(p));
  TM_ECS_TRY(auto tags, detail::validTags(p));
  TM_ECS_TRY(auto strategy, p.str("schedulingStrategy"));
  if (!strategy.empty() && strategy != "REPLICA") {
    return ecs::invalidParameter("schedulingStrategy " + strategy +
                                 " is not supported by the local runtime; use REPLICA.");
  }
  double now = nowSeconds();
  ServiceRecord s{.name = name,
                  .cluster = cluster->name,
                  .family = def->family,
                  .revision = def->revision,
                  .desiredCount = desired,
                  .launchType = lt,
                  .propagateTags = propagate,
                  .networkConfiguration = nc,
                  .tags = tags,
                  .createdAt = now};
  if (auto dc = deploymentConfiguration(p, s); !dc) return std::unexpected(dc.error());
  s.deployments.push_back(ServiceScheduler::newDeployment(
      s, rt.registry().arns().taskDefinition(def->family, def->revision), now));
  auto& stored = rt.registry().addService(std::move(s));
  rt.scheduler().onTaskChanged("");
  return Json{{"service", serviceJson(rt.registry(), stored, true)}};
}

ecs::ApiResult<Json> updateService(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto* s, activeService(rt, p, "service", cluster->name));
  if (s->status != "ACTIVE") {
    return ecs::apiError("ServiceNotActiveException", "Service was not ACTIVE.");
  }
  TM_ECS_TRY(auto desired, p.integer("desiredCount", s->desiredCount, 0, 1000));
  TM_ECS_TRY(auto force, p.boolean("forceNewDeployment", false));
  const TaskDefinitionRecord* def = nullptr;
  if (p.has("taskDefinition")) {
    TM_ECS_TRY(auto* d, activeDefinition(rt, p));
    def = d;
  }
  ServiceRecord updated = *s;
  if (auto dc = deploymentConfiguration(p, updated); !dc) return std::unexpected(dc.error());
  updated.desiredCount = desired;
  double now = nowSeconds();
  bool newDefinition = def && (def->family != s->family || def->revision != s->revision);
  if (newDefinition) {
    updated.family = def->family;
    updated.revision = def->revision;
  }
  if (newDefinition || force) {
    updated.deployments.insert(
        updated.deployments.begin(),
        ServiceScheduler::newDeployment(
            updated, rt.registry().arns().taskDefinition(updated.family, updated.revision), now));
    for (size_t i = 1; i < updated.deployments.size(); ++i) {
      updated.deployments[i].status = "ACTIVE";
    }
    updated.consecutiveFailedStarts = 0;
    updated.nextLaunchAt = 0;
  } else {
    updated.deployments.front().desiredCount = desired;
    if (desired != s->desiredCount) updated.deployments.front().rolloutState = "IN_PROGRESS";
  }
  *s = std::move(updated);
  rt.registry().changed();
  rt.scheduler().onTaskChanged("");
  return Json{{"service", serviceJson(rt.registry(), *s, false)}};
}

ecs::ApiResult<Json> deleteService(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto* s, activeService(rt, p, "service", cluster->name));
  TM_ECS_TRY(auto force, p.boolean("force", false));
  if (s->desiredCount > 0 && !force) {
    return ecs::invalidParameter("The service cannot be stopped while it is scaled above 0.");
  }
  s->status = "DRAINING";
  s->desiredCount = 0;
  ServiceScheduler::addEvent(*s, "is being deleted.", nowSeconds());
  rt.registry().changed();
  rt.scheduler().onTaskChanged("");
  return Json{{"service", serviceJson(rt.registry(), *s, false)}};
}

ecs::ApiResult<Json> describeServices(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto names, p.strings("services", true));
  if (names.empty() || names.size() > 10) {
    return ecs::invalidParameter("services must contain between 1 and 10 names or ARNs.");
  }
  bool tags = p.includes("TAGS");
  Json out = {{"services", Json::array()}, {"failures", Json::array()}};
  for (const auto& n : names) {
    if (auto* s = rt.registry().service(cluster->name, n)) {
      out["services"].push_back(serviceJson(rt.registry(), *s, tags));
    } else {
      std::string arn =
          n.rfind("arn:", 0) == 0 ? n : rt.registry().arns().service(cluster->name, n);
      out["failures"].push_back({{"arn", arn}, {"reason", "MISSING"}});
    }
  }
  return out;
}

ecs::ApiResult<Json> listServices(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* cluster, detail::requireCluster(rt.registry(), p));
  TM_ECS_TRY(auto lt, p.str("launchType"));
  std::vector<std::string> arns;
  for (const auto& [_, s] : rt.registry().services()) {
    if (s.cluster != cluster->name || s.status == "INACTIVE") continue;
    if (!lt.empty() && s.launchType != lt) continue;
    arns.push_back(rt.registry().arns().service(s.cluster, s.name));
  }
  TM_ECS_TRY(auto page, detail::paginate(arns, p));
  Json out = {{"serviceArns", page.items}};
  if (!page.nextToken.empty()) out["nextToken"] = page.nextToken;
  return out;
}

}  // namespace taskmesh::runtime::ops
