#include "runtime/registry.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "base/file.h"
#include "base/json.h"
#include "base/log.h"

namespace taskmesh::runtime {
namespace {

constexpr const char* kStateFile = "state.json";
constexpr int kStateVersion = 1;

std::string serviceKey(const std::string& cluster, const std::string& name) {
  return cluster + "/" + name;
}

}  // namespace

double nowSeconds() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return static_cast<double>(ms) / 1000.0;
}

std::string lastArnSegment(const std::string& ref) {
  if (ref.rfind("arn:", 0) != 0) return ref;
  auto slash = ref.rfind('/');
  return slash == std::string::npos ? ref : ref.substr(slash + 1);
}

std::string clusterName(const std::string& nameOrArn) {
  if (nameOrArn.empty()) return "default";
  return lastArnSegment(nameOrArn);
}

Registry::Registry(asio::io_context& io, std::string dataDir, ArnScheme arns)
    : io_(io), dataDir_(std::move(dataDir)), arns_(std::move(arns)) {}

Result<std::unique_ptr<Registry>> Registry::open(asio::io_context& io, std::string dataDir,
                                                 ArnScheme arns) {
  std::unique_ptr<Registry> r(new Registry(io, std::move(dataDir), std::move(arns)));
  auto loaded = r->load();
  if (!loaded) return makeError(loaded.error());
  return r;
}

Result<void> Registry::load() {
  std::string path = dataDir_ + "/" + kStateFile;
  std::error_code fsErr;
  if (!std::filesystem::exists(path, fsErr)) return {};
  auto text = readFile(path);
  if (!text) return makeError(text.error());
  // Stored request members (task definition documents, overrides) sit a few levels deeper
  // here than in the request that passed the API's depth limit.
  auto doc = parseJsonBounded(*text, kMaxJsonDepth + 16);
  if (!doc) return makeError(ErrorCode::kInvalidArgument, path + ": " + doc.error().message);
  try {
    if (doc->value("version", 0) != kStateVersion) {
      return makeError(ErrorCode::kInvalidArgument, path + ": unsupported state version (want " +
                                                        std::to_string(kStateVersion) + ")");
    }
    for (const auto& j : doc->at("clusters")) {
      ClusterRecord c;
      fromStateJson(j, c);
      clusters_[c.name] = std::move(c);
    }
    for (const auto& j : doc->at("taskDefinitions")) {
      TaskDefinitionRecord t;
      fromStateJson(j, t);
      taskDefinitions_[t.family][t.revision] = std::move(t);
    }
    for (const auto& j : doc->at("tasks")) {
      TaskRecord t;
      fromStateJson(j, t);
      tasks_[t.id] = std::move(t);
    }
    for (const auto& j : doc->at("services")) {
      ServiceRecord s;
      fromStateJson(j, s);
      services_[serviceKey(s.cluster, s.name)] = std::move(s);
    }
  } catch (const nlohmann::json::exception& e) {
    return makeError(ErrorCode::kInvalidArgument,
                     path + ": malformed state: " + std::string(e.what()));
  }
  return {};
}

void Registry::changed() {
  if (savePending_) return;
  savePending_ = true;
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.lock()) return;
    savePending_ = false;
    auto saved = save();
    if (!saved) log::get("ecs")->error("cannot save state: {}", saved.error().message);
  });
}

Result<void> Registry::save() {
  nlohmann::json doc = {{"version", kStateVersion},
                        {"clusters", nlohmann::json::array()},
                        {"taskDefinitions", nlohmann::json::array()},
                        {"tasks", nlohmann::json::array()},
                        {"services", nlohmann::json::array()}};
  for (const auto& [_, c] : clusters_) doc["clusters"].push_back(toStateJson(c));
  for (const auto& [_, revs] : taskDefinitions_) {
    for (const auto& [__, t] : revs) doc["taskDefinitions"].push_back(toStateJson(t));
  }
  for (const auto& [_, t] : tasks_) doc["tasks"].push_back(toStateJson(t));
  for (const auto& [_, s] : services_) doc["services"].push_back(toStateJson(s));
  return writeFileAtomic(dataDir_ + "/" + kStateFile, dumpJson(doc), 0600);
}

ClusterRecord* Registry::anyCluster(const std::string& nameOrArn) {
  auto it = clusters_.find(clusterName(nameOrArn));
  return it == clusters_.end() ? nullptr : &it->second;
}

ClusterRecord* Registry::activeCluster(const std::string& nameOrArn) {
  auto* c = anyCluster(nameOrArn);
  return c && c->status == "ACTIVE" ? c : nullptr;
}

ClusterRecord& Registry::createCluster(const std::string& name, double now) {
  auto& c = clusters_[name];
  if (c.name.empty() || c.status != "ACTIVE") {
    c = ClusterRecord{.name = name, .status = "ACTIVE", .createdAt = now};
  }
  changed();
  return c;
}

TaskDefinitionRecord* Registry::taskDefinition(const std::string& ref) {
  std::string spec = ref;
  if (ref.rfind("arn:", 0) == 0) {
    auto pos = ref.find(":task-definition/");
    if (pos == std::string::npos) return nullptr;
    spec = ref.substr(pos + 17);
  }
  auto colon = spec.rfind(':');
  std::string family = colon == std::string::npos ? spec : spec.substr(0, colon);
  auto fam = taskDefinitions_.find(family);
  if (fam == taskDefinitions_.end()) return nullptr;
  if (colon == std::string::npos) {
    for (auto it = fam->second.rbegin(); it != fam->second.rend(); ++it) {
      if (it->second.status == "ACTIVE") return &it->second;
    }
    return nullptr;
  }
  std::string rev = spec.substr(colon + 1);
  if (rev.empty() || rev.size() > 9 || !std::all_of(rev.begin(), rev.end(), ::isdigit)) {
    return nullptr;
  }
  auto it = fam->second.find(std::stoi(rev));
  return it == fam->second.end() ? nullptr : &it->second;
}

TaskDefinitionRecord& Registry::addTaskDefinition(TaskDefinitionRecord record) {
  auto& revs = taskDefinitions_[record.family];
  record.revision = revs.empty() ? 1 : revs.rbegin()->first + 1;
  int rev = record.revision;
  revs[rev] = std::move(record);
  changed();
  return revs[rev];
}

TaskRecord* Registry::task(const std::string& ref, const std::string& cluster) {
  auto it = tasks_.find(lastArnSegment(ref));
  if (it == tasks_.end()) return nullptr;
  if (!cluster.empty() && it->second.cluster != cluster) return nullptr;
  return &it->second;
}

TaskRecord& Registry::addTask(TaskRecord record) {
  std::string id = record.id;
  tasks_[id] = std::move(record);
  changed();
  return tasks_[id];
}

std::vector<std::string> Registry::expireStopped(double now, double keepSeconds,
                                                 size_t maxStopped) {
  std::vector<std::pair<double, std::string>> stopped;
  for (const auto& [id, t] : tasks_) {
    if (t.stopped()) stopped.emplace_back(t.stoppedAt, id);
  }
  std::sort(stopped.begin(), stopped.end());
  std::vector<std::string> dropped;
  size_t excess = stopped.size() > maxStopped ? stopped.size() - maxStopped : 0;
  for (size_t i = 0; i < stopped.size(); ++i) {
    if (i < excess || stopped[i].first + keepSeconds < now) {
      tasks_.erase(stopped[i].second);
      dropped.push_back(stopped[i].second);
    }
  }
  if (!dropped.empty()) changed();
  return dropped;
}

ServiceRecord* Registry::service(const std::string& cluster, const std::string& nameOrArn) {
  auto it = services_.find(serviceKey(cluster, lastArnSegment(nameOrArn)));
  return it == services_.end() ? nullptr : &it->second;
}

ServiceRecord& Registry::addService(ServiceRecord record) {
  std::string key = serviceKey(record.cluster, record.name);
  services_[key] = std::move(record);
  changed();
  return services_[key];
}

}  // namespace taskmesh::runtime
