#include "init/discover_servers.h"
#include "base/backoff.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "aws/ecs_client.h"
#include "aws/metadata.h"
#include "base/duration.h"
#include "base/file.h"
#include "base/log.h"

namespace taskmesh::init {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("discover-servers");
  return l;
}

bool retryable(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kTimeout ||
         e.code == ErrorCode::kIo;
}

// ECS names: 1-255 letters, digits, hyphens and underscores.
bool validEcsName(const std::string& s) {
  return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool isIpv4(const std::string& s) {
  in_addr addr{};
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

std::string taskId(const std::string& arn) {
  size_t slash = arn.rfind('/');
  return slash == std::string::npos ? arn : arn.substr(slash + 1);
}

// The outcome of looking at the described tasks: the server, or the most advanced reason why
// none qualifies yet (rank: stopping 0 < not RUNNING 1 < container missing 2 < no IPv4 3).
struct Selection {
  std::optional<ServerAddress> found;
  std::string observation;
  int rank = -1;
};

void note(Selection& s, int rank, std::string text) {
  if (rank > s.rank) {
    s.rank = rank;
    s.observation = std::move(text);
  }
}

// The private IPv4 of `container` in `task`: its network interfaces first, then the task's
// ENI attachment (awsvpc). Invalid addresses are reported, never returned.
std::optional<std::string> privateIpv4(const aws::EcsTask& task, const aws::EcsContainer& c,
                                       std::string& invalid) {
  for (const auto& ip : c.privateIpv4Addresses) {
    if (isIpv4(ip)) return ip;
    invalid = ip;
  }
  for (const auto& a : task.attachments) {
    if (a.type != "ElasticNetworkInterface" && a.type != "eni") continue;
    if (a.status == "DETACHING" || a.status == "DETACHED" || a.status == "DELETED" ||
        a.status == "FAILED") {
      continue;
    }
    std::string ip = a.detail("privateIPv4Address");
    if (isIpv4(ip)) return ip;
    if (!ip.empty()) invalid = ip;
  }
  return std::nullopt;
}

Selection selectServer(const std::vector<aws::EcsTask>& tasks, const std::string& container) {
  Selection s;
  for (const auto& task : tasks) {
    std::string id = "task " + taskId(task.taskArn);
    if (!task.desiredStatus.empty() && task.desiredStatus != "RUNNING") {
      note(s, 0, id + " is stopping (desired status " + task.desiredStatus + ")");
      continue;
    }
    if (task.lastStatus != "RUNNING") {
      note(s, 1, id + " is " + (task.lastStatus.empty() ? "without a status" : task.lastStatus));
      continue;
    }
    auto c = std::find_if(task.containers.begin(), task.containers.end(),
                          [&](const aws::EcsContainer& x) { return x.name == container; });
    if (c == task.containers.end()) {
      std::string names;
      for (const auto& x : task.containers) names.append(names.empty() ? "" : ", ").append(x.name);
      note(s, 2, id + " has no container named " + container + " (it has: " + names + ")");
      continue;
    }
    if (!c->lastStatus.empty() && c->lastStatus != "RUNNING") {
      note(s, 2, "container " + container + " of " + id + " is " + c->lastStatus);
      continue;
    }
    std::string invalid;
    if (auto ip = privateIpv4(task, *c, invalid)) {
      s.found = ServerAddress{*ip, task.taskArn};
      return s;
    }
    note(s, 3,
         "container " + container + " of " + id +
             (invalid.empty() ? " has no private IPv4 yet"
                              : " has no valid private IPv4 (got \"" + invalid + "\")"));
  }
  if (s.rank < 0) s.observation = "ListTasks found no tasks";
  return s;
}

struct Setup {
  std::string cluster;
  std::string region;
  std::string endpoint;
};

// Fetches the task metadata, retrying transient failures with backoff until `deadline`.
Result<aws::TaskMetadata> metadataWithRetries(const DiscoverServersOptions& o,
                                              const aws::AwsEnvironment& env,
                                              Clock::time_point deadline) {
  Backoff backoff(o.initialBackoff, o.maxBackoff);
  for (;;) {
    auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    auto md = aws::fetchTaskMetadata(
        env.metadataUriV4, std::max(milliseconds(1), std::min(o.requestTimeout, remaining)));
    if (md || !retryable(md.error())) return md;
    logger()->info("waiting for the task metadata endpoint reason=\"{}\"", md.error().message);
    if (!backoff.wait(deadline)) {
      return makeError(
          ErrorCode::kTimeout,
          "task metadata endpoint not reachable within -timeout: " + md.error().message);
    }
  }
}

// Cluster, region and endpoint from the flags, the environment and, when needed, the task
// metadata endpoint.
Result<Setup> resolveSetup(const DiscoverServersOptions& o, const aws::AwsEnvironment& env,
                           Clock::time_point deadline) {
  Setup s{o.cluster, o.region.empty() ? env.region : o.region, ""};
  if (s.region.empty() && s.cluster.rfind("arn:", 0) == 0) {
    if (auto arn = aws::parseArn(s.cluster)) s.region = arn->region;
  }
  if (s.cluster.empty() || s.region.empty()) {
    if (env.metadataUriV4.empty()) {
      return makeError(ErrorCode::kInvalidArgument,
                       s.cluster.empty()
                           ? "-cluster is not given and ECS_CONTAINER_METADATA_URI_V4 is not set "
                             "(not running in an ECS task?)"
                           : "the region is unknown: set -region or AWS_REGION");
    }
    auto md = metadataWithRetries(o, env, deadline);
    if (!md) return makeError(md.error());
    if (s.cluster.empty()) s.cluster = md->cluster;
    if (s.region.empty()) {
      auto arn = aws::parseArn(md->taskArn);
      if (!arn || arn->region.empty()) {
        return makeError(ErrorCode::kInvalidArgument,
                         "the region is unknown: TaskARN \"" + md->taskArn +
                             "\" from the task metadata has none; set -region or AWS_REGION");
      }
      s.region = arn->region;
    }
  }
  s.endpoint = !o.endpoint.empty()           ? o.endpoint
               : !env.endpointUrlEcs.empty() ? env.endpointUrlEcs
               : !env.endpointUrl.empty()    ? env.endpointUrl
                                             : aws::defaultEcsEndpoint(s.region);
  return s;
}

Result<milliseconds> validate(const DiscoverServersOptions& o) {
  if (o.serviceName.empty() && o.family.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "one of -service-name or -family is required");
  }
  if (!o.serviceName.empty() && !validEcsName(o.serviceName)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "invalid -service-name \"" + o.serviceName +
                         "\": use 1-255 letters, digits, hyphens and underscores");
  }
  if (!o.family.empty() && !validEcsName(o.family)) {
    return makeError(
        ErrorCode::kInvalidArgument,
        "invalid -family \"" + o.family + "\": use 1-255 letters, digits, hyphens and underscores");
  }
  if (!validEcsName(o.container)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "invalid -container \"" + o.container +
                         "\": use 1-255 letters, digits, hyphens and underscores");
  }
  return parsePositiveDurationFlag("-timeout", o.timeout);
}

std::string describeTarget(const DiscoverServersOptions& o) {
  if (o.family.empty()) return "service " + o.serviceName;
  if (o.serviceName.empty()) return "family " + o.family;
  return "service " + o.serviceName + " (family " + o.family + ")";
}

struct Attempt {
  std::optional<ServerAddress> found;
  std::optional<Error> fatal;
  std::string observation;
  bool answered = false;  // ECS answered; false when the observation is a transient error
};

Attempt attemptOnce(const aws::EcsClient& client, aws::CredentialProvider& credentials,
                    const aws::ListTasksRequest& list, const std::string& container,
                    Clock::time_point deadline) {
  auto outcome = [](const Error& e) {
    return retryable(e) ? Attempt{std::nullopt, std::nullopt, e.message}
                        : Attempt{std::nullopt, e, e.message};
  };
  auto creds = credentials.get(deadline);
  if (!creds) return outcome(creds.error());
  auto arns = client.listTasks(list, *creds, deadline);
  if (!arns) return outcome(arns.error());
  if (arns->empty()) {
    return Attempt{std::nullopt, std::nullopt,
                   "ListTasks found no " + list.desiredStatus + " tasks", true};
  }
  auto described = client.describeTasks(list.cluster, *arns, *creds, deadline);
  if (!described) return outcome(described.error());
  if (described->tasks.empty()) {
    std::string why =
        "DescribeTasks returned none of the " + std::to_string(arns->size()) + " listed tasks";
    if (!described->failures.empty()) {
      const auto& f = described->failures.front();
      why += " (" + taskId(f.arn) + ": " + f.reason + ")";
    }
    return Attempt{std::nullopt, std::nullopt, why, true};
  }
  Selection s = selectServer(described->tasks, container);
  return Attempt{s.found, std::nullopt, s.observation, true};
}

}  // namespace

Result<ServerAddress> discoverServer(const DiscoverServersOptions& options,
                                     const aws::AwsEnvironment& environment) {
  auto timeout = validate(options);
  if (!timeout) return makeError(timeout.error());
  auto deadline = Clock::now() + *timeout;
  auto setup = resolveSetup(options, environment, deadline);
  if (!setup) return makeError(setup.error());
  auto client = aws::EcsClient::create({setup->endpoint, setup->region, options.requestTimeout});
  if (!client) return makeError(client.error());
  aws::CredentialProvider credentials(environment, std::min(options.requestTimeout, *timeout));
  aws::ListTasksRequest list{setup->cluster, options.serviceName, options.family, "RUNNING"};
  std::string target = describeTarget(options);
  logger()->info(
      "looking for the server cluster={} target=\"{}\" container={} endpoint={} credentials={}",
      setup->cluster, target, options.container, setup->endpoint, credentials.source());

  Backoff backoff(options.initialBackoff, options.maxBackoff);
  std::string last;          // what the last attempt saw
  std::string lastAnswered;  // what ECS last answered (kept when a later request fails)
  int attempts = 0;
  do {
    ++attempts;
    Attempt a = attemptOnce(*client, credentials, list, options.container, deadline);
    if (a.found) return *a.found;
    if (a.fatal) return makeError(*a.fatal);
    if (a.observation != last) logger()->info("waiting reason=\"{}\"", a.observation);
    if (a.answered) lastAnswered = a.observation;
    last = std::move(a.observation);
  } while (backoff.wait(deadline));
  if (!lastAnswered.empty() && lastAnswered != last) last += "; ECS last answered: " + lastAnswered;
  return makeError(ErrorCode::kTimeout,
                   "no RUNNING task of " + target + " in cluster " + setup->cluster +
                       " has container " + options.container + " with a private IPv4 after " +
                       formatDuration(*timeout) + " (" + std::to_string(attempts) +
                       " attempts; last: " + last + ")");
}

int runDiscoverServers(const DiscoverServersOptions& options,
                       const aws::AwsEnvironment& environment) {
  if (!log::setLevel(options.logLevel)) {
    logger()->error("invalid -log-level \"{}\"", options.logLevel);
    return 1;
  }
  if (options.out.empty()) {
    logger()->error("-out must name a file");
    return 1;
  }
  auto start = Clock::now();
  auto found = discoverServer(options, environment);
  if (!found) {
    logger()->error("{}", found.error().message);
    return 1;
  }
  if (auto written = writeFileAtomic(options.out, found->ip + "\n"); !written) {
    logger()->error("cannot write the server IP: {}", written.error().message);
    return 1;
  }
  logger()->info(
      "server ip={} task={} out={} elapsed={}", found->ip, found->taskArn, options.out,
      formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)));
  return 0;
}

int runDiscoverServers(const DiscoverServersOptions& options) {
  return runDiscoverServers(options, aws::AwsEnvironment::fromProcess());
}

}  // namespace taskmesh::init
