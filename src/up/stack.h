#pragma once
// A stack: what `taskmesh up DIR` runs, read from DIR/stack.json.
//
//   {"cluster": "hello",
//    "server": {"service": "taskmesh-server", "defaultIntentionPolicy": "allow"},
//    "services": [
//      {"name": "backend", "taskDefinition": "backend.task.json",
//       "meshConfig": "backend.mesh.json", "desiredCount": 2},
//      {"name": "frontend", "taskDefinition": "frontend.task.json",
//       "meshConfig": "frontend.mesh.json", "desiredCount": 1, "public": true}]}
//
// Every app task definition is expanded with its mesh config (mesh_task.h) while the stack is
// loaded, so a bad file stops `up` before anything starts. "public": the service's app port
// is reachable from the host at the task's IP (`up` prints how to call it). Errors name the
// file and the field. Thread: any; the result is a plain value.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "base/result.h"
#include "up/mesh_task.h"

namespace taskmesh::up {

struct StackService {
  std::string name;  // ECS service name
  std::string family;
  int desiredCount = 1;
  bool isPublic = false;
  int appPort = 0;                // service.port of the mesh config
  std::string catalogName;        // service.name, or the family
  nlohmann::json taskDefinition;  // expanded, ready for RegisterTaskDefinition
};

struct Stack {
  std::string dir;
  std::string cluster;
  std::string serverService = kDefaultServerFamily;
  nlohmann::json serverTaskDefinition;
  std::vector<StackService> services;
};

// `image`: the image of the mesh containers (and of the server).
Result<Stack> loadStack(const std::string& dir, const std::string& image);

}  // namespace taskmesh::up
