#pragma once
// `taskmesh task-definition`: writes the mesh task definition for an app (mesh_task.h), or the
// server's, as RegisterTaskDefinition JSON that `aws ecs register-task-definition
// --cli-input-json file://...` takes unchanged.
//
//   taskmesh task-definition -app APP.json -mesh-config MESH.json [-image I]
//                            [-server-service taskmesh-server] [-o OUT]
//   taskmesh task-definition -server [-image I] [-family taskmesh-server]
//                            [-default-intention-policy allow|deny] [-o OUT]
//
// Exit codes: 0 written; 2 bad flags, unreadable or invalid input (the message names the file
// and the field); 1 the output could not be written.

#include <string>

#include "up/mesh_task.h"

namespace taskmesh::up {

struct TaskDefinitionOptions {
  std::string appFile;           // -app
  std::string meshConfigFile;    // -mesh-config
  bool server = false;           // -server
  std::string outFile;           // -o ("" = stdout)
  MeshTaskOptions mesh;          // -image, -server-service
  ServerTaskOptions serverTask;  // -image, -family, -default-intention-policy
};

int runTaskDefinition(const TaskDefinitionOptions& options);

}  // namespace taskmesh::up
