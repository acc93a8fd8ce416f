#pragma once
// Client of the ECS task metadata endpoint v4 (reference/ecs.md §6): GET
// ${ECS_CONTAINER_METADATA_URI_V4}/task, and the ARN parsing used to learn the region.
//
// Threads: plain functions; fetchTaskMetadata blocks the calling thread up to its timeout.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace taskmesh::aws {

struct ContainerMetadata {
  std::string name;         // Name
  std::string dockerId;     // DockerId
  std::string knownStatus;  // KnownStatus
  std::string type;         // Type ("NORMAL"; internal containers such as "CNI_PAUSE")
  std::vector<std::string> ipv4Addresses;  // Networks[].IPv4Addresses[], in order
};

struct TaskMetadata {
  std::string cluster;  // Cluster: a short name (EC2) or a cluster ARN (Fargate)
  std::string taskArn;  // TaskARN
  std::string family;   // Family
  std::string revision;
  std::string availabilityZone;
  std::string knownStatus;
  std::vector<ContainerMetadata> containers;

  // The task's IPv4 address: the first container address, as consul-ecs reads it
  // (Containers[0].Networks[0].IPv4Addresses[0], skipping containers without one); "" if none.
  std::string taskIpv4() const;
};

// arn:<partition>:<service>:<region>:<account>:<resource>
struct Arn {
  std::string partition;
  std::string service;
  std::string region;
  std::string account;
  std::string resource;  // e.g. "task/demo/0123..." or "cluster/demo"
};

// Errors name the input; empty region is allowed by the format and reported as such by callers.
Result<Arn> parseArn(std::string_view arn);

// Validates and decodes a /task response. Cluster and TaskARN are required; every other field
// is optional but must have the documented type. Errors name the field ("Containers[1].Name").
Result<TaskMetadata> parseTaskMetadata(std::string_view json);

// GETs `metadataUri` + "/task". Errors name the URL; HTTP 5xx and transport errors are
// kUnavailable/kTimeout (worth retrying), anything else kInvalidArgument.
Result<TaskMetadata> fetchTaskMetadata(const std::string& metadataUri,
                                       std::chrono::milliseconds timeout);

}  // namespace taskmesh::aws
