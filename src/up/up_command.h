#pragma once
// `taskmesh up DIR`: the whole mesh on the local runtime with one command (DESIGN.md §1).
//
//   taskmesh up examples/hello [-api-addr 127.0.0.1:4566] [-data-dir DIR] [-subnet CIDR]
//                              [-timeout 3m] [-report FILE] [-image host]
//
// 1. Loads DIR/stack.json (stack.h) and expands every task definition: bad input stops here.
// 2. Uses the ECS runtime answering at -api-addr, or starts `taskmesh ecs` there (data in
//    -data-dir, else a temporary directory removed at the end; its log in <data-dir>/ecs.log).
// 3. Creates the cluster, registers the server's and every app's task definition and creates
//    their services (the server's first); all tasks start at once, as on ECS: app tasks wait
//    in discover-servers until the server task runs.
// 4. Waits (bounded by -timeout) until every service has desiredCount tasks RUNNING and
//    passing in the catalog, then prints each task's T0–T4 (phases.h) and how to send a request
//    through the mesh. It keeps printing tasks that start later (replacements, rolling
//    updates) and tasks that stop. -report FILE: the same as JSON, rewritten atomically on
//    every change ({"ready", "readyAt", "cluster", "serverAddr", "services", "tasks"}).
// 5. On SIGINT/SIGTERM: deletes the app services and waits until their tasks are STOPPED,
//    then the server's, then the cluster; stops the runtime if it started it. Each wait is
//    bounded; whatever does not stop in time is reported.
//
// Exit codes: 0 stopped cleanly after a signal; 1 the mesh did not become ready in time or a
// call failed (everything started is stopped first); 2 bad flags or stack.
// Threads: the calling thread runs everything except the catalog watches (catalog_watch.h).

#include <string>

namespace taskmesh::up {

struct UpOptions {
  std::string dir;                         // positional
  std::string apiAddr = "127.0.0.1:4566";  // -api-addr
  std::string dataDir;                     // -data-dir ("" = a temporary directory)
  std::string subnet;                      // -subnet ("" = the runtime's default)
  std::string timeout = "3m";              // -timeout: until ready
  std::string reportFile;                  // -report
  std::string image = "host";              // -image of the mesh containers
  std::string logLevel = "info";           // -log-level
};

int runUp(const UpOptions& options);

}  // namespace taskmesh::up
