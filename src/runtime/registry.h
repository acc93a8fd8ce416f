#pragma once
// The runtime's state: every cluster, task definition revision, task and service, saved to
// <data-dir>/state.json so it survives a restart of `taskmesh ecs`.
//
// Thread: owned by the runtime's io_context thread; nothing here is thread-safe.
// Saving: every change calls changed(); one atomic write of the whole file follows at the end
// of the current io_context turn, so a burst of changes costs one write.
// Invariants: revisions of a family only grow (a deregistered revision keeps its number);
// task ids are unique across clusters; a record is never removed while it is referenced by a
// live TaskRunner (stopped tasks are expired by expireStopped()).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/asio.h"
#include "runtime/records.h"

namespace taskmesh::runtime {

struct ArnScheme {
  std::string region = "us-east-1";
  std::string accountId = "000000000000";

  std::string prefix() const { return "arn:aws:ecs:" + region + ":" + accountId + ":"; }
  std::string cluster(const std::string& name) const { return prefix() + "cluster/" + name; }
  std::string taskDefinition(const std::string& family, int revision) const {
    return prefix() + "task-definition/" + family + ":" + std::to_string(revision);
  }
  std::string task(const std::string& cluster, const std::string& id) const {
    return prefix() + "task/" + cluster + "/" + id;
  }
  std::string service(const std::string& cluster, const std::string& name) const {
    return prefix() + "service/" + cluster + "/" + name;
  }
  std::string container(const std::string& cluster, const std::string& taskId,
                        const std::string& uuid) const {
    return prefix() + "container/" + cluster + "/" + taskId + "/" + uuid;
  }
};

class Registry {
 public:
  // Loads <dataDir>/state.json if it exists. Errors name the file and what is wrong in it.
  static Result<std::unique_ptr<Registry>> open(asio::io_context& io, std::string dataDir,
                                                ArnScheme arns);

  const ArnScheme& arns() const { return arns_; }
  asio::io_context& io() { return io_; }
  const std::string& dataDir() const { return dataDir_; }

  // Marks the state as changed; it is written at the end of this io_context turn.
  void changed();
  // Writes now (used at shutdown). Errors name the file.
  Result<void> save();

  // --- clusters
  // The cluster named by a name or ARN ("" = "default"), or nullptr when unknown or INACTIVE.
  ClusterRecord* activeCluster(const std::string& nameOrArn);
  ClusterRecord* anyCluster(const std::string& nameOrArn);
  ClusterRecord& createCluster(const std::string& name, double now);
  std::map<std::string, ClusterRecord>& clusters() { return clusters_; }

  // --- task definitions
  // `ref` is "family", "family:revision" or an ARN; "family" alone = latest ACTIVE revision.
  TaskDefinitionRecord* taskDefinition(const std::string& ref);
  TaskDefinitionRecord& addTaskDefinition(TaskDefinitionRecord record);  // assigns revision
  std::map<std::string, std::map<int, TaskDefinitionRecord>>& taskDefinitions() {
    return taskDefinitions_;
  }

  // --- tasks
  // `ref` is a task id or task ARN; when `cluster` is non-empty the task must belong to it.
  TaskRecord* task(const std::string& ref, const std::string& cluster = "");
  TaskRecord& addTask(TaskRecord record);
  std::map<std::string, TaskRecord>& tasks() { return tasks_; }
  // Drops stopped tasks whose stoppedAt is older than `keepSeconds`, and the oldest stopped
  // tasks beyond `maxStopped`. Returns the ids dropped (their directories can go too).
  std::vector<std::string> expireStopped(double now, double keepSeconds, size_t maxStopped);

  // --- services, keyed by cluster and name
  ServiceRecord* service(const std::string& cluster, const std::string& nameOrArn);
  ServiceRecord& addService(ServiceRecord record);
  std::map<std::string, ServiceRecord>& services() { return services_; }  // "cluster/name"

 private:
  Registry(asio::io_context& io, std::string dataDir, ArnScheme arns);
  Result<void> load();

  asio::io_context& io_;
  std::string dataDir_;
  ArnScheme arns_;
  bool savePending_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted saves hold a weak_ptr
  std::map<std::string, ClusterRecord> clusters_;
  std::map<std::string, std::map<int, TaskDefinitionRecord>> taskDefinitions_;
  std::map<std::string, TaskRecord> tasks_;
  std::map<std::string, ServiceRecord> services_;
};

// The last '/'-separated segment of an ARN, or `ref` itself when it is not an ARN.
std::string lastArnSegment(const std::string& ref);
// The cluster name in an ARN or name ("" → "default").
std::string clusterName(const std::string& nameOrArn);
// Wall-clock seconds since the epoch, with millisecond precision.
double nowSeconds();

}  // namespace taskmesh::runtime
