// State-file JSON for the runtime's records. nlohmann's macros keep this in one translation
// unit: each record round-trips every member, and a member missing from an older file keeps
// its default (the _WITH_DEFAULT forms).
#include "runtime/records.h"

#include <algorithm>
#include <optional>

namespace nlohmann {
template <>
struct adl_serializer<std::optional<int>> {
  static void to_json(json& j, const std::optional<int>& v) { j = v ? json(*v) : json(nullptr); }
  static void from_json(const json& j, std::optional<int>& v) {
    v = j.is_null() ? std::nullopt : std::optional<int>(j.get<int>());
  }
};
}  // namespace nlohmann

namespace taskmesh::runtime {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ClusterRecord, name, status, createdAt)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TaskDefinitionRecord, family, revision, status,
                                                registeredAt, deregisteredAt, document, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TimelineEvent, at, subject, event, detail)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ContainerRecord, name, runtimeId, uuid, metadataId,
                                                essential, lastStatus, desiredStatus, exitCode,
                                                reason, hasHealthCheck, healthStatus, healthSince,
                                                healthExitCode, healthOutput, createdAt, startedAt,
                                                finishedAt, pid)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    TaskRecord, id, cluster, family, revision, group, startedBy, serviceName, launchType,
    lastStatus, desiredStatus, healthStatus, stopCode, stoppedReason, version, createdAt,
    pullStartedAt, pullStoppedAt, startedAt, stoppingAt, executionStoppedAt, stoppedAt,
    connectivityAt, attachmentId, attachmentStatus, subnetId, ipv4, macAddress, gateway, subnetCidr,
    overrides, tags, containers, timeline)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DeploymentRecord, id, status, taskDefinitionArn,
                                                family, revision, desiredCount, failedTasks,
                                                rolloutState, rolloutStateReason, createdAt,
                                                updatedAt)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ServiceEvent, id, createdAt, message)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ServiceRecord, name, cluster, status, family,
                                                revision, desiredCount, maximumPercent,
                                                minimumHealthyPercent, launchType, propagateTags,
                                                networkConfiguration, tags, createdAt, deployments,
                                                events, consecutiveFailedStarts, nextLaunchAt)

std::string ipHostLabel(const std::string& ipv4) {
  std::string label = "ip-" + ipv4;
  std::replace(label.begin(), label.end(), '.', '-');
  return label;
}

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ContainerRecord* TaskRecord::container(const std::string& name) {
  for (auto& c : containers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const ContainerRecord* TaskRecord::container(const std::string& name) const {
  for (const auto& c : containers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

nlohmann::json toStateJson(const ClusterRecord& r) { return r; }
nlohmann::json toStateJson(const TaskDefinitionRecord& r) { return r; }
nlohmann::json toStateJson(const TaskRecord& r) { return r; }
nlohmann::json toStateJson(const ServiceRecord& r) { return r; }
void fromStateJson(const nlohmann::json& j, ClusterRecord& r) { j.get_to(r); }
void fromStateJson(const nlohmann::json& j, TaskDefinitionRecord& r) { j.get_to(r); }
void fromStateJson(const nlohmann::json& j, TaskRecord& r) { j.get_to(r); }
void fromStateJson(const nlohmann::json& j, ServiceRecord& r) { j.get_to(r); }

}  // namespace taskmesh::runtime
