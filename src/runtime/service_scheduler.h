#pragma once
// The service scheduler (shared/reference/ecs.md §5.7): keeps each ACTIVE service at its
// desiredCount, replaces tasks that stop or whose essential container turns UNHEALTHY, and
// rolls a new task definition out task by task within maximumPercent / minimumHealthyPercent.
// Tasks that stop before reaching RUNNING slow further launches down (doubling from 5 s, at
// most 15 min), as ECS's throttle does; a new deployment resets it.
//
// maximumPercent bounds the tasks whose desired status is RUNNING (ECS: tasks "in the RUNNING
// or PENDING state"); a retired task that is still stopping does not count.
//
// A service's tasks carry startedBy = the deployment id ("ecs-svc/<digits>") and
// group = "service:<name>". deployments[0] is PRIMARY; older ones are ACTIVE until their last
// task has stopped, then dropped.
//
// Thread: the runtime's io_context thread. Reconciliation never runs inside a runner's
// callback: onTaskChanged() only schedules it.

#include <memory>
#include <string>

#include "runtime/records.h"

namespace taskmesh::runtime {

class Runtime;

class ServiceScheduler {
 public:
  explicit ServiceScheduler(Runtime& runtime);

  void onTaskChanged(const std::string& taskId);
  // Reconciles every ACTIVE or DRAINING service. Called by the runtime's 1 s tick as well.
  void reconcileAll();

  // A new PRIMARY deployment for the service's current task definition and desiredCount.
  static DeploymentRecord newDeployment(const ServiceRecord& service, const std::string& arn,
                                        double now);
  static void addEvent(ServiceRecord& service, const std::string& message, double now);

  // A task that counts as healthy for deployments: RUNNING, and every essential container
  // that has a health check is HEALTHY.
  static bool healthy(const TaskRecord& task);

 private:
  void reconcile(ServiceRecord& service, double now);
  void noteTaskOutcome(const TaskRecord& task, double now);
  void launch(ServiceRecord& service, int count, double now);

  Runtime& runtime_;
  bool reconcilePending_ = false;
  // Posted work holds a weak_ptr to this: it does nothing once the scheduler is gone.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace taskmesh::runtime
