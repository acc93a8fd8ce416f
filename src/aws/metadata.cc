#include "aws/metadata.h"

#include "aws/json_fields.h"
#include "base/json.h"
#include "net/http_client.h"

namespace taskmesh::aws {
namespace {

using detail::optionalArray;
using detail::optionalString;
using detail::requiredString;

Result<std::vector<std::string>> parseAddresses(const nlohmann::json& network,
                                                const std::string& where) {
  auto addresses = optionalArray(network, "IPv4Addresses", where);
  if (!addresses) return makeError(addresses.error());
  std::vector<std::string> out;
  for (size_t i = 0; i < (*addresses)->size(); ++i) {
    const auto& a = (**addresses)[i];
    if (!a.is_string()) {
      return makeError(ErrorCode::kInvalidArgument,
                       where + ".IPv4Addresses[" + std::to_string(i) + "] is not a string");
    }
    out.push_back(a.get<std::string>());
  }
  return out;
}

Result<ContainerMetadata> parseContainer(const nlohmann::json& c, const std::string& where) {
  if (!c.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, where + " is not an object");
  }
  ContainerMetadata out;
  auto name = requiredString(c, "Name", where);
  auto dockerId = optionalString(c, "DockerId", where);
  auto status = optionalString(c, "KnownStatus", where);
  auto type = optionalString(c, "Type", where);
  for (const auto* r : {&name, &dockerId, &status, &type}) {
    if (!*r) return makeError(r->error());
  }
  out.name = *name;
  out.dockerId = *dockerId;
  out.knownStatus = *status;
  out.type = *type;
  auto networks = optionalArray(c, "Networks", where);
  if (!networks) return makeError(networks.error());
  for (size_t i = 0; i < (*networks)->size(); ++i) {
    const auto& n = (**networks)[i];
    std::string at = where + ".Networks[" + std::to_string(i) + "]";
    if (!n.is_object()) return makeError(ErrorCode::kInvalidArgument, at + " is not an object");
    auto addresses = parseAddresses(n, at);
    if (!addresses) return makeError(addresses.error());
    out.ipv4Addresses.insert(out.ipv4Addresses.end(), addresses->begin(), addresses->end());
  }
  return out;
}

Error prefixed(const Error& e, const std::string& prefix) {
  return Error{e.code, prefix + e.message};
}

}  // namespace

std::string TaskMetadata::taskIpv4() const {
  for (const auto& c : containers) {
    if (!c.ipv4Addresses.empty()) return c.ipv4Addresses.front();
  }
  return "";
}

Result<Arn> parseArn(std::string_view arn) {
  // arn:partition:service:region:account:resource (the resource may contain ':').
  std::vector<std::string> parts;
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) {
    size_t colon = arn.find(':', pos);
    if (colon == std::string_view::npos) {
      return makeError(ErrorCode::kInvalidArgument, "invalid ARN \"" + std::string(arn) + "\"");
    }
    parts.emplace_back(arn.substr(pos, colon - pos));
    pos = colon + 1;
  }
  Arn out{parts[1], parts[2], parts[3], parts[4], std::string(arn.substr(pos))};
  if (parts[0] != "arn" || out.partition.empty() || out.service.empty() || out.resource.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "invalid ARN \"" + std::string(arn) + "\"");
  }
  return out;
}

Result<TaskMetadata> parseTaskMetadata(std::string_view json) {
  const std::string prefix = "task metadata: ";
  auto parsed = parseJsonBounded(json);
  if (!parsed) return makeError(prefixed(parsed.error(), prefix));
  if (!parsed->is_object()) {
    return makeError(ErrorCode::kInvalidArgument, prefix + "response is not a JSON object");
  }
  const auto& j = *parsed;
  TaskMetadata out;
  auto cluster = requiredString(j, "Cluster", "");
  auto taskArn = requiredString(j, "TaskARN", "");
  auto family = optionalString(j, "Family", "");
  auto revision = optionalString(j, "Revision", "");
  auto zone = optionalString(j, "AvailabilityZone", "");
  auto status = optionalString(j, "KnownStatus", "");
  for (const auto* r : {&cluster, &taskArn, &family, &revision, &zone, &status}) {
    if (!*r) return makeError(prefixed(r->error(), prefix));
  }
  out.cluster = *cluster;
  out.taskArn = *taskArn;
  out.family = *family;
  out.revision = *revision;
  out.availabilityZone = *zone;
  out.knownStatus = *status;
  auto containers = optionalArray(j, "Containers", "");
  if (!containers) return makeError(prefixed(containers.error(), prefix));
  for (size_t i = 0; i < (*containers)->size(); ++i) {
    auto c = parseContainer((**containers)[i], "Containers[" + std::to_string(i) + "]");
    if (!c) return makeError(prefixed(c.error(), prefix));
    out.containers.push_back(std::move(*c));
  }
  return out;
}

Result<TaskMetadata> fetchTaskMetadata(const std::string& metadataUri,
                                       std::chrono::milliseconds timeout) {
  if (metadataUri.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "ECS_CONTAINER_METADATA_URI_V4 is not set");
  }
  std::string url = metadataUri;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/task";
  net::HttpClientRequest request;
  request.url = url;
  request.timeout = timeout;
  request.maxResponseBytes = 1 << 20;
  auto response = net::httpRequest(request);
  if (!response) return makeError(response.error());
  if (response->status != 200) {
    std::string body = response->body.substr(0, 200);
    return makeError(
        response->status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument,
        "task metadata endpoint " + url + " returned HTTP " + std::to_string(response->status) +
            ": " + body);
  }
  auto metadata = parseTaskMetadata(response->body);
  if (!metadata) {
    return makeError(metadata.error().code, metadata.error().message + " (from " + url + ")");
  }
  return metadata;
}

}  // namespace taskmesh::aws
