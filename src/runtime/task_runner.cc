#include "runtime/task_runner.h"

#include <csignal>
#include <filesystem>

#include "base/log.h"
#include "runtime/container_spec.h"

namespace taskmesh::runtime {
namespace {

auto logger() { return log::get("ecs"); }

constexpr size_t kMaxTimeline = 1000;
constexpr long kTimelineHead = 100;

std::string exitDetail(int code) {
  std::string d = "exitCode=" + std::to_string(code);
  if (code > 128 && code < 128 + 65) d += " (signal " + std::to_string(code - 128) + ")";
  return d;
}

}  // namespace

TaskRunner::TaskRunner(TaskRunnerContext& ctx, std::string taskId, ecs::TaskDefinition definition)
    : ctx_(ctx), taskId_(std::move(taskId)), definition_(std::move(definition)) {
  for (size_t i = 0; i < definition_.containers.size(); ++i) {
    runs_.push_back(std::make_unique<ContainerRun>(ctx_.io));
  }
}

TaskRunner::~TaskRunner() = default;

std::string TaskRunner::taskDir(const std::string& tasksDir, const std::string& taskId) {
  return tasksDir + "/" + taskId;
}

std::string TaskRunner::logPath(const std::string& tasksDir, const std::string& taskId,
                                const std::string& container) {
  return taskDir(tasksDir, taskId) + "/logs/" + container + ".log";
}

TaskRecord& TaskRunner::record() {
  auto* t = ctx_.registry.task(taskId_);
  // The registry never drops a task that is not STOPPED, and a runner exists only until then.
  if (!t) {
    logger()->critical("task={} record vanished while its runner was live", taskId_);
    std::abort();
  }
  return *t;
}

void TaskRunner::note(const std::string& subject, const std::string& event,
                      const std::string& detail) {
  auto& t = record();
  // Bounded: the first kTimelineHead events (the start) and the most recent ones are kept.
  if (t.timeline.size() >= kMaxTimeline) {
    t.timeline.erase(t.timeline.begin() + kTimelineHead,
                     t.timeline.begin() + kTimelineHead + kMaxTimeline / 10);
  }
  t.timeline.push_back(TimelineEvent{nowSeconds(), subject, event, detail});
  logger()->debug("task={} {} {} {}", taskId_, subject, event, detail);
}

void TaskRunner::touched() {
  auto& t = record();
  ++t.version;
  ctx_.registry.changed();
  if (ctx_.onTaskChanged) ctx_.onTaskChanged(taskId_);
}

void TaskRunner::setTaskStatus(const std::string& status) {
  auto& t = record();
  if (t.lastStatus == status) return;
  t.lastStatus = status;
  note("task", status);
  logger()->info("task={} status={}", taskId_, status);
  touched();
}

void TaskRunner::start() {
  note("task", "PROVISIONING");
  auto self = weak_from_this();
  ctx_.network.setup(taskId_, [self](Result<TaskAttachment> attachment) {
    if (auto r = self.lock()) r->onNetworkReady(std::move(attachment));
  });
}

void TaskRunner::onNetworkReady(Result<TaskAttachment> attachment) {
  auto& t = record();
  if (!attachment) {
    note("task", "NETWORK_FAILED", attachment.error().message);
    if (t.desiredStatus != "STOPPED") {
      t.stopCode = "TaskFailedToStart";
      t.stoppedReason = "ResourceInitializationError: " + attachment.error().message;
      t.stoppedReason.resize(std::min<size_t>(t.stoppedReason.size(), 255));
      t.desiredStatus = "STOPPED";
    }
    t.attachmentStatus = "FAILED";
    for (auto& c : t.containers) c.desiredStatus = "STOPPED";
    for (auto& c : t.containers) c.lastStatus = "STOPPED";
    for (auto& run : runs_) run->removed = true;
    finish();
    return;
  }
  t.ipv4 = attachment->ipv4;
  t.macAddress = attachment->macAddress;
  t.gateway = attachment->gateway;
  t.subnetCidr = attachment->subnetCidr;
  t.attachmentStatus = "ATTACHED";
  note("task", "NETWORK_ATTACHED", attachment->ipv4 + " " + attachment->netnsPath);
  netnsPath_ = attachment->netnsPath;
  t.pullStartedAt = nowSeconds();
  note("task", "PENDING");
  t.lastStatus = "PENDING";
  // The "host" image is the host's own /usr and /etc: there is nothing to pull.
  t.pullStoppedAt = nowSeconds();
  touched();
  advance();  // starts containers, or (StopTask came during PROVISIONING) stops the task
}

void TaskRunner::advance() {
  if (finished_) return;
  if (record().desiredStatus == "STOPPED") {
    advanceStop();
  } else {
    advanceStart();
  }
}

TaskRunner::Readiness TaskRunner::readiness(size_t index, std::string& why) const {
  const auto& def = definition_.containers[index];
  const auto* t = ctx_.registry.task(taskId_);
  auto check = [&](const std::string& depName, ecs::DependencyCondition cond) -> Readiness {
    const auto* dep = t->container(depName);
    if (!dep) return Readiness::kFail;
    bool stopped = dep->lastStatus == "STOPPED";
    switch (cond) {
      case ecs::DependencyCondition::kStart:
        if (dep->startedAt > 0) return Readiness::kReady;
        break;
      case ecs::DependencyCondition::kComplete:
        if (stopped && dep->exitCode) return Readiness::kReady;
        break;
      case ecs::DependencyCondition::kSuccess:
        if (stopped && dep->exitCode && *dep->exitCode == 0) return Readiness::kReady;
        if (stopped && dep->exitCode) {
          why = "dependency " + depName + " of container " + def.name +
                " did not exit successfully (exitCode " + std::to_string(*dep->exitCode) + ")";
          return Readiness::kFail;
        }
        break;
      case ecs::DependencyCondition::kHealthy:
        if (dep->healthStatus == "HEALTHY") return Readiness::kReady;
        break;
    }
    if (stopped) {
      why = "dependency " + depName + " of container " + def.name + " stopped before reaching " +
            ecs::conditionName(cond);
      return Readiness::kFail;
    }
    return Readiness::kWait;
  };
  Readiness result = Readiness::kReady;
  for (const auto& d : def.dependsOn) {
    auto r = check(d.containerName, d.condition);
    if (r == Readiness::kFail) return r;
    if (r == Readiness::kWait) result = Readiness::kWait;
  }
  for (const auto& v : def.volumesFrom) {
    auto r = check(v.sourceContainer, ecs::DependencyCondition::kStart);
    if (r == Readiness::kFail) return r;
    if (r == Readiness::kWait) result = Readiness::kWait;
  }
  return result;
}

// No container is running or starting, yet some still wait: nothing can ever satisfy them.
bool TaskRunner::stuck() const {
  const auto* t = ctx_.registry.task(taskId_);
  bool waiting = false;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const auto& c = t->containers[i];
    if (c.lastStatus == "RUNNING") return false;
    if (runs_[i]->startRequested && c.lastStatus == "PENDING") return false;
    if (!runs_[i]->startRequested && c.lastStatus == "PENDING") waiting = true;
  }
  return waiting;
}

void TaskRunner::advanceStart() {
  if (record().lastStatus == "PROVISIONING") return;
  for (size_t i = 0; i < runs_.size(); ++i) {
    if (runs_[i]->startRequested || record().containers[i].lastStatus != "PENDING") continue;
    std::string why;
    switch (readiness(i, why)) {
      case Readiness::kReady:
        startContainer(i);
        if (record().desiredStatus == "STOPPED") return;
        break;
      case Readiness::kFail:
        stop("TaskFailedToStart", why);
        return;
      case Readiness::kWait:
        break;
    }
  }
  auto& t = record();
  bool allStarted = true;
  // Settled: started, or STOPPED (a non-essential container may have failed to start).
  for (const auto& c : t.containers) {
    allStarted = allStarted && (c.startedAt > 0 || c.lastStatus == "STOPPED");
  }
  if (allStarted && t.lastStatus == "PENDING") {
    t.startedAt = nowSeconds();
    t.connectivityAt = t.startedAt;
    setTaskStatus("RUNNING");
  } else if (stuck()) {
    stop("TaskFailedToStart", "unable to progress: no container can start (dependsOn)");
  }
}

void TaskRunner::startContainer(size_t index) {
  auto& run = *runs_[index];
  auto& c = record().containers[index];
  run.startRequested = true;
  c.createdAt = nowSeconds();
  auto spec = buildSpec(index);
  if (!spec) {
    note(c.name, "START_FAILED", spec.error().message);
    auto self = weak_from_this();
    // Report asynchronously, as the engine would: advance() is not re-entered.
    asio::post(ctx_.io, [self, index, err = spec.error()] {
      if (auto r = self.lock()) r->onStarted(index, makeError(err));
    });
    return;
  }
  note(c.name, "CREATED", spec->id);
  auto self = weak_from_this();
  ctx_.engine.start(
      *spec,
      [self, index](Result<pid_t> pid) {
        if (auto r = self.lock()) r->onStarted(index, std::move(pid));
      },
      [self, index](int exitCode) {
        if (auto r = self.lock()) r->onExited(index, exitCode);
      });
}

Result<ContainerSpec> TaskRunner::buildSpec(size_t index) {
  const auto& t = record();
  ContainerSpecInputs in{.task = t,
                         .definition = definition_,
                         .index = index,
                         .netnsPath = netnsPath_,
                         .taskDir = taskDir(ctx_.tasksDir, taskId_),
                         .bundlesDir = ctx_.bundlesDir,
                         .logPath = logPath(ctx_.tasksDir, taskId_, t.containers[index].name),
                         .metadataBaseUrl = ctx_.metadataBaseUrl,
                         .region = ctx_.region};
  return makeContainerSpec(in);
}

void TaskRunner::onStarted(size_t index, Result<pid_t> pid) {
  auto& c = record().containers[index];
  if (!pid) {
    c.lastStatus = "STOPPED";
    c.reason = "CannotStartContainerError: " + pid.error().message;
    if (c.reason.size() > 255) c.reason.resize(255);
    c.finishedAt = nowSeconds();
    runs_[index]->removed = !runs_[index]->startRequested;
    note(c.name, "STOPPED", c.reason);
    touched();
    if (c.essential) stop("TaskFailedToStart", c.reason);
    advance();
    return;
  }
  c.pid = *pid;
  c.lastStatus = "RUNNING";
  c.startedAt = nowSeconds();
  note(c.name, "RUNNING", "pid=" + std::to_string(*pid));
  if (definition_.containers[index].healthCheck) {
    runs_[index]->nextCountedProbeAt =
        c.startedAt + definition_.containers[index].healthCheck->interval;
    scheduleProbe(index, std::chrono::milliseconds(0));  // the first probe runs at once
  }
  touched();
  advance();
}

void TaskRunner::onExited(size_t index, int exitCode) {
  auto& run = *runs_[index];
  auto& c = record().containers[index];
  run.healthTimer.cancel();
  run.killTimer.cancel();
  c.lastStatus = "STOPPED";
  c.exitCode = exitCode;
  c.finishedAt = nowSeconds();
  c.pid = 0;
  note(c.name, "STOPPED", exitDetail(exitCode));
  touched();
  if (c.essential && record().desiredStatus != "STOPPED") {
    record().executionStoppedAt = c.finishedAt;
    stop("EssentialContainerExited", "Essential container in task exited");
    return;
  }
  advance();
}

void TaskRunner::stop(const std::string& stopCode, const std::string& reason) {
  auto& t = record();
  if (t.desiredStatus == "STOPPED" || finished_) return;
  t.desiredStatus = "STOPPED";
  t.stopCode = stopCode;
  t.stoppedReason = reason.substr(0, 255);
  t.stoppingAt = nowSeconds();
  if (t.executionStoppedAt == 0) t.executionStoppedAt = t.stoppingAt;
  for (auto& c : t.containers) c.desiredStatus = "STOPPED";
  note("task", "STOP_REQUESTED", stopCode + ": " + t.stoppedReason);
  touched();
  advance();
}

void TaskRunner::advanceStop() {
  auto& t = record();
  if (t.lastStatus == "PROVISIONING") return;  // onNetworkReady comes back here
  if (t.lastStatus == "PENDING" || t.lastStatus == "RUNNING") {
    setTaskStatus("DEACTIVATING");
    setTaskStatus("STOPPING");
  }
  if (deprovisioning_) return;
  // First every container that never started is STOPPED, so that what it depended on can be
  // signalled below; then SIGTERM goes to each running container none still depends on.
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& c = record().containers[i];
    if (c.lastStatus == "STOPPED" || runs_[i]->startRequested) continue;
    c.lastStatus = "STOPPED";
    runs_[i]->removed = true;
    note(c.name, "STOPPED", "never started");
  }
  bool allStopped = true;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const auto& c = record().containers[i];
    if (c.lastStatus == "STOPPED") continue;
    allStopped = false;
    if (c.lastStatus == "RUNNING" && !runs_[i]->signalled) signalContainer(i);
  }
  if (allStopped) deprovision();
}

// SIGTERM once every container that depends on this one has stopped; SIGKILL after
// stopTimeout.
void TaskRunner::signalContainer(size_t index) {
  const auto& name = definition_.containers[index].name;
  for (size_t j = 0; j < runs_.size(); ++j) {
    const auto& other = definition_.containers[j];
    bool dependsOnThis = false;
    for (const auto& d : other.dependsOn) dependsOnThis |= d.containerName == name;
    for (const auto& v : other.volumesFrom) dependsOnThis |= v.sourceContainer == name;
    if (dependsOnThis && record().containers[j].lastStatus != "STOPPED") return;
  }
  auto& run = *runs_[index];
  auto& c = record().containers[index];
  run.signalled = true;
  run.healthTimer.cancel();
  int timeout = definition_.containers[index].stopTimeout.value_or(ctx_.defaultStopTimeoutSeconds);
  note(c.name, "SIGTERM", "stopTimeout=" + std::to_string(timeout) + "s");
  ctx_.engine.signal(c.runtimeId, SIGTERM);
  run.killTimer.expires_after(std::chrono::seconds(timeout));
  auto self = weak_from_this();
  run.killTimer.async_wait([self, index](boost::system::error_code ec) {
    if (ec) return;
    auto r = self.lock();
    if (!r || r->record().containers[index].lastStatus == "STOPPED") return;
    r->note(r->record().containers[index].name, "SIGKILL", "stopTimeout elapsed");
    r->ctx_.engine.signal(r->record().containers[index].runtimeId, SIGKILL);
  });
}

void TaskRunner::deprovision() {
  if (deprovisioning_) return;
  deprovisioning_ = true;
  setTaskStatus("DEPROVISIONING");
  auto pending = std::make_shared<size_t>(1);
  auto self = weak_from_this();
  auto oneDone = [self, pending]() {
    if (--*pending > 0) return;
    if (auto r = self.lock()) r->finish();
  };
  for (size_t i = 0; i < runs_.size(); ++i) {
    if (runs_[i]->removed || !runs_[i]->startRequested) continue;
    ++*pending;
    std::string id = record().containers[i].runtimeId;
    ctx_.engine.remove(id, [self, oneDone, id](Result<void> r) {
      if (!r) logger()->warn("container={} remove failed: {}", id, r.error().message);
      oneDone();
    });
  }
  ctx_.network.teardown(taskId_, [self, oneDone](Result<void> r) {
    if (auto runner = self.lock()) {
      if (!r) runner->note("task", "NETWORK_TEARDOWN_FAILED", r.error().message);
      runner->record().attachmentStatus = "DELETED";
    }
    oneDone();
  });
}

void TaskRunner::finish() {
  auto& t = record();
  std::error_code ec;
  std::filesystem::remove_all(taskDir(ctx_.tasksDir, taskId_) + "/volumes", ec);
  t.stoppedAt = nowSeconds();
  if (t.executionStoppedAt == 0) t.executionStoppedAt = t.stoppedAt;
  if (t.attachmentStatus == "ATTACHED") t.attachmentStatus = "DELETED";
  finished_ = true;
  setTaskStatus("STOPPED");
}

int TaskRunner::stopBudgetSeconds() const {
  int total = 0;
  for (const auto& c : definition_.containers) {
    total += c.stopTimeout.value_or(ctx_.defaultStopTimeoutSeconds);
  }
  return total;
}

void TaskRunner::tick(double now) {
  auto& t = record();
  if (t.lastStatus != "PENDING" || t.desiredStatus != "RUNNING") return;
  for (size_t i = 0; i < runs_.size(); ++i) {
    if (runs_[i]->startRequested) continue;
    for (const auto& d : definition_.containers[i].dependsOn) {
      if (d.condition == ecs::DependencyCondition::kStart) continue;
      const auto* depDef = definition_.container(d.containerName);
      const auto* dep = t.container(d.containerName);
      if (!depDef || !dep || !depDef->startTimeout || dep->startedAt == 0) continue;
      std::string why;
      if (dep->lastStatus != "STOPPED" && readiness(i, why) == Readiness::kWait &&
          now > dep->startedAt + *depDef->startTimeout) {
        stop("TaskFailedToStart",
             "dependency " + d.containerName + " did not reach " + ecs::conditionName(d.condition) +
                 " within its startTimeout of " + std::to_string(*depDef->startTimeout) + "s");
        return;
      }
    }
  }
}

}  // namespace taskmesh::runtime
