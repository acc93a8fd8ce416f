#include "aws/environment.h"

#include <cstdlib>

namespace taskmesh::aws {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace

AwsEnvironment AwsEnvironment::fromProcess() {
  AwsEnvironment e;
  e.accessKeyId = env("AWS_ACCESS_KEY_ID");
  e.secretAccessKey = env("AWS_SECRET_ACCESS_KEY");
  e.sessionToken = env("AWS_SESSION_TOKEN");
  e.containerCredentialsRelativeUri = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  e.containerCredentialsFullUri = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  e.containerAuthorizationToken = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  e.containerAuthorizationTokenFile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  e.region = env("AWS_REGION");
  if (e.region.empty()) e.region = env("AWS_DEFAULT_REGION");
  e.endpointUrlEcs = env("AWS_ENDPOINT_URL_ECS");
  e.endpointUrl = env("AWS_ENDPOINT_URL");
  e.metadataUriV4 = env("ECS_CONTAINER_METADATA_URI_V4");
  return e;
}

}  // namespace taskmesh::aws
