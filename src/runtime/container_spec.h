#pragma once
// Turns a task definition's container (plus RunTask overrides) into the ContainerSpec the
// engine runs: arguments, environment (with ECS_CONTAINER_METADATA_URI_V4), user, working
// directory, volume mounts (task volumes, host volumes, volumesFrom) and the task's network
// namespace. Creates the task's volume and log directories. Errors name the container and
// the field. Thread: any (no shared state).

#include <string>

#include "base/result.h"
#include "ecs/task_definition.h"
#include "runtime/container_engine.h"
#include "runtime/records.h"

namespace taskmesh::runtime {

struct ContainerSpecInputs {
  const TaskRecord& task;
  const ecs::TaskDefinition& definition;
  size_t index;  // into definition.containers and task.containers
  std::string netnsPath;
  std::string taskDir;     // volumes live in <taskDir>/volumes/<name>
  std::string bundlesDir;  // the container's bundle is <bundlesDir>/<runtimeId>
  std::string logPath;
  std::string metadataBaseUrl;  // "http://<gateway>:<port>/v4/"
  std::string region;
};

Result<ContainerSpec> makeContainerSpec(const ContainerSpecInputs& in);

// "uid", "uid:gid", "name", "name:group", "uid:group", "name:gid" → ids, names resolved
// through the host's /etc/passwd and /etc/group (the "host" image shares them).
Result<std::pair<uid_t, gid_t>> resolveUser(const std::string& user);

}  // namespace taskmesh::runtime
