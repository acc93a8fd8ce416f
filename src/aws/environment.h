#pragma once
// The environment variables the AWS clients read, captured once as a value so that tests can
// build their own instead of changing the process environment.

#include <string>

namespace taskmesh::aws {

struct AwsEnvironment {
  std::string accessKeyId;                      // AWS_ACCESS_KEY_ID
  std::string secretAccessKey;                  // AWS_SECRET_ACCESS_KEY
  std::string sessionToken;                     // AWS_SESSION_TOKEN
  std::string containerCredentialsRelativeUri;  // AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  std::string containerCredentialsFullUri;      // AWS_CONTAINER_CREDENTIALS_FULL_URI
  std::string containerAuthorizationToken;      // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string containerAuthorizationTokenFile;  // AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
  std::string region;                           // AWS_REGION, else AWS_DEFAULT_REGION
  std::string endpointUrlEcs;                   // AWS_ENDPOINT_URL_ECS
  std::string endpointUrl;                      // AWS_ENDPOINT_URL
  std::string metadataUriV4;                    // ECS_CONTAINER_METADATA_URI_V4

  // Reads the variables above from the process environment (unset and empty are alike).
  static AwsEnvironment fromProcess();
};

}  // namespace taskmesh::aws
