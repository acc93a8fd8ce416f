#include "aws/ecs_client.h"

#include <algorithm>
#include <set>

#include "aws/json_fields.h"
#include "base/json.h"
#include "net/http_client.h"

namespace taskmesh::aws {
namespace {

using detail::optionalArray;
using detail::optionalString;
using detail::requiredString;

constexpr size_t kMaxPages = 100;
constexpr size_t kDescribeBatch = 100;

bool isSimplePath(std::string_view path) {
  return std::all_of(path.begin(), path.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' ||
           c == '.' || c == '~';
  });
}

bool isThrottling(std::string_view type) {
  static const std::set<std::string_view> kTypes = {"ThrottlingException",
                                                    "ThrottledException",
                                                    "TooManyRequestsException",
                                                    "RequestLimitExceeded",
                                                    "RequestThrottledException",
                                                    "ProvisionedThroughputExceeded",
                                                    "SlowDown",
                                                    "ServerException",
                                                    "ServiceUnavailable",
                                                    "RequestTimeoutException",
                                                    "InternalFailure"};
  return kTypes.contains(type);
}

// An ECS error answer as a clear message: operation, error type, message, status, endpoint.
Error ecsError(std::string_view operation, const net::HttpClientResponse& response,
               const std::string& endpoint) {
  std::string type = response.header("x-amzn-errortype");
  std::string message;
  if (auto body = parseJsonBounded(response.body); body && body->is_object()) {
    if (auto t = optionalString(*body, "__type", ""); t && !t->empty()) type = *t;
    if (auto m = optionalString(*body, "message", ""); m && !m->empty()) {
      message = *m;
    } else if (auto m2 = optionalString(*body, "Message", ""); m2) {
      message = *m2;
    }
  } else {
    message = response.body.substr(0, 200);
  }
  // botocore: the code is what follows the last '#' (and precedes any ':').
  if (size_t hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  if (size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
  ErrorCode code = ErrorCode::kInvalidArgument;
  if (response.status >= 500 || isThrottling(type)) {
    code = ErrorCode::kUnavailable;
  } else if (type == "ClusterNotFoundException" || type == "ServiceNotFoundException") {
    code = ErrorCode::kNotFound;
  }
  std::string text = "ECS " + std::string(operation) +
                     " failed: " + (type.empty() ? std::string("error") : type) +
                     (message.empty() ? "" : ": " + message) + " (HTTP " +
                     std::to_string(response.status) + " from " + endpoint;
  if (auto id = response.header("x-amzn-requestid"); !id.empty()) text += ", request id " + id;
  return Error{code, text + ")"};
}

Result<EcsContainer> parseContainer(const nlohmann::json& c, const std::string& where) {
  if (!c.is_object()) return makeError(ErrorCode::kInvalidArgument, where + " is not an object");
  EcsContainer out;
  auto name = requiredString(c, "name", where);
  if (!name) return makeError(name.error());
  auto status = optionalString(c, "lastStatus", where);
  if (!status) return makeError(status.error());
  out.name = std::move(*name);
  out.lastStatus = std::move(*status);
  auto interfaces = optionalArray(c, "networkInterfaces", where);
  if (!interfaces) return makeError(interfaces.error());
  for (size_t i = 0; i < (*interfaces)->size(); ++i) {
    const auto& n = (**interfaces)[i];
    std::string at = where + ".networkInterfaces[" + std::to_string(i) + "]";
    if (!n.is_object()) return makeError(ErrorCode::kInvalidArgument, at + " is not an object");
    auto ip = optionalString(n, "privateIpv4Address", at);
    if (!ip) return makeError(ip.error());
    if (!ip->empty()) out.privateIpv4Addresses.push_back(std::move(*ip));
  }
  return out;
}

Result<EcsAttachment> parseAttachment(const nlohmann::json& a, const std::string& where) {
  if (!a.is_object()) return makeError(ErrorCode::kInvalidArgument, where + " is not an object");
  EcsAttachment out;
  auto type = optionalString(a, "type", where);
  if (!type) return makeError(type.error());
  auto status = optionalString(a, "status", where);
  if (!status) return makeError(status.error());
  out.type = std::move(*type);
  out.status = std::move(*status);
  auto details = optionalArray(a, "details", where);
  if (!details) return makeError(details.error());
  for (size_t i = 0; i < (*details)->size(); ++i) {
    const auto& d = (**details)[i];
    std::string at = where + ".details[" + std::to_string(i) + "]";
    if (!d.is_object()) return makeError(ErrorCode::kInvalidArgument, at + " is not an object");
    auto name = optionalString(d, "name", at);
    if (!name) return makeError(name.error());
    auto value = optionalString(d, "value", at);
    if (!value) return makeError(value.error());
    out.details.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

Result<EcsTask> parseTask(const nlohmann::json& t, const std::string& where) {
  if (!t.is_object()) return makeError(ErrorCode::kInvalidArgument, where + " is not an object");
  EcsTask out;
  auto arn = requiredString(t, "taskArn", where);
  if (!arn) return makeError(arn.error());
  auto last = optionalString(t, "lastStatus", where);
  if (!last) return makeError(last.error());
  auto desired = optionalString(t, "desiredStatus", where);
  if (!desired) return makeError(desired.error());
  out.taskArn = std::move(*arn);
  out.lastStatus = std::move(*last);
  out.desiredStatus = std::move(*desired);
  auto containers = optionalArray(t, "containers", where);
  if (!containers) return makeError(containers.error());
  for (size_t i = 0; i < (*containers)->size(); ++i) {
    auto c = parseContainer((**containers)[i], where + ".containers[" + std::to_string(i) + "]");
    if (!c) return makeError(c.error());
    out.containers.push_back(std::move(*c));
  }
  auto attachments = optionalArray(t, "attachments", where);
  if (!attachments) return makeError(attachments.error());
  for (size_t i = 0; i < (*attachments)->size(); ++i) {
    auto a = parseAttachment((**attachments)[i], where + ".attachments[" + std::to_string(i) + "]");
    if (!a) return makeError(a.error());
    out.attachments.push_back(std::move(*a));
  }
  return out;
}

Result<std::vector<EcsFailure>> parseFailures(const nlohmann::json& body) {
  auto failures = optionalArray(body, "failures", "");
  if (!failures) return makeError(failures.error());
  std::vector<EcsFailure> out;
  for (size_t i = 0; i < (*failures)->size(); ++i) {
    const auto& f = (**failures)[i];
    std::string at = "failures[" + std::to_string(i) + "]";
    if (!f.is_object()) return makeError(ErrorCode::kInvalidArgument, at + " is not an object");
    auto arn = optionalString(f, "arn", at);
    auto reason = optionalString(f, "reason", at);
    auto detail = optionalString(f, "detail", at);
    for (const auto* r : {&arn, &reason, &detail}) {
      if (!*r) return makeError(r->error());
    }
    out.push_back(EcsFailure{*arn, *reason, *detail});
  }
  return out;
}

Error withPrefix(const Error& e, const std::string& prefix) {
  return Error{e.code, prefix + e.message};
}

}  // namespace

std::string EcsAttachment::detail(std::string_view name) const {
  for (const auto& [n, v] : details) {
    if (n == name) return v;
  }
  return "";
}

std::string defaultEcsEndpoint(std::string_view region) {
  std::string suffix = region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com";
  return "https://ecs." + std::string(region) + suffix;
}

Result<DescribeTasksResult> parseDescribeTasks(const nlohmann::json& body) {
  if (!body.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "response is not a JSON object");
  }
  DescribeTasksResult out;
  auto tasks = optionalArray(body, "tasks", "");
  if (!tasks) return makeError(tasks.error());
  for (size_t i = 0; i < (*tasks)->size(); ++i) {
    auto t = parseTask((**tasks)[i], "tasks[" + std::to_string(i) + "]");
    if (!t) return makeError(t.error());
    out.tasks.push_back(std::move(*t));
  }
  auto failures = parseFailures(body);
  if (!failures) return makeError(failures.error());
  out.failures = std::move(*failures);
  return out;
}

Result<EcsClient> EcsClient::create(EcsClientConfig config) {
  auto url = net::parseHttpUrl(config.endpoint);
  if (!url) return makeError(ErrorCode::kInvalidArgument, "ECS endpoint: " + url.error().message);
  if (url->target.find('?') != std::string::npos || !isSimplePath(url->target)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "ECS endpoint \"" + config.endpoint +
                         "\": the path may only hold letters, digits, '/', '-', '_', '.', '~'");
  }
  if (config.region.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "ECS client: the signing region is empty");
  }
  if (config.requestTimeout.count() <= 0) {
    return makeError(ErrorCode::kInvalidArgument, "ECS client: request timeout must be positive");
  }
  std::string host = url->hostHeader();
  std::string path = url->target;
  std::string scheme = url->tls ? "https://" : "http://";
  return EcsClient(std::move(config), host, scheme + host + path, path);
}

Result<nlohmann::json> EcsClient::call(std::string_view operation, const nlohmann::json& body,
                                       const Credentials& credentials, Deadline deadline) const {
  const std::string prefix = "ECS " + std::string(operation) + ": ";
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (remaining.count() <= 0) {
    return makeError(ErrorCode::kTimeout, prefix + "no time left for a request to " + url_);
  }
  SignableRequest signable;
  signable.method = "POST";
  signable.path = path_;
  signable.headers = {{"Host", hostHeader_},
                      {"X-Amz-Target", std::string(kEcsTargetPrefix) + std::string(operation)},
                      {"Content-Type", std::string(kEcsContentType)}};
  signable.body = body.dump();
  auto signedOk =
      signRequest(signable, credentials, config_.region, "ecs", std::chrono::system_clock::now());
  if (!signedOk) return makeError(withPrefix(signedOk.error(), prefix));
  net::HttpClientRequest request;
  request.method = "POST";
  request.url = url_;
  request.headers = std::move(signable.headers);
  request.body = std::move(signable.body);
  request.timeout = std::min(config_.requestTimeout, remaining);
  auto response = net::httpRequest(request);
  if (!response) return makeError(withPrefix(response.error(), prefix));
  if (response->status < 200 || response->status > 299) {
    return makeError(ecsError(operation, *response, config_.endpoint));
  }
  auto parsed = parseJsonBounded(response->body);
  if (!parsed || !parsed->is_object()) {
    return makeError(ErrorCode::kInvalidArgument,
                     prefix + "response from " + config_.endpoint + " is not a JSON object");
  }
  return std::move(*parsed);
}

Result<std::vector<std::string>> EcsClient::listTasks(const ListTasksRequest& request,
                                                      const Credentials& credentials,
                                                      Deadline deadline) const {
  std::vector<std::string> arns;
  std::string nextToken;
  for (size_t page = 0; page < kMaxPages; ++page) {
    nlohmann::json body = nlohmann::json::object();
    if (!request.cluster.empty()) body["cluster"] = request.cluster;
    if (!request.serviceName.empty()) body["serviceName"] = request.serviceName;
    if (!request.family.empty()) body["family"] = request.family;
    if (!request.desiredStatus.empty()) body["desiredStatus"] = request.desiredStatus;
    if (!nextToken.empty()) body["nextToken"] = nextToken;
    auto response = call("ListTasks", body, credentials, deadline);
    if (!response) return makeError(response.error());
    auto list = optionalArray(*response, "taskArns", "");
    auto token = optionalString(*response, "nextToken", "");
    if (!list || !token) {
      const Error& e = !list ? list.error() : token.error();
      return makeError(e.code,
                       "ECS ListTasks: response from " + config_.endpoint + ": " + e.message);
    }
    for (size_t i = 0; i < (*list)->size(); ++i) {
      const auto& arn = (**list)[i];
      if (!arn.is_string()) {
        return makeError(ErrorCode::kInvalidArgument, "ECS ListTasks: response from " +
                                                          config_.endpoint + ": taskArns[" +
                                                          std::to_string(i) + "] is not a string");
      }
      arns.push_back(arn.get<std::string>());
    }
    if (token->empty()) return arns;
    if (*token == nextToken) {
      return makeError(ErrorCode::kInvalidArgument,
                       "ECS ListTasks: " + config_.endpoint + " returned the same nextToken again");
    }
    nextToken = std::move(*token);
  }
  return makeError(ErrorCode::kInvalidArgument,
                   "ECS ListTasks: more than " + std::to_string(kMaxPages) + " pages of tasks");
}

Result<DescribeTasksResult> EcsClient::describeTasks(const std::string& cluster,
                                                     const std::vector<std::string>& tasks,
                                                     const Credentials& credentials,
                                                     Deadline deadline) const {
  DescribeTasksResult out;
  for (size_t start = 0; start < tasks.size(); start += kDescribeBatch) {
    size_t end = std::min(tasks.size(), start + kDescribeBatch);
    nlohmann::json body = nlohmann::json::object();
    if (!cluster.empty()) body["cluster"] = cluster;
    body["tasks"] = std::vector<std::string>(tasks.begin() + static_cast<ptrdiff_t>(start),
                                             tasks.begin() + static_cast<ptrdiff_t>(end));
    auto response = call("DescribeTasks", body, credentials, deadline);
    if (!response) return makeError(response.error());
    auto batch = parseDescribeTasks(*response);
    if (!batch) {
      return makeError(batch.error().code, "ECS DescribeTasks: response from " + config_.endpoint +
                                               ": " + batch.error().message);
    }
    for (auto& t : batch->tasks) out.tasks.push_back(std::move(t));
    for (auto& f : batch->failures) out.failures.push_back(std::move(f));
  }
  return out;
}

}  // namespace taskmesh::aws
