#pragma once
// Entry points of `taskmesh ecs` (main.cc dispatches here):
//   taskmesh ecs -data-dir DIR [-api-addr 127.0.0.1:4566] ...   run the runtime
//   taskmesh ecs logs TASK CONTAINER [-api-addr ...]             print a container's log
//   taskmesh ecs timeline TASK [-api-addr ...]                    print a task's timeline

#include <string>

#include "runtime/runtime.h"

namespace taskmesh::runtime {

// Runs until SIGINT/SIGTERM, then stops every task (SIGTERM, SIGKILL after stopTimeout) and
// removes its bridge. Returns the process exit code (1 on a startup error, named on stderr).
int runEcs(const RuntimeOptions& options);

int printLogs(const std::string& apiAddr, const std::string& task, const std::string& container);
int printTimeline(const std::string& apiAddr, const std::string& task);

}  // namespace taskmesh::runtime
