#pragma once
// Client of the ECS API's JSON 1.1 protocol (reference/ecs.md §7–8): POST / with
// X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>, Content-Type
// application/x-amz-json-1.1, signed with SigV4 (service "ecs"). Only the operations the init
// commands need: ListTasks (every page) and DescribeTasks (in batches of 100).
//
// Errors: ECS error bodies ({"__type", "message"}) become messages naming the operation, the
// error type and the endpoint. Codes say what the caller may do about them:
//   kUnavailable / kTimeout   transport failure, HTTP 5xx, throttling: worth retrying;
//   kNotFound                 ClusterNotFoundException, ServiceNotFoundException;
//   kInvalidArgument          any other client error (bad credentials, bad parameter, a
//                             malformed response).
// Threads: an EcsClient is immutable; calls block the calling thread up to their deadline.

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/sigv4.h"
#include "base/result.h"

namespace taskmesh::aws {

inline constexpr std::string_view kEcsTargetPrefix = "AmazonEC2ContainerServiceV20141113.";
inline constexpr std::string_view kEcsContentType = "application/x-amz-json-1.1";

using Deadline = std::chrono::steady_clock::time_point;

struct EcsClientConfig {
  std::string endpoint;                             // "http://host[:port][/]"
  std::string region;                               // signing region
  std::chrono::milliseconds requestTimeout{10000};  // per HTTP request (also capped by deadlines)
};

struct ListTasksRequest {
  std::string cluster;
  std::string serviceName;
  std::string family;
  std::string desiredStatus = "RUNNING";
};

struct EcsContainer {
  std::string name;
  std::string lastStatus;
  std::vector<std::string> privateIpv4Addresses;  // networkInterfaces[].privateIpv4Address
};

struct EcsAttachment {
  std::string type;    // "ElasticNetworkInterface" for awsvpc tasks
  std::string status;  // ATTACHED, ...
  std::vector<std::pair<std::string, std::string>> details;  // {name, value}
  // Value of the detail `name` ("privateIPv4Address"), or "".
  std::string detail(std::string_view name) const;
};

struct EcsTask {
  std::string taskArn;
  std::string lastStatus;
  std::string desiredStatus;
  std::vector<EcsContainer> containers;
  std::vector<EcsAttachment> attachments;
};

struct EcsFailure {
  std::string arn;
  std::string reason;  // e.g. "MISSING"
  std::string detail;
};

struct DescribeTasksResult {
  std::vector<EcsTask> tasks;
  std::vector<EcsFailure> failures;
};

// "https://ecs.<region>.amazonaws.com" (".amazonaws.com.cn" for cn- regions).
std::string defaultEcsEndpoint(std::string_view region);

// Decodes a DescribeTasks response body; errors name the field.
Result<DescribeTasksResult> parseDescribeTasks(const nlohmann::json& body);

class EcsClient {
 public:
  // Validates the endpoint (plain http; the path may only be "/" or a simple prefix) and region.
  static Result<EcsClient> create(EcsClientConfig config);

  // Task ARNs matching `request`, following nextToken through every page (at most 100 pages).
  Result<std::vector<std::string>> listTasks(const ListTasksRequest& request,
                                             const Credentials& credentials,
                                             Deadline deadline) const;

  // Describes `tasks` (IDs or ARNs), 100 per call.
  Result<DescribeTasksResult> describeTasks(const std::string& cluster,
                                            const std::vector<std::string>& tasks,
                                            const Credentials& credentials,
                                            Deadline deadline) const;

  // One call: the JSON body of a 2xx answer, or the error described above.
  Result<nlohmann::json> call(std::string_view operation, const nlohmann::json& body,
                              const Credentials& credentials, Deadline deadline) const;

  const std::string& endpoint() const { return config_.endpoint; }

 private:
  EcsClient(EcsClientConfig config, std::string hostHeader, std::string url, std::string path)
      : config_(std::move(config)),
        hostHeader_(std::move(hostHeader)),
        url_(std::move(url)),
        path_(std::move(path)) {}

  EcsClientConfig config_;
  std::string hostHeader_;
  std::string url_;   // endpoint with its path, where requests are POSTed
  std::string path_;  // the path alone, for signing
};

}  // namespace taskmesh::aws
