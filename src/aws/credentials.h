#pragma once
// AWS credentials, resolved in the order the AWS SDKs use inside an ECS task:
//   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
//   2. the ECS container credentials endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (relative
//      to http://169.254.170.2), else AWS_CONTAINER_CREDENTIALS_FULL_URI (a loopback or ECS/EKS
//      link-local http URL), with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as Authorization.
// Secrets never appear in error messages or logs.
//
// Threads: a CredentialProvider is used from one thread (it caches without a lock).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "aws/environment.h"
#include "aws/sigv4.h"
#include "base/result.h"

namespace taskmesh::aws {

inline constexpr std::string_view kEcsCredentialsEndpoint = "http://169.254.170.2";

struct ExpiringCredentials {
  Credentials credentials;
  std::optional<std::chrono::system_clock::time_point> expiration;  // none: long-term keys
};

// Parses the container credentials endpoint's JSON ({"AccessKeyId", "SecretAccessKey", "Token",
// "Expiration": "2024-01-01T06:00:00Z", ...}). Errors name the missing or mistyped field.
Result<ExpiringCredentials> parseContainerCredentials(std::string_view json);

// Parses an RFC 3339 UTC time ("2024-01-01T06:00:00Z", fractional seconds allowed).
Result<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

// Errors: kInvalidArgument when nothing (or only half of a key pair) is configured or an
// endpoint answers 4xx or malformed JSON; transport errors (kUnavailable, kTimeout) and 5xx are
// kUnavailable/kTimeout, worth retrying.
class CredentialProvider {
 public:
  explicit CredentialProvider(AwsEnvironment environment,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Cached credentials until 5 minutes before they expire; then they are fetched again, the
  // fetch bounded by the constructor's timeout and by `deadline`.
  Result<Credentials> get(std::chrono::steady_clock::time_point deadline);
  Result<Credentials> get() { return get(std::chrono::steady_clock::time_point::max()); }

  // Where credentials come from, for messages: "environment", or the endpoint URL.
  std::string source() const;

 private:
  Result<ExpiringCredentials> fetch(std::chrono::milliseconds timeout) const;
  Result<std::string> containerAuthorization() const;

  AwsEnvironment env_;
  std::chrono::milliseconds timeout_;
  std::optional<ExpiringCredentials> cached_;
};

}  // namespace taskmesh::aws
