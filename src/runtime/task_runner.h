#pragma once
// TaskRunner drives one task through ECS's lifecycle (shared/reference/ecs.md §5):
//
//   PROVISIONING  the task's network namespace is created (TaskNetwork::setup)
//   PENDING       containers start as their dependsOn conditions allow
//                 (START, COMPLETE, SUCCESS, HEALTHY; volumesFrom is an implicit START)
//   RUNNING       every container has started (init containers may have exited since)
//   DEACTIVATING  the task is to stop (StopTask, an essential container exited, a service)
//   STOPPING      containers get SIGTERM in reverse dependency order — a container is
//                 signalled only once every container that depends on it has stopped — and
//                 SIGKILL after its stopTimeout
//   DEPROVISIONING containers are removed and the network is torn down
//   STOPPED
//
// Health checks (CMD / CMD-SHELL / no prefix = CMD) run inside the container through
// ContainerEngine::exec with Docker's semantics — the next probe `interval` after the previous
// one finished, `retries` consecutive failures → UNHEALTHY, a pass → HEALTHY, failures inside
// `startPeriod` don't count until the first pass — with one difference that makes a HEALTHY
// dependency cost milliseconds instead of an interval (reference/consul-ecs.md §10.1): until
// its first pass, and only during its first `interval`, a container is probed at once and then
// every kEarlyProbePeriod or twice the last probe's duration, whichever is longer (probing
// never takes more than a third of the time); of those early probes at most one failure per
// `interval` counts. So HEALTHY comes as soon as the check passes, and UNHEALTHY never comes
// sooner than Docker would say it.
//
// Every transition is written to the task's timeline and its ECS timestamps.
//
// Thread: everything runs on the runtime's io_context thread. Ownership: the Runtime owns
// runners through shared_ptr; engine and network callbacks hold weak_ptrs, so a runner can be
// dropped at any time. The TaskRecord lives in the Registry; the runner looks it up by id.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ecs/task_definition.h"
#include "net/asio.h"
#include "runtime/container_engine.h"
#include "runtime/registry.h"
#include "runtime/task_network.h"

namespace taskmesh::runtime {

// Pace of the health probes of a container that has not passed yet (see above).
inline constexpr std::chrono::milliseconds kEarlyProbePeriod{200};

// What all runners share. Owned by the Runtime; outlives every runner.
struct TaskRunnerContext {
  asio::io_context& io;
  Registry& registry;
  ContainerEngine& engine;
  TaskNetwork& network;
  std::string tasksDir;         // per-task directories (volumes, logs) live below
  std::string bundlesDir;       // containers' OCI bundles (the engine's bundlesDir)
  std::string metadataBaseUrl;  // "http://198.18.0.1:51679/v4/"
  std::string region;
  int defaultStopTimeoutSeconds = 30;
  // Called after any change of a task's status or health (the service scheduler listens).
  std::function<void(const std::string& taskId)> onTaskChanged;
};

class TaskRunner : public std::enable_shared_from_this<TaskRunner> {
 public:
  TaskRunner(TaskRunnerContext& ctx, std::string taskId, ecs::TaskDefinition definition);
  ~TaskRunner();

  // Begins provisioning. The TaskRecord must exist in the registry, in PROVISIONING.
  void start();
  // Sets the desired status to STOPPED (the first stop code and reason win) and begins
  // stopping. Safe in any state; a no-op once stopping.
  void stop(const std::string& stopCode, const std::string& reason);
  // Periodic work (startTimeout of dependencies). Called about once a second.
  void tick(double now);
  // True once the task reached STOPPED; the Runtime then drops the runner.
  bool finished() const { return finished_; }
  const std::string& taskId() const { return taskId_; }
  // The longest a stop can take: every container's stopTimeout one after another.
  int stopBudgetSeconds() const;

  // Directory of a task's files, and the log file of one of its containers.
  static std::string taskDir(const std::string& tasksDir, const std::string& taskId);
  static std::string logPath(const std::string& tasksDir, const std::string& taskId,
                             const std::string& container);

 private:
  // Per-container machinery that is not part of the record: flags and timers.
  struct ContainerRun {
    explicit ContainerRun(asio::io_context& io) : healthTimer(io), killTimer(io) {}
    bool startRequested = false;  // engine.start() called
    bool signalled = false;       // SIGTERM sent
    bool removed = false;         // nothing left for engine.remove()
    bool everHealthy = false;
    int consecutiveFailures = 0;
    double nextCountedProbeAt = 0;  // before the first HEALTHY: when a failure next counts
    double probeStartedAt = 0;      // of the latest probe
    asio::steady_timer healthTimer;
    asio::steady_timer killTimer;
  };
  enum class Readiness { kReady, kWait, kFail };

  TaskRecord& record();
  void note(const std::string& subject, const std::string& event, const std::string& detail = "");
  void setTaskStatus(const std::string& status);
  void touched();

  void onNetworkReady(Result<TaskAttachment> attachment);
  void advance();
  void advanceStart();
  void advanceStop();
  Readiness readiness(size_t index, std::string& why) const;
  bool stuck() const;
  void startContainer(size_t index);
  Result<ContainerSpec> buildSpec(size_t index);
  void onStarted(size_t index, Result<pid_t> pid);
  void onExited(size_t index, int exitCode);
  void signalContainer(size_t index);
  void deprovision();
  void finish();

  void scheduleProbe(size_t index, std::chrono::milliseconds delay);
  std::chrono::milliseconds nextProbeDelay(size_t index);
  void probe(size_t index);
  void onProbe(size_t index, const ExecResult& result);
  void updateTaskHealth();

  TaskRunnerContext& ctx_;
  std::string taskId_;
  ecs::TaskDefinition definition_;
  std::vector<std::unique_ptr<ContainerRun>> runs_;  // parallel to definition_.containers
  std::string netnsPath_;
  bool deprovisioning_ = false;
  bool finished_ = false;
};

}  // namespace taskmesh::runtime
