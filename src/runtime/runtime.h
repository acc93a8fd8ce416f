#pragma once
// `taskmesh ecs`: a local ECS-compatible runtime. Runtime ties the pieces together:
//
//   Registry           durable records (registry.h)
//   TaskRunner         one per live task: the ECS lifecycle (task_runner.h)
//   ServiceScheduler   desiredCount, replacement, rolling updates (service_scheduler.h)
//   ContainerEngine    runc (drivers/runc_engine.h)    — a seam, faked in tests
//   TaskNetwork        CNI  (drivers/cni_network.h)    — a seam, faked in tests
//   EcsApi             the ECS JSON 1.1 API + task metadata v4 (ecs_api.h, metadata.h)
//
// Thread: one io_context thread runs all of it. Ownership: Runtime owns the runners and the
// scheduler; the caller owns the registry, engine and network and keeps them alive longer.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ecs/api_error.h"
#include "net/asio.h"
#include "runtime/container_engine.h"
#include "runtime/registry.h"
#include "runtime/task_network.h"
#include "runtime/task_runner.h"

namespace taskmesh::runtime {

class ServiceScheduler;

struct RuntimeOptions {
  std::string dataDir;
  std::string apiAddr = "127.0.0.1:4566";
  std::string region = "us-east-1";
  std::string accountId = "000000000000";
  std::string subnet = "198.18.0.0/16";
  std::string bridge = "tmecs0";
  int metadataPort = 51679;
  int stopTimeoutSeconds = 30;         // a container's stopTimeout when it sets none
  double stoppedTaskRetention = 3600;  // seconds a STOPPED task stays visible
  size_t maxStoppedTasks = 1000;
  std::string logLevel = "info";
};

struct RunTaskParams {
  std::string cluster;  // an ACTIVE cluster's name
  const TaskDefinitionRecord* definition = nullptr;
  int count = 1;
  std::string group;
  std::string startedBy;
  std::string serviceName;
  std::string launchType = "EC2";
  std::string subnetId;
  nlohmann::json overrides = nlohmann::json::object();
  nlohmann::json tags = nlohmann::json::array();
};

class Runtime {
 public:
  Runtime(asio::io_context& io, Registry& registry, ContainerEngine& engine, TaskNetwork& network,
          RuntimeOptions options);
  ~Runtime();

  // After a restart: every task the previous run left unfinished is recorded STOPPED (its
  // containers and network were removed by the drivers' removeOrphans()), so services replace
  // them. Then starts the housekeeping tick. Call once, before serving the API.
  void start();
  // Stops every live task (as StopTask would) and calls `done` when all reached STOPPED, or
  // when the longest stop any of them may take (its stopTimeouts one after another, plus
  // `grace`) has passed.
  void shutdown(std::chrono::seconds grace, std::function<void()> done);

  // Creates and starts `count` tasks. Returns their ids.
  ecs::ApiResult<std::vector<std::string>> runTask(const RunTaskParams& params);
  // Sets a task's desired status to STOPPED.
  void stopTask(const std::string& taskId, const std::string& stopCode, const std::string& reason);

  Registry& registry() { return registry_; }
  ServiceScheduler& scheduler() { return *scheduler_; }
  const RuntimeOptions& options() const { return options_; }
  const std::string& tasksDir() const { return context_.tasksDir; }
  size_t liveTasks() const { return runners_.size(); }
  std::string metadataBaseUrl() const;

 private:
  void onTaskChanged(const std::string& taskId);
  void tick();
  void pollShutdown();

  asio::io_context& io_;
  Registry& registry_;
  RuntimeOptions options_;
  TaskRunnerContext context_;
  std::map<std::string, std::shared_ptr<TaskRunner>> runners_;
  std::unique_ptr<ServiceScheduler> scheduler_;
  asio::steady_timer tickTimer_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point shutdownDeadline_;
  std::function<void()> shutdownDone_;
};

}  // namespace taskmesh::runtime
