#include "up/stack.h"

#include <filesystem>
#include <set>

#include "base/json.h"

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

Error stackError(const std::string& file, const std::string& what) {
  return Error{ErrorCode::kInvalidArgument, file + ": " + what};
}

// A string member; required ones must be non-empty.
Result<std::string> stringMember(const json& obj, const std::string& file, const std::string& path,
                                 const char* key, bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return makeError(stackError(file, path + key + ": missing"));
    return std::string();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return makeError(stackError(file, path + key + ": expected a non-empty string"));
  }
  return it->get<std::string>();
}

Result<void> rejectUnknown(const json& obj, const std::string& file, const std::string& path,
                           const std::set<std::string>& known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!known.contains(it.key())) {
      return makeError(stackError(file, path + it.key() + ": unknown field"));
    }
  }
  return {};
}

Result<StackService> loadService(const json& s, const std::string& dir, const std::string& file,
                                 size_t i, const Stack& stack, const std::string& image) {
  std::string path = "services[" + std::to_string(i) + "].";
  if (!s.is_object()) return makeError(stackError(file, path + ": expected an object"));
  if (auto ok = rejectUnknown(s, file, path,
                              {"name", "taskDefinition", "meshConfig", "desiredCount", "public"});
      !ok) {
    return makeError(ok.error());
  }
  StackService out;
  auto name = stringMember(s, file, path, "name", true);
  if (!name) return makeError(name.error());
  out.name = *name;
  auto tdFile = stringMember(s, file, path, "taskDefinition", true);
  if (!tdFile) return makeError(tdFile.error());
  auto meshFile = stringMember(s, file, path, "meshConfig", true);
  if (!meshFile) return makeError(meshFile.error());
  if (auto it = s.find("desiredCount"); it != s.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 100) {
      return makeError(stackError(file, path + "desiredCount: expected an integer 0..100"));
    }
    out.desiredCount = it->get<int>();
  }
  if (auto it = s.find("public"); it != s.end()) {
    if (!it->is_boolean()) return makeError(stackError(file, path + "public: expected a boolean"));
    out.isPublic = it->get<bool>();
  }
  auto app = readJsonFile(dir + "/" + *tdFile);
  if (!app) return makeError(app.error());
  auto mesh = readJsonFile(dir + "/" + *meshFile);
  if (!mesh) return makeError(mesh.error());
  MeshTaskOptions options;
  options.image = image;
  options.serverService = stack.serverService;
  auto expanded = expandMeshTask(*app, *mesh, options);
  if (!expanded) {
    return makeError(stackError(dir + "/" + *tdFile + " + " + *meshFile, expanded.error().message));
  }
  out.taskDefinition = std::move(*expanded);
  out.family = out.taskDefinition.value("family", "");
  out.appPort = (*mesh)["service"]["port"].get<int>();  // validated by the expansion
  out.catalogName = (*mesh)["service"].value("name", out.family);
  return out;
}

}  // namespace

Result<Stack> loadStack(const std::string& dir, const std::string& image) {
  const std::string file = dir + "/stack.json";
  auto j = readJsonFile(file);
  if (!j) return makeError(j.error());
  if (!j->is_object()) return makeError(stackError(file, "expected a JSON object"));
  if (auto ok = rejectUnknown(*j, file, "", {"cluster", "server", "services"}); !ok) {
    return makeError(ok.error());
  }
  Stack stack;
  stack.dir = dir;
  auto cluster = stringMember(*j, file, "", "cluster", true);
  if (!cluster) return makeError(cluster.error());
  stack.cluster = *cluster;
  ServerTaskOptions server;
  server.image = image;
  if (auto it = j->find("server"); it != j->end()) {
    if (!it->is_object()) return makeError(stackError(file, "server: expected an object"));
    if (auto ok = rejectUnknown(*it, file, "server.", {"service", "defaultIntentionPolicy"}); !ok) {
      return makeError(ok.error());
    }
    auto service = stringMember(*it, file, "server.", "service", false);
    if (!service) return makeError(service.error());
    if (!service->empty()) stack.serverService = server.family = *service;
    auto policy = stringMember(*it, file, "server.", "defaultIntentionPolicy", false);
    if (!policy) return makeError(policy.error());
    if (!policy->empty()) server.defaultIntentionPolicy = *policy;
  }
  auto serverDef = serverTaskDefinition(server);
  if (!serverDef) return makeError(stackError(file, "server: " + serverDef.error().message));
  stack.serverTaskDefinition = std::move(*serverDef);
  auto services = j->find("services");
  if (services == j->end() || !services->is_array() || services->empty()) {
    return makeError(stackError(file, "services: expected a non-empty array"));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < services->size(); ++i) {
    auto s = loadService((*services)[i], dir, file, i, stack, image);
    if (!s) return makeError(s.error());
    if (!names.insert(s->name).second || s->name == stack.serverService) {
      return makeError(stackError(
          file, "services[" + std::to_string(i) + "].name: \"" + s->name + "\" is used twice"));
    }
    stack.services.push_back(std::move(*s));
  }
  return stack;
}

}  // namespace taskmesh::up
