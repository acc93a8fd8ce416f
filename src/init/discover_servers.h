#pragma once
// `taskmesh discover-servers` (DESIGN.md §2, T0): asks the ECS API for the server task, waits
// until a RUNNING task of the server service (or family) has the server container with a
// private IPv4, and writes that IP + "\n" atomically to -out. Unlike consul-ecs v0.1 (1 s
// constant retry, forever, Tasks[0] only) it tries at once, backs off from 100 ms doubling to
// 2 s with jitter, looks at every task, and gives up after -timeout with a message that says
// what it last saw.
//
// Threads: runs on the calling thread; every request and every sleep is bounded by -timeout.

#include <chrono>
#include <string>

#include "aws/environment.h"
#include "base/result.h"

namespace taskmesh::init {

struct DiscoverServersOptions {
  std::string cluster;                      // -cluster: default from the task metadata endpoint
  std::string serviceName;                  // -service-name: the server's ECS service
  std::string family;                       // -family: the server's task definition family
  std::string container = "consul-server";  // -container: the server container's name
  std::string out = "/taskmesh/server-ip";  // -out
  std::string timeout = "5m";               // -timeout (Go duration)
  std::string endpoint;  // -endpoint: else AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL, the default
  std::string region;    // -region: else AWS_REGION, AWS_DEFAULT_REGION, the task/cluster ARN
  std::string logLevel = "info";  // -log-level

  // Retry pacing (not flags; tests shorten them). Each wait is drawn from [d/2, d].
  std::chrono::milliseconds initialBackoff{100};
  std::chrono::milliseconds maxBackoff{2000};
  std::chrono::milliseconds requestTimeout{10000};  // per HTTP request, capped by -timeout
};

// What was found: the IP to write and the task it belongs to.
struct ServerAddress {
  std::string ip;
  std::string taskArn;
};

// The whole discovery without the file write. Errors: kInvalidArgument for bad flags or
// configuration and for ECS client errors that retrying cannot fix; kNotFound for an unknown
// cluster or service; kTimeout when -timeout passes, naming what was missing and what was last
// seen.
Result<ServerAddress> discoverServer(const DiscoverServersOptions& options,
                                     const aws::AwsEnvironment& environment);

// The command: discovers, writes the file, logs. Returns the exit code: 0 written, 1 otherwise.
int runDiscoverServers(const DiscoverServersOptions& options,
                       const aws::AwsEnvironment& environment);
// As above, with the process environment.
int runDiscoverServers(const DiscoverServersOptions& options);

}  // namespace taskmesh::init
