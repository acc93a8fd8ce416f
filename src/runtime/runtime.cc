#include "runtime/runtime.h"

#include <algorithm>
#include <filesystem>

#include "base/log.h"
#include "base/node_id.h"
#include "runtime/service_scheduler.h"

namespace taskmesh::runtime {
namespace {

auto logger() { return log::get("ecs"); }

}  // namespace

Runtime::Runtime(asio::io_context& io, Registry& registry, ContainerEngine& engine,
                 TaskNetwork& network, RuntimeOptions options)
    : io_(io),
      registry_(registry),
      options_(std::move(options)),
      context_{.io = io,
               .registry = registry,
               .engine = engine,
               .network = network,
               .tasksDir = options_.dataDir + "/tasks",
               .bundlesDir = options_.dataDir + "/bundles",
               .metadataBaseUrl = "http://" + network.gatewayAddress() + ":" +
                                  std::to_string(options_.metadataPort) + "/v4/",
               .region = options_.region,
               .defaultStopTimeoutSeconds = options_.stopTimeoutSeconds,
               .onTaskChanged = nullptr},
      scheduler_(std::make_unique<ServiceScheduler>(*this)),
      tickTimer_(io) {
  context_.onTaskChanged = [this](const std::string& id) { onTaskChanged(id); };
}

Runtime::~Runtime() = default;

std::string Runtime::metadataBaseUrl() const { return context_.metadataBaseUrl; }

void Runtime::start() {
  double now = nowSeconds();
  if (!registry_.anyCluster("default")) registry_.createCluster("default", now);
  for (auto& [id, t] : registry_.tasks()) {
    if (t.stopped()) continue;
    t.timeline.push_back({now, "task", "STOPPED", "the runtime restarted"});
    if (t.stopCode.empty()) {
      // ECS's code for a task whose host went away under it.
      t.stopCode = t.startedAt > 0 ? "TerminationNotice" : "TaskFailedToStart";
      t.stoppedReason = "Task stopped because the ECS runtime restarted";
    }
    t.desiredStatus = "STOPPED";
    t.lastStatus = "STOPPED";
    if (t.stoppingAt == 0) t.stoppingAt = now;
    if (t.executionStoppedAt == 0) t.executionStoppedAt = now;
    t.stoppedAt = now;
    t.attachmentStatus = "DELETED";
    for (auto& c : t.containers) {
      c.desiredStatus = "STOPPED";
      if (c.lastStatus != "STOPPED") {
        c.lastStatus = "STOPPED";
        c.reason = "the ECS runtime restarted";
        c.finishedAt = now;
      }
    }
    ++t.version;
    logger()->info("task={} recorded STOPPED after a restart", id);
  }
  registry_.changed();
  tick();
}

ecs::ApiResult<std::vector<std::string>> Runtime::runTask(const RunTaskParams& p) {
  if (stopping_) return ecs::apiError("ServerException", "the runtime is shutting down");
  auto parsed = ecs::parseTaskDefinition(p.definition->document);
  if (!parsed) return std::unexpected(parsed.error());
  std::vector<std::string> ids;
  for (int n = 0; n < p.count; ++n) {
    TaskRecord t;
    t.id = randomHex(32);
    t.cluster = p.cluster;
    t.family = p.definition->family;
    t.revision = p.definition->revision;
    t.group = p.group.empty() ? "family:" + t.family : p.group;
    t.startedBy = p.startedBy;
    t.serviceName = p.serviceName;
    t.launchType = p.launchType;
    t.subnetId = p.subnetId;
    t.overrides = p.overrides;
    t.tags = p.tags;
    t.attachmentId = randomUuid();
    t.createdAt = nowSeconds();
    for (const auto& def : parsed->containers) {
      ContainerRecord c;
      c.name = def.name;
      c.runtimeId = t.id + "-" + def.name;
      c.uuid = randomUuid();
      c.metadataId = t.id + "-" + randomHex(10);
      c.essential = def.essential;
      c.hasHealthCheck = def.healthCheck.has_value();
      t.containers.push_back(std::move(c));
    }
    std::string id = t.id;
    registry_.addTask(std::move(t));
    auto runner = std::make_shared<TaskRunner>(context_, id, *parsed);
    runners_[id] = runner;
    runner->start();
    ids.push_back(id);
  }
  return ids;
}

void Runtime::stopTask(const std::string& taskId, const std::string& stopCode,
                       const std::string& reason) {
  auto it = runners_.find(taskId);
  if (it != runners_.end()) it->second->stop(stopCode, reason);
}

void Runtime::onTaskChanged(const std::string& taskId) {
  auto it = runners_.find(taskId);
  if (it != runners_.end() && it->second->finished()) {
    // Drop the runner after the current callback chain has unwound.
    auto runner = it->second;
    runners_.erase(it);
    asio::post(io_, [runner] {});
  }
  scheduler_->onTaskChanged(taskId);
}

void Runtime::tick() {
  if (stopping_) return;
  double now = nowSeconds();
  std::vector<std::shared_ptr<TaskRunner>> live;
  for (auto& [_, r] : runners_) live.push_back(r);
  for (auto& r : live) r->tick(now);
  scheduler_->reconcileAll();
  for (const auto& id :
       registry_.expireStopped(now, options_.stoppedTaskRetention, options_.maxStoppedTasks)) {
    std::error_code ec;
    std::filesystem::remove_all(TaskRunner::taskDir(context_.tasksDir, id), ec);
  }
  tickTimer_.expires_after(std::chrono::seconds(1));
  tickTimer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void Runtime::shutdown(std::chrono::seconds grace, std::function<void()> done) {
  stopping_ = true;
  tickTimer_.cancel();
  std::vector<std::shared_ptr<TaskRunner>> live;
  int budget = 0;
  for (auto& [_, r] : runners_) {
    live.push_back(r);
    budget = std::max(budget, r->stopBudgetSeconds());
  }
  for (auto& r : live) r->stop("UserInitiated", "the ECS runtime is shutting down");
  shutdownDeadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(budget) + grace;
  shutdownDone_ = std::move(done);
  pollShutdown();
}

void Runtime::pollShutdown() {
  if (!runners_.empty() && std::chrono::steady_clock::now() < shutdownDeadline_) {
    tickTimer_.expires_after(std::chrono::milliseconds(50));
    tickTimer_.async_wait([this](boost::system::error_code ec) {
      if (ec != asio::error::operation_aborted) pollShutdown();
    });
    return;
  }
  if (!runners_.empty()) logger()->warn("shutdown: {} tasks did not stop in time", runners_.size());
  auto saved = registry_.save();
  if (!saved) logger()->error("cannot save state: {}", saved.error().message);
  if (auto done = std::move(shutdownDone_)) done();
}

}  // namespace taskmesh::runtime
