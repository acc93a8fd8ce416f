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

// Which operations a listener serves. Tasks reach the runtime on the bridge's gateway
// address without any authentication, so there only the read operations (Describe*, List*)
// and the GET views are served: a task can find the server task (discover-servers) but not
// run a privileged container.
enum class ApiAccess { kFull, kReadOnly };

class EcsApi {
 public:
  EcsApi(Runtime& runtime, ApiAccess access) : runtime_(runtime), access_(access) {}
  // Never throws: a failure inside an operation is answered as ServerException.
  net::HttpResponse handle(const net::HttpRequest& request);

 private:
  net::HttpResponse handleOperation(const net::HttpRequest& request);
  net::HttpResponse handleInternal(const net::HttpRequest& request);

  Runtime& runtime_;
  ApiAccess access_;
};

}  // namespace taskmesh::runtime
