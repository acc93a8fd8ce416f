#pragma once
// The ECS API's response shapes (shared/reference/ecs.md §8) built from the runtime's
// records: Cluster, TaskDefinition, Task (with Container and the awsvpc attachment) and
// Service (with deployments and events). Timestamps are epoch seconds; members whose event
// has not happened are left out, as ECS does.
//
// Thread: the runtime's io_context thread (reads the Registry).

#include <nlohmann/json.hpp>

#include "runtime/registry.h"

namespace taskmesh::runtime {

// The task definition's document of one container of `task` (image, cpu, memory, ports), or
// an empty object.
nlohmann::json containerDocument(Registry& registry, const TaskRecord& task,
                                 const std::string& name);

nlohmann::json clusterJson(Registry& registry, const ClusterRecord& cluster);
nlohmann::json taskDefinitionJson(const Registry& registry, const TaskDefinitionRecord& def);
nlohmann::json taskJson(Registry& registry, const TaskRecord& task, bool includeTags);
nlohmann::json serviceJson(Registry& registry, const ServiceRecord& service, bool includeTags);

}  // namespace taskmesh::runtime
