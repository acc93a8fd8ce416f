#include "runtime/service_scheduler.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "base/log.h"
#include "runtime/runtime.h"

namespace taskmesh::runtime {
namespace {

auto logger() { return log::get("ecs"); }

constexpr size_t kMaxEvents = 100;

std::string taskList(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += " (task " + id + ")";
  return out;
}

}  // namespace

ServiceScheduler::ServiceScheduler(Runtime& runtime) : runtime_(runtime) {}

bool ServiceScheduler::healthy(const TaskRecord& t) {
  if (t.lastStatus != "RUNNING" || t.desiredStatus != "RUNNING") return false;
  for (const auto& c : t.containers) {
    if (c.essential && c.hasHealthCheck && c.healthStatus != "HEALTHY") return false;
  }
  return true;
}

DeploymentRecord ServiceScheduler::newDeployment(const ServiceRecord& s, const std::string& arn,
                                                 double now) {
  std::random_device rd;
  std::string digits;
  while (digits.size() < 19) digits += std::to_string(rd() % 10);
  if (digits[0] == '0') digits[0] = '1';
  return DeploymentRecord{.id = "ecs-svc/" + digits,
                          .status = "PRIMARY",
                          .taskDefinitionArn = arn,
                          .family = s.family,
                          .revision = s.revision,
                          .desiredCount = s.desiredCount,
                          .createdAt = now,
                          .updatedAt = now};
}

void ServiceScheduler::addEvent(ServiceRecord& s, const std::string& message, double now) {
  std::string id =
      std::to_string(static_cast<long long>(now * 1000)) + "-" + std::to_string(s.events.size());
  s.events.insert(s.events.begin(), ServiceEvent{id, now, "(service " + s.name + ") " + message});
  if (s.events.size() > kMaxEvents) s.events.resize(kMaxEvents);
}

void ServiceScheduler::onTaskChanged(const std::string& taskId) {
  auto* t = runtime_.registry().task(taskId);
  if (t && !t->serviceName.empty()) noteTaskOutcome(*t, nowSeconds());
  if (reconcilePending_) return;
  reconcilePending_ = true;
  asio::post(runtime_.registry().io(), [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.lock()) reconcileAll();
  });
}

// Throttling: a task that stopped without ever running counts as a failed start; one that
// reached RUNNING resets the count.
void ServiceScheduler::noteTaskOutcome(const TaskRecord& t, double now) {
  auto* s = runtime_.registry().service(t.cluster, t.serviceName);
  if (!s) return;
  if (t.lastStatus == "RUNNING") {
    s->consecutiveFailedStarts = 0;
    s->nextLaunchAt = 0;
    return;
  }
  if (!t.stopped() || t.startedAt > 0 || t.stopCode == "UserInitiated" ||
      t.stopCode == "ServiceSchedulerInitiated") {
    return;
  }
  for (auto& d : s->deployments) {
    if (d.id == t.startedBy) ++d.failedTasks;
  }
  ++s->consecutiveFailedStarts;
  double delay = std::min(900.0, 5.0 * std::pow(2.0, s->consecutiveFailedStarts - 1));
  s->nextLaunchAt = now + delay;
  if (s->consecutiveFailedStarts >= 3) {
    addEvent(*s, "is unable to consistently start tasks successfully.", now);
  }
}

void ServiceScheduler::reconcileAll() {
  reconcilePending_ = false;
  double now = nowSeconds();
  for (auto& [_, s] : runtime_.registry().services()) {
    if (s.status != "INACTIVE") reconcile(s, now);
  }
}

void ServiceScheduler::launch(ServiceRecord& s, int count, double now) {
  if (count <= 0) return;
  auto& primary = s.deployments.front();
  auto* def = runtime_.registry().taskDefinition(s.family + ":" + std::to_string(s.revision));
  if (!def) return;
  RunTaskParams p{.cluster = s.cluster,
                  .definition = def,
                  .count = count,
                  .group = "service:" + s.name,
                  .startedBy = primary.id,
                  .serviceName = s.name,
                  .launchType = s.launchType,
                  .subnetId = "",
                  .overrides = nlohmann::json::object(),
                  .tags = s.propagateTags == "TASK_DEFINITION" ? def->tags
                          : s.propagateTags == "SERVICE"       ? s.tags
                                                               : nlohmann::json::array()};
  auto subnets = s.networkConfiguration.value("awsvpcConfiguration", nlohmann::json::object())
                     .value("subnets", nlohmann::json::array());
  if (subnets.is_array() && !subnets.empty() && subnets[0].is_string()) p.subnetId = subnets[0];
  auto ids = runtime_.runTask(p);
  if (!ids) {
    addEvent(s, "was unable to place a task: " + ids.error().message, now);
    return;
  }
  addEvent(s, "has started " + std::to_string(ids->size()) + " tasks:" + taskList(*ids) + ".", now);
}

void ServiceScheduler::reconcile(ServiceRecord& s, double now) {
  if (s.deployments.empty()) return;
  auto& registry = runtime_.registry();
  std::vector<TaskRecord*> live;
  for (auto& [_, t] : registry.tasks()) {
    if (t.cluster == s.cluster && t.serviceName == s.name && !t.stopped()) live.push_back(&t);
  }
  std::vector<std::string> stopped;
  auto stopTask = [&](TaskRecord* t, const std::string& reason) {
    runtime_.stopTask(t->id, "ServiceSchedulerInitiated", reason);
    stopped.push_back(t->id);
  };
  // Replace tasks whose essential containers failed their health checks.
  for (auto* t : live) {
    if (t->desiredStatus == "RUNNING" && t->healthStatus == "UNHEALTHY") {
      stopTask(t, "Task failed container health checks");
    }
  }
  std::vector<TaskRecord*> active, primaryActive, oldActive;
  const std::string primaryId = s.deployments.front().id;  // a copy: deployments change below
  for (auto* t : live) {
    if (t->desiredStatus != "RUNNING") continue;
    active.push_back(t);
    (t->startedBy == primaryId ? primaryActive : oldActive).push_back(t);
  }
  int desired = s.status == "ACTIVE" ? s.desiredCount : 0;
  int maxTotal = static_cast<int>(std::floor(desired * s.maximumPercent / 100.0));
  int minHealthy = static_cast<int>(std::ceil(desired * s.minimumHealthyPercent / 100.0));
  // Prefer stopping tasks that are not (yet) healthy, then the newest.
  auto byPreference = [](TaskRecord* a, TaskRecord* b) {
    bool ha = healthy(*a), hb = healthy(*b);
    if (ha != hb) return !ha;
    return a->createdAt > b->createdAt;
  };
  std::string deploymentNote = "Scaling activity initiated by (deployment " + primaryId + ")";
  if (static_cast<int>(primaryActive.size()) > desired) {
    std::sort(primaryActive.begin(), primaryActive.end(), byPreference);
    size_t extra = primaryActive.size() - static_cast<size_t>(desired);
    for (size_t i = 0; i < extra; ++i) stopTask(primaryActive[i], deploymentNote);
    primaryActive.resize(static_cast<size_t>(desired));
  }
  int activeCount = static_cast<int>(primaryActive.size() + oldActive.size());
  int room = oldActive.empty() ? desired : std::max(maxTotal, desired) - activeCount;
  int toStart = std::min(desired - static_cast<int>(primaryActive.size()), room);
  if (now < s.nextLaunchAt) toStart = std::min(toStart, 0);
  if (toStart > 0 && s.consecutiveFailedStarts > 0) {
    // Throttled: one launch at a time, and only once the previous one has settled.
    bool starting = std::any_of(primaryActive.begin(), primaryActive.end(), [](TaskRecord* t) {
      return t->lastStatus == "PROVISIONING" || t->lastStatus == "PENDING";
    });
    toStart = starting ? 0 : 1;
  }
  launch(s, toStart, now);
  bool modified = toStart > 0;
  // Retire old deployments' tasks while enough healthy tasks remain.
  int healthyCount = 0;
  for (auto* t : active) healthyCount += healthy(*t) ? 1 : 0;
  std::sort(oldActive.begin(), oldActive.end(), byPreference);
  for (auto* t : oldActive) {
    if (!healthy(*t)) {
      stopTask(t, deploymentNote);
    } else if (healthyCount - 1 >= minHealthy) {
      --healthyCount;
      stopTask(t, deploymentNote);
    }
  }
  if (!stopped.empty()) {
    modified = true;
    addEvent(s,
             "has stopped " + std::to_string(stopped.size()) +
                 " running tasks:" + taskList(stopped) + ".",
             now);
  }
  // Deployment bookkeeping.
  std::vector<DeploymentRecord> kept;
  for (auto& d : s.deployments) {
    bool hasTasks = d.id == primaryId;
    for (auto* t : live) hasTasks |= t->startedBy == d.id;
    if (hasTasks) kept.push_back(d);
  }
  modified |= kept.size() != s.deployments.size();
  s.deployments = std::move(kept);
  auto& primary = s.deployments.front();
  int primaryHealthy = 0;
  for (auto* t : live) primaryHealthy += t->startedBy == primaryId && healthy(*t) ? 1 : 0;
  if (primary.rolloutState == "IN_PROGRESS" && s.deployments.size() == 1 &&
      primaryHealthy == desired && s.status == "ACTIVE") {
    modified = true;
    primary.rolloutState = "COMPLETED";
    primary.rolloutStateReason = "ECS deployment " + primary.id + " completed.";
    primary.updatedAt = now;
    addEvent(s, "(deployment " + primary.id + ") deployment completed.", now);
    addEvent(s, "has reached a steady state.", now);
  }
  if (s.status == "DRAINING" && live.empty()) {
    modified = true;
    s.status = "INACTIVE";
    addEvent(s, "has been deleted.", now);
    logger()->info("service={} INACTIVE", s.name);
  }
  if (modified) registry.changed();
}

}  // namespace taskmesh::runtime
