#pragma once
// The runtime's durable records: clusters, registered task definitions, tasks (with their
// containers and timeline) and services. These are plain values; the Registry (registry.h)
// owns them and saves them; TaskRunner and ServiceScheduler change them through the Registry.
//
// Times are seconds since the Unix epoch as doubles (what the ECS API serializes); 0 means
// "has not happened". Statuses are ECS's strings.

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace taskmesh::runtime {

struct ClusterRecord {
  std::string name;
  std::string status = "ACTIVE";  // ACTIVE | INACTIVE
  double createdAt = 0;
};

struct TaskDefinitionRecord {
  std::string family;
  int revision = 0;
  std::string status = "ACTIVE";  // ACTIVE | INACTIVE
  double registeredAt = 0;
  double deregisteredAt = 0;
  nlohmann::json document;  // ecs::TaskDefinition::document (defaults filled)
  nlohmann::json tags = nlohmann::json::array();
};

// One line of a task's timeline: `subject` is "task" or a container name.
struct TimelineEvent {
  double at = 0;
  std::string subject;
  std::string event;   // a status ("PENDING", "RUNNING", "HEALTHY", ...) or an action
  std::string detail;  // free text: exit code, reason, probe output
};

struct ContainerRecord {
  std::string name;
  std::string runtimeId;   // the runc container id
  std::string uuid;        // the last segment of the container ARN
  std::string metadataId;  // the ${ECS_CONTAINER_METADATA_URI_V4} path segment
  bool essential = true;
  std::string lastStatus = "PENDING";  // PENDING | RUNNING | STOPPED
  std::string desiredStatus = "RUNNING";
  std::optional<int> exitCode;
  std::string reason;
  bool hasHealthCheck = false;
  std::string healthStatus = "UNKNOWN";  // HEALTHY | UNHEALTHY | UNKNOWN
  double healthSince = 0;
  std::optional<int> healthExitCode;
  std::string healthOutput;
  double createdAt = 0;
  double startedAt = 0;
  double finishedAt = 0;
  pid_t pid = 0;
};

struct TaskRecord {
  std::string id;  // 32 lower-case hex characters
  std::string cluster;
  std::string family;
  int revision = 0;
  std::string group;
  std::string startedBy;
  std::string serviceName;  // "" unless started by a service
  std::string launchType = "EC2";
  std::string lastStatus = "PROVISIONING";
  std::string desiredStatus = "RUNNING";
  std::string healthStatus = "UNKNOWN";
  std::string stopCode;
  std::string stoppedReason;
  int version = 1;
  double createdAt = 0, pullStartedAt = 0, pullStoppedAt = 0, startedAt = 0, stoppingAt = 0,
         executionStoppedAt = 0, stoppedAt = 0, connectivityAt = 0;
  // The task's network attachment (awsvpc).
  std::string attachmentId;
  std::string attachmentStatus = "PRECREATED";
  std::string subnetId;
  std::string ipv4;
  std::string macAddress;
  std::string gateway;
  std::string subnetCidr;
  nlohmann::json overrides = nlohmann::json::object();
  nlohmann::json tags = nlohmann::json::array();
  std::vector<ContainerRecord> containers;
  std::vector<TimelineEvent> timeline;

  ContainerRecord* container(const std::string& name);
  const ContainerRecord* container(const std::string& name) const;
  bool stopped() const { return lastStatus == "STOPPED"; }
};

struct DeploymentRecord {
  std::string id;                  // "ecs-svc/<19 digits>"
  std::string status = "PRIMARY";  // PRIMARY | ACTIVE | INACTIVE
  std::string taskDefinitionArn;
  std::string family;
  int revision = 0;
  int desiredCount = 0;
  int failedTasks = 0;
  std::string rolloutState = "IN_PROGRESS";  // IN_PROGRESS | COMPLETED | FAILED
  std::string rolloutStateReason;
  double createdAt = 0;
  double updatedAt = 0;
};

struct ServiceEvent {
  std::string id;
  double createdAt = 0;
  std::string message;
};

struct ServiceRecord {
  std::string name;
  std::string cluster;
  std::string status = "ACTIVE";  // ACTIVE | DRAINING | INACTIVE
  std::string family;
  int revision = 0;
  int desiredCount = 0;
  int maximumPercent = 200;
  int minimumHealthyPercent = 100;
  std::string launchType = "EC2";
  std::string propagateTags = "NONE";
  nlohmann::json networkConfiguration = nlohmann::json::object();
  nlohmann::json tags = nlohmann::json::array();
  double createdAt = 0;
  std::vector<DeploymentRecord> deployments;  // [0] is PRIMARY
  std::vector<ServiceEvent> events;           // newest first, bounded
  int consecutiveFailedStarts = 0;            // tasks stopped before RUNNING (throttling)
  double nextLaunchAt = 0;                    // throttle: no launch before this time
};

// "ip-198-18-0-5" for "198.18.0.5": the task's host name, and the label of its private DNS
// name, as EC2 forms them.
std::string ipHostLabel(const std::string& ipv4);

// JSON text of `j` with any invalid UTF-8 (probe output, container messages) replaced by
// U+FFFD: nlohmann's default dump throws on it.
std::string dumpJson(const nlohmann::json& j);

// JSON for the state file (records.cc). Every record round-trips exactly.
nlohmann::json toStateJson(const ClusterRecord& r);
nlohmann::json toStateJson(const TaskDefinitionRecord& r);
nlohmann::json toStateJson(const TaskRecord& r);
nlohmann::json toStateJson(const ServiceRecord& r);
// These throw nlohmann::json::exception on a malformed document; the caller (Registry::load)
// catches at its boundary and names the file.
void fromStateJson(const nlohmann::json& j, ClusterRecord& r);
void fromStateJson(const nlohmann::json& j, TaskDefinitionRecord& r);
void fromStateJson(const nlohmann::json& j, TaskRecord& r);
void fromStateJson(const nlohmann::json& j, ServiceRecord& r);

}  // namespace taskmesh::runtime
