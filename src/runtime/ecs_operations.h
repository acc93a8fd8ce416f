#pragma once
// ECS API operations on tasks and services (ecs_api_tasks.cc). Private to src/runtime;
// EcsApi dispatches to them.

#include <nlohmann/json.hpp>

#include "ecs/api_error.h"
#include "runtime/ecs_params.h"
#include "runtime/runtime.h"

namespace taskmesh::runtime::ops {

using Json = nlohmann::json;
using detail::Params;

ecs::ApiResult<Json> runTask(Runtime& rt, const Params& p);
ecs::ApiResult<Json> stopTask(Runtime& rt, const Params& p);
ecs::ApiResult<Json> listTasks(Runtime& rt, const Params& p);
ecs::ApiResult<Json> describeTasks(Runtime& rt, const Params& p);
ecs::ApiResult<Json> createService(Runtime& rt, const Params& p);
ecs::ApiResult<Json> updateService(Runtime& rt, const Params& p);
ecs::ApiResult<Json> deleteService(Runtime& rt, const Params& p);
ecs::ApiResult<Json> describeServices(Runtime& rt, const Params& p);
ecs::ApiResult<Json> listServices(Runtime& rt, const Params& p);

}  // namespace taskmesh::runtime::ops
