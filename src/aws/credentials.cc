#include "aws/credentials.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "base/file.h"
#include "base/json.h"
#include "net/http_client.h"

namespace taskmesh::aws {
namespace {

using std::chrono::system_clock;

constexpr auto kRefreshMargin = std::chrono::minutes(5);

Result<std::string> requiredString(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string("container credentials: missing field \"") + key + "\"");
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return makeError(ErrorCode::kInvalidArgument, std::string("container credentials: field \"") +
                                                      key + "\" is not a non-empty string");
  }
  return it->get<std::string>();
}

// The full URI may only name this host or the ECS/EKS credential endpoints, as in the SDKs:
// credentials must not be sent to an arbitrary host over plain http.
bool allowedFullUriHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0 ||
         host == "169.254.170.2" || host == "169.254.170.23" || host == "fd00:ec2::23";
}

std::string snippet(const std::string& body) {
  return body.size() > 200 ? body.substr(0, 200) + "..." : body;
}

std::string trimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Result<system_clock::time_point> parseRfc3339(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return makeError(ErrorCode::kInvalidArgument, "invalid time \"" + s + "\"");
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  }
  // system_clock counts nanoseconds in 64 bits: years past 2262 would overflow.
  if (tm.tm_year < 1970 || tm.tm_year > 2200) {
    return makeError(ErrorCode::kInvalidArgument, "time out of range \"" + s + "\"");
  }
  if (pos + 1 != s.size() || (s[pos] != 'Z' && s[pos] != 'z') || tm.tm_mon < 1 || tm.tm_mon > 12 ||
      tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return makeError(ErrorCode::kInvalidArgument, "invalid UTC time \"" + s + "\"");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return system_clock::from_time_t(timegm(&tm));
}

Result<ExpiringCredentials> parseContainerCredentials(std::string_view json) {
  auto parsed = parseJsonBounded(json);
  if (!parsed || !parsed->is_object()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "container credentials: response is not a JSON object");
  }
  ExpiringCredentials out;
  auto id = requiredString(*parsed, "AccessKeyId");
  if (!id) return makeError(id.error());
  auto secret = requiredString(*parsed, "SecretAccessKey");
  if (!secret) return makeError(secret.error());
  out.credentials.accessKeyId = std::move(*id);
  out.credentials.secretAccessKey = std::move(*secret);
  if (parsed->contains("Token") && !(*parsed)["Token"].is_null()) {
    auto token = requiredString(*parsed, "Token");
    if (!token) return makeError(token.error());
    out.credentials.sessionToken = std::move(*token);
  }
  if (parsed->contains("Expiration") && !(*parsed)["Expiration"].is_null()) {
    auto text = requiredString(*parsed, "Expiration");
    if (!text) return makeError(text.error());
    auto when = parseRfc3339(*text);
    if (!when) {
      return makeError(ErrorCode::kInvalidArgument,
                       "container credentials: field \"Expiration\": " + when.error().message);
    }
    out.expiration = *when;
  }
  return out;
}

CredentialProvider::CredentialProvider(AwsEnvironment environment,
                                       std::chrono::milliseconds timeout)
    : env_(std::move(environment)), timeout_(timeout) {}

std::string CredentialProvider::source() const {
  if (!env_.accessKeyId.empty() || !env_.secretAccessKey.empty()) return "environment";
  if (!env_.containerCredentialsRelativeUri.empty()) {
    return std::string(kEcsCredentialsEndpoint) + env_.containerCredentialsRelativeUri;
  }
  if (!env_.containerCredentialsFullUri.empty()) return env_.containerCredentialsFullUri;
  return "none";
}

Result<Credentials> CredentialProvider::get(std::chrono::steady_clock::time_point deadline) {
  if (cached_ &&
      (!cached_->expiration || system_clock::now() + kRefreshMargin < *cached_->expiration)) {
    return cached_->credentials;
  }
  auto timeout = timeout_;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      return makeError(ErrorCode::kTimeout, "no time left to fetch credentials from " + source());
    }
    timeout = std::min(timeout, remaining);
  }
  auto fetched = fetch(timeout);
  if (!fetched) return makeError(fetched.error());
  cached_ = std::move(*fetched);
  return cached_->credentials;
}

Result<std::string> CredentialProvider::containerAuthorization() const {
  if (!env_.containerAuthorizationToken.empty()) return env_.containerAuthorizationToken;
  if (env_.containerAuthorizationTokenFile.empty()) return std::string();
  auto token = readFile(env_.containerAuthorizationTokenFile);
  if (!token) {
    return makeError(ErrorCode::kInvalidArgument,
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: " + token.error().message);
  }
  return trimRight(std::move(*token));
}

Result<ExpiringCredentials> CredentialProvider::fetch(std::chrono::milliseconds timeout) const {
  if (!env_.accessKeyId.empty() || !env_.secretAccessKey.empty()) {
    if (env_.accessKeyId.empty() || env_.secretAccessKey.empty()) {
      return makeError(ErrorCode::kInvalidArgument,
                       env_.accessKeyId.empty()
                           ? "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"
                           : "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    return ExpiringCredentials{{env_.accessKeyId, env_.secretAccessKey, env_.sessionToken}, {}};
  }
  std::string url;
  if (!env_.containerCredentialsRelativeUri.empty()) {
    if (env_.containerCredentialsRelativeUri[0] != '/') {
      return makeError(ErrorCode::kInvalidArgument,
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
    }
    url = std::string(kEcsCredentialsEndpoint) + env_.containerCredentialsRelativeUri;
  } else if (!env_.containerCredentialsFullUri.empty()) {
    url = env_.containerCredentialsFullUri;
    auto parsed = net::parseHttpUrl(url);
    if (!parsed) {
      return makeError(ErrorCode::kInvalidArgument,
                       "AWS_CONTAINER_CREDENTIALS_FULL_URI: " + parsed.error().message);
    }
    if (!allowedFullUriHost(parsed->host)) {
      return makeError(ErrorCode::kInvalidArgument,
                       "AWS_CONTAINER_CREDENTIALS_FULL_URI host \"" + parsed->host +
                           "\" is not allowed: use a loopback address or 169.254.170.2");
    }
  } else {
    return makeError(ErrorCode::kInvalidArgument,
                     "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run "
                     "in an ECS task with a task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)");
  }
  auto authorization = containerAuthorization();
  if (!authorization) return makeError(authorization.error());
  net::HttpClientRequest request;
  request.url = url;
  request.timeout = timeout;
  request.maxResponseBytes = size_t{64} * 1024;
  request.headers.emplace_back("Accept", "application/json");
  if (!authorization->empty()) request.headers.emplace_back("Authorization", *authorization);
  auto response = net::httpRequest(request);
  if (!response) return makeError(response.error());
  if (response->status != 200) {
    return makeError(
        response->status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument,
        "container credentials endpoint " + url + " returned HTTP " +
            std::to_string(response->status) + ": " + snippet(response->body));
  }
  auto creds = parseContainerCredentials(response->body);
  if (!creds) {
    return makeError(creds.error().code, creds.error().message + " (from " + url + ")");
  }
  return creds;
}

}  // namespace taskmesh::aws
