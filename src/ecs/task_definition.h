#pragma once
// ECS task definitions: the typed model the runtime executes, parsed and validated from a
// RegisterTaskDefinition request, and the JSON document DescribeTaskDefinition returns.
//
// Validation follows ECS (shared/reference/ecs.md §1-§4): failures are ClientException with
// ECS's own message where one is known, otherwise a message that names the field
// ("containerDefinitions[1].healthCheck.interval must be between 5 and 300"). Pure: no I/O,
// no clock; thread-safe.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "ecs/api_error.h"

namespace taskmesh::ecs {

enum class DependencyCondition { kStart, kComplete, kSuccess, kHealthy };
const char* conditionName(DependencyCondition c);  // "START", ...

struct ContainerDependency {
  std::string containerName;
  DependencyCondition condition = DependencyCondition::kStart;
};

// Durations in seconds, as ECS has them. `command` keeps the CMD / CMD-SHELL prefix
// as given; a command without either prefix is treated as CMD (what ECS and the consul-ecs
// Terraform module do).
struct HealthCheck {
  std::vector<std::string> command;
  int interval = 30;    // 5..300
  int timeout = 5;      // 2..60
  int retries = 3;      // 1..10
  int startPeriod = 0;  // 0..300; 0 = none
};

struct KeyValuePair {
  std::string name;
  std::string value;
};

struct MountPoint {
  std::string sourceVolume;
  std::string containerPath;
  bool readOnly = false;
};

struct VolumeFrom {
  std::string sourceContainer;
  bool readOnly = false;
};

struct PortMapping {
  int containerPort = 0;
  int hostPort = 0;
  std::string protocol = "tcp";
};

struct ContainerDefinition {
  std::string name;
  std::string image;
  std::vector<std::string> entryPoint;
  std::vector<std::string> command;
  std::vector<KeyValuePair> environment;
  bool essential = true;
  std::vector<ContainerDependency> dependsOn;
  std::optional<HealthCheck> healthCheck;
  std::vector<MountPoint> mountPoints;
  std::vector<VolumeFrom> volumesFrom;
  std::vector<PortMapping> portMappings;
  std::string workingDirectory;
  std::string user;  // "", "uid", "uid:gid", "name", "name:group", ...
  bool readonlyRootFilesystem = false;
  std::optional<int> startTimeout;       // seconds; applies to this container as a dependency
  std::optional<int> stopTimeout;        // seconds between SIGTERM and SIGKILL
  int cpu = 0;                           // CPU shares; 0 when absent
  std::optional<int> memory;             // MiB, hard limit
  std::optional<int> memoryReservation;  // MiB, soft limit; < memory when both are set
};

struct Volume {
  std::string name;
  std::string hostSourcePath;  // volumes[].host.sourcePath; "" = a per-task directory
};

struct TaskDefinition {
  std::string family;
  int revision = 0;               // set by the registry, not by parse
  std::string status = "ACTIVE";  // ACTIVE | INACTIVE
  std::string networkMode;        // "awsvpc" when absent (the local runtime's only mode)
  std::vector<ContainerDefinition> containers;
  std::vector<Volume> volumes;
  std::string cpu;                                // normalized integer string or ""
  std::string memory;                             // normalized MiB integer string or ""
  nlohmann::json tags = nlohmann::json::array();  // [{key, value}]
  // The request with ECS's defaults filled in (containers: essential, environment,
  // mountPoints, portMappings, volumesFrom, cpu 0; healthCheck interval/timeout/retries;
  // top level: volumes, networkMode, compatibilities ["EC2","FARGATE"], cpu/memory
  // normalized; requiresCompatibilities only as given). Without tags (see `tags`), without null
  // members, and without the registry's members (taskDefinitionArn, revision, status,
  // registeredAt ...).
  nlohmann::json document = nlohmann::json::object();

  const ContainerDefinition* container(const std::string& name) const;
};

// Parses and validates a RegisterTaskDefinition request body. Never throws.
ApiResult<TaskDefinition> parseTaskDefinition(const nlohmann::json& request);

}  // namespace taskmesh::ecs
