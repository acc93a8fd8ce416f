#include "up/task_definition_command.h"

#include <cstdio>

#include "base/file.h"
#include "base/json.h"

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

Result<json> readFlagFile(const std::string& flag, const std::string& path) {
  auto j = readJsonFile(path);
  if (!j) return makeError(ErrorCode::kInvalidArgument, flag + " " + j.error().message);
  return j;
}

Result<json> build(const TaskDefinitionOptions& o) {
  if (o.server) {
    if (!o.appFile.empty() || !o.meshConfigFile.empty()) {
      return makeError(ErrorCode::kInvalidArgument,
                       "-server takes no -app or -mesh-config: the server task has no app");
    }
    return serverTaskDefinition(o.serverTask);
  }
  if (o.appFile.empty() || o.meshConfigFile.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "give -app APP.json and -mesh-config MESH.json (or -server)");
  }
  auto app = readFlagFile("-app", o.appFile);
  if (!app) return makeError(app.error());
  auto mesh = readFlagFile("-mesh-config", o.meshConfigFile);
  if (!mesh) return makeError(mesh.error());
  return expandMeshTask(*app, *mesh, o.mesh);
}

}  // namespace

int runTaskDefinition(const TaskDefinitionOptions& options) {
  auto def = build(options);
  if (!def) {
    std::fprintf(stderr, "taskmesh task-definition: %s\n", def.error().message.c_str());
    return 2;
  }
  std::string text = def->dump(2) + "\n";
  if (options.outFile.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (auto ok = writeFileAtomic(options.outFile, text); !ok) {
    std::fprintf(stderr, "taskmesh task-definition: -o %s: %s\n", options.outFile.c_str(),
                 ok.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace taskmesh::up
