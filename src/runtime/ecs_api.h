#pragma once
// The ECS JSON 1.1 API (shared/reference/ecs.md §7-§8): POST / with
// X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>. Errors are HTTP 400 with
// {"__type", "message"} (500 for ServerException). SigV4 signatures are accepted unverified,
// as local endpoints do; any credentials work.
//
// Also on the same listeners:
//   GET /v4/<metadata-id>[/task|/taskWithTags|/stats|/task/stats]  task metadata v4
//   GET /taskmesh/v1/tasks/<task>/timeline                          `taskmesh ecs timeline`
//   GET /taskmesh/v1/tasks/<task>/logs/<container>                  `taskmesh ecs logs`
//
// Thread: the runtime's io_context thread.

#include "net/http.h"
#include "runtime/runtime.h"

namespace taskmesh::runtime {

class EcsApi {
 public:
  explicit EcsApi(Runtime& runtime) : runtime_(runtime) {}
  net::HttpResponse handle(const net::HttpRequest& request);

 private:
  net::HttpResponse handleOperation(const net::HttpRequest& request);
  net::HttpResponse handleInternal(const net::HttpRequest& request);

  Runtime& runtime_;
};

}  // namespace taskmesh::runtime
