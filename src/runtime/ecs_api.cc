// The ECS API: dispatch, clusters and task definitions (tasks and services are in
// ecs_api_tasks.cc; the contract is in ecs_api.h).
#include "runtime/ecs_api.h"

#include <algorithm>
#include <map>

#include "base/json.h"
#include "base/log.h"
#include "ecs/task_definition.h"
#include "runtime/ecs_json.h"
#include "runtime/ecs_operations.h"
#include "runtime/ecs_params.h"

namespace taskmesh::runtime {
namespace detail {

ecs::ApiResult<Page> paginate(const std::vector<std::string>& items, const Params& params) {
  TM_ECS_TRY(auto max, params.integer("maxResults", 100, 1, 100));
  TM_ECS_TRY(auto token, params.str("nextToken"));
  size_t offset = 0;
  if (!token.empty()) {
    if (token.size() > 9 || !std::all_of(token.begin(), token.end(), ::isdigit)) {
      return ecs::invalidParameter("Invalid nextToken.");
    }
    offset = std::min(items.size(), static_cast<size_t>(std::stoul(token)));
  }
  Page page;
  size_t end = std::min(items.size(), offset + static_cast<size_t>(max));
  page.items.assign(items.begin() + static_cast<long>(offset),
                    items.begin() + static_cast<long>(end));
  if (end < items.size()) page.nextToken = std::to_string(end);
  return page;
}

ecs::ApiResult<json> validTags(const Params& params) {
  TM_ECS_TRY(auto tags, params.value("tags", json::array()));
  if (tags.size() > 50) return ecs::invalidParameter("tags: at most 50 tags are allowed.");
  for (const auto& t : tags) {
    if (!t.is_object() || !t.contains("key") || !t["key"].is_string() ||
        (t.contains("value") && !t["value"].is_string())) {
      return ecs::invalidParameter("tags must be a list of {key, value} strings.");
    }
    auto key = t["key"].get<std::string>();
    if (key.empty() || key.size() > 128) {
      return ecs::invalidParameter("Tag keys must be between 1 and 128 characters.");
    }
    if (t.value("value", "").size() > 256) {
      return ecs::invalidParameter("Tag values must be at most 256 characters.");
    }
    if (key.rfind("aws:", 0) == 0) {
      return ecs::invalidParameter("Tag keys with the aws: prefix are reserved.");
    }
  }
  return tags;
}

ecs::ApiResult<ClusterRecord*> requireCluster(Registry& registry, const Params& params) {
  TM_ECS_TRY(auto name, params.str("cluster"));
  auto* c = registry.activeCluster(name);
  if (!c) return ecs::apiError("ClusterNotFoundException", "Cluster not found.");
  return c;
}

}  // namespace detail

using detail::Params;
using nlohmann::json;

namespace {

constexpr std::string_view kTargetPrefix = "AmazonEC2ContainerServiceV20141113.";

net::HttpResponse errorResponse(const ecs::ApiError& e) {
  json body = {{"__type", e.type}, {"message", e.message}};
  auto r = net::HttpResponse::json(dumpJson(body), e.type == "ServerException" ? 500 : 400);
  r.contentType = "application/x-amz-json-1.1";
  return r;
}

// --- clusters

ecs::ApiResult<json> createCluster(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto name, p.str("clusterName"));
  if (name.empty()) name = "default";
  if (!detail::validName(name, 255)) {
    return ecs::invalidParameter(
        "Cluster name can contain only letters, numbers, hyphens and underscores, up to 255.");
  }
  TM_ECS_TRY(auto tags, detail::validTags(p));
  auto& c = rt.registry().createCluster(name, nowSeconds());
  json j = clusterJson(rt.registry(), c);
  j["tags"] = tags;
  return json{{"cluster", j}};
}

ecs::ApiResult<json> describeClusters(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto names, p.strings("clusters"));
  if (names.empty()) names.push_back("default");
  json out = {{"clusters", json::array()}, {"failures", json::array()}};
  for (const auto& n : names) {
    if (auto* c = rt.registry().anyCluster(n)) {
      out["clusters"].push_back(clusterJson(rt.registry(), *c));
    } else {
      std::string arn = n.rfind("arn:", 0) == 0 ? n : rt.registry().arns().cluster(n);
      out["failures"].push_back({{"arn", arn}, {"reason", "MISSING"}});
    }
  }
  return out;
}

ecs::ApiResult<json> listClusters(Runtime& rt, const Params& p) {
  std::vector<std::string> arns;
  for (const auto& [name, c] : rt.registry().clusters()) {
    if (c.status == "ACTIVE") arns.push_back(rt.registry().arns().cluster(name));
  }
  TM_ECS_TRY(auto page, detail::paginate(arns, p));
  json out = {{"clusterArns", page.items}};
  if (!page.nextToken.empty()) out["nextToken"] = page.nextToken;
  return out;
}

ecs::ApiResult<json> deleteCluster(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto name, p.str("cluster", true));
  auto* c = rt.registry().activeCluster(name);
  if (!c) return ecs::apiError("ClusterNotFoundException", "Cluster not found.");
  for (const auto& [_, s] : rt.registry().services()) {
    if (s.cluster == c->name && s.status != "INACTIVE") {
      return ecs::apiError("ClusterContainsServicesException",
                           "The Cluster cannot be deleted while Services are active.");
    }
  }
  for (const auto& [_, t] : rt.registry().tasks()) {
    if (t.cluster == c->name && !t.stopped()) {
      return ecs::apiError("ClusterContainsTasksException",
                           "The Cluster cannot be deleted while Tasks are active.");
    }
  }
  c->status = "INACTIVE";
  rt.registry().changed();
  return json{{"cluster", clusterJson(rt.registry(), *c)}};
}

// --- task definitions

ecs::ApiResult<json> registerTaskDefinition(Runtime& rt, const json& body) {
  auto parsed = ecs::parseTaskDefinition(body);
  if (!parsed) return std::unexpected(parsed.error());
  TaskDefinitionRecord rec{.family = parsed->family,
                           .revision = 0,
                           .status = "ACTIVE",
                           .registeredAt = nowSeconds(),
                           .deregisteredAt = 0,
                           .document = parsed->document,
                           .tags = parsed->tags};
  auto& stored = rt.registry().addTaskDefinition(std::move(rec));
  return json{{"taskDefinition", taskDefinitionJson(rt.registry(), stored)}, {"tags", stored.tags}};
}

ecs::ApiResult<TaskDefinitionRecord*> findTaskDefinition(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto ref, p.str("taskDefinition", true));
  auto* d = rt.registry().taskDefinition(ref);
  if (!d) return ecs::clientError("Unable to describe task definition.");
  return d;
}

ecs::ApiResult<json> describeTaskDefinition(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto* d, findTaskDefinition(rt, p));
  json out = {{"taskDefinition", taskDefinitionJson(rt.registry(), *d)}};
  if (p.includes("TAGS")) out["tags"] = d->tags;
  return out;
}

ecs::ApiResult<json> deregisterTaskDefinition(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto ref, p.str("taskDefinition", true));
  if (lastArnSegment(ref).find(':') == std::string::npos) {
    return ecs::clientError(
        "The specified task definition identifier is invalid. Specify a "
        "valid name or ARN and revision.");
  }
  auto* d = rt.registry().taskDefinition(ref);
  if (!d) return ecs::clientError("The specified task definition does not exist.");
  if (d->status == "ACTIVE") {
    d->status = "INACTIVE";
    d->deregisteredAt = nowSeconds();
    rt.registry().changed();
  }
  return json{{"taskDefinition", taskDefinitionJson(rt.registry(), *d)}};
}

ecs::ApiResult<std::string> statusFilter(const Params& p, const char* fallback, bool allowAll) {
  TM_ECS_TRY(auto status, p.str("status"));
  if (status.empty()) return std::string(fallback);
  if (status != "ACTIVE" && status != "INACTIVE" && !(allowAll && status == "ALL")) {
    return ecs::invalidParameter("status must be ACTIVE or INACTIVE" +
                                 std::string(allowAll ? " or ALL." : "."));
  }
  return status;
}

ecs::ApiResult<json> listTaskDefinitions(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto prefix, p.str("familyPrefix"));
  TM_ECS_TRY(auto status, statusFilter(p, "ACTIVE", false));
  TM_ECS_TRY(auto sort, p.str("sort"));
  if (!sort.empty() && sort != "ASC" && sort != "DESC") {
    return ecs::invalidParameter("sort must be ASC or DESC.");
  }
  std::vector<std::string> arns;
  for (const auto& [family, revs] : rt.registry().taskDefinitions()) {
    if (!prefix.empty() && family.rfind(prefix, 0) != 0) continue;
    for (const auto& [rev, d] : revs) {
      if (d.status == status) arns.push_back(rt.registry().arns().taskDefinition(family, rev));
    }
  }
  if (sort == "DESC") std::reverse(arns.begin(), arns.end());
  TM_ECS_TRY(auto page, detail::paginate(arns, p));
  json out = {{"taskDefinitionArns", page.items}};
  if (!page.nextToken.empty()) out["nextToken"] = page.nextToken;
  return out;
}

ecs::ApiResult<json> listTaskDefinitionFamilies(Runtime& rt, const Params& p) {
  TM_ECS_TRY(auto prefix, p.str("familyPrefix"));
  TM_ECS_TRY(auto status, statusFilter(p, "ACTIVE", true));
  std::vector<std::string> families;
  for (const auto& [family, revs] : rt.registry().taskDefinitions()) {
    if (!prefix.empty() && family.rfind(prefix, 0) != 0) continue;
    bool anyActive = std::any_of(revs.begin(), revs.end(),
                                 [](const auto& r) { return r.second.status == "ACTIVE"; });
    if (status == "ALL" || (status == "ACTIVE") == anyActive) families.push_back(family);
  }
  TM_ECS_TRY(auto page, detail::paginate(families, p));
  json out = {{"families", page.items}};
  if (!page.nextToken.empty()) out["nextToken"] = page.nextToken;
  return out;
}

using Operation = ecs::ApiResult<json> (*)(Runtime&, const json&);

template <ecs::ApiResult<json> (*F)(Runtime&, const Params&)>
ecs::ApiResult<json> withParams(Runtime& rt, const json& body) {
  return F(rt, Params(body));
}

const std::map<std::string, Operation, std::less<>>& operations() {
  static const std::map<std::string, Operation, std::less<>> ops = {
      {"CreateCluster", withParams<createCluster>},
      {"DescribeClusters", withParams<describeClusters>},
      {"ListClusters", withParams<listClusters>},
      {"DeleteCluster", withParams<deleteCluster>},
      {"RegisterTaskDefinition", registerTaskDefinition},
      {"DescribeTaskDefinition", withParams<describeTaskDefinition>},
      {"DeregisterTaskDefinition", withParams<deregisterTaskDefinition>},
      {"ListTaskDefinitions", withParams<listTaskDefinitions>},
      {"ListTaskDefinitionFamilies", withParams<listTaskDefinitionFamilies>},
      {"RunTask", withParams<ops::runTask>},
      {"StopTask", withParams<ops::stopTask>},
      {"ListTasks", withParams<ops::listTasks>},
      {"DescribeTasks", withParams<ops::describeTasks>},
      {"CreateService", withParams<ops::createService>},
      {"UpdateService", withParams<ops::updateService>},
      {"DeleteService", withParams<ops::deleteService>},
      {"DescribeServices", withParams<ops::describeServices>},
      {"ListServices", withParams<ops::listServices>},
  };
  return ops;
}

}  // namespace

net::HttpResponse EcsApi::handle(const net::HttpRequest& request) {
  try {
    if (request.method == "GET") return handleInternal(request);
    if (request.method == "POST" && (request.path == "/" || request.path.empty())) {
      return handleOperation(request);
    }
    return net::HttpResponse::text(404, "not found: " + request.method + " " + request.path);
  } catch (const std::exception& e) {  // a broken invariant; the runtime stays up
    log::get("ecs")->error("request {} {} failed: {}", request.method, request.path, e.what());
    return errorResponse({"ServerException", std::string("internal error: ") + e.what()});
  }
}

net::HttpResponse EcsApi::handleOperation(const net::HttpRequest& request) {
  std::string target = request.header("x-amz-target");
  if (target.rfind(kTargetPrefix, 0) != 0) {
    return errorResponse({"UnknownOperationException",
                          "X-Amz-Target must be AmazonEC2ContainerServiceV20141113.<Operation>"});
  }
  std::string name = target.substr(kTargetPrefix.size());
  auto it = operations().find(name);
  if (it == operations().end()) {
    return errorResponse({"UnknownOperationException", "Unknown operation " + name});
  }
  if (access_ == ApiAccess::kReadOnly && name.rfind("Describe", 0) != 0 &&
      name.rfind("List", 0) != 0) {
    return errorResponse({"AccessDeniedException",
                          name + " is not served on the task network; only Describe* and List* "
                                 "operations are"});
  }
  auto body = parseJsonBounded(request.body.empty() ? "{}" : request.body);
  if (!body || !body->is_object()) {
    return errorResponse(
        {"SerializationException", "the request body is not a JSON object: " +
                                       (body ? std::string("wrong type") : body.error().message)});
  }
  auto result = it->second(runtime_, *body);
  if (!result) {
    log::get("ecs")->debug("{} -> {}: {}", name, result.error().type, result.error().message);
    return errorResponse(result.error());
  }
  auto r = net::HttpResponse::json(dumpJson(*result));
  r.contentType = "application/x-amz-json-1.1";
  return r;
}

}  // namespace taskmesh::runtime
