#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "aws/test_http_server.h"
#include "base/file.h"

namespace taskmesh::aws {
namespace {

using namespace std::chrono_literals;
using testing::TestHttpServer;

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A container credentials endpoint: answers GET /creds, counts calls, records Authorization.
struct CredentialsEndpoint {
  std::atomic<int> calls{0};
  std::mutex mu;  // guards the fields below, shared with the server thread
  std::string authorization;
  std::string expiration = rfc3339(std::chrono::system_clock::now() + std::chrono::hours(6));
  int status = 200;
  std::string body;  // overrides the default answer when not empty

  void answer(int newStatus, std::string newBody) {
    std::lock_guard lock(mu);
    status = newStatus;
    body = std::move(newBody);
  }
  void expireAt(std::chrono::system_clock::time_point t) {
    std::lock_guard lock(mu);
    expiration = rfc3339(t);
  }

  TestHttpServer server{[this](const net::HttpRequest& req) {
    ++calls;
    std::lock_guard lock(mu);
    authorization = req.header("authorization");
    if (req.path != "/creds") return net::HttpResponse::text(404, "no such path");
    if (!body.empty()) return net::HttpResponse::json(body, status);
    return net::HttpResponse::json(
        R"({"RoleArn":"arn:aws:iam::111122223333:role/task","AccessKeyId":"ASIAEXAMPLE",)"
        R"("SecretAccessKey":"secretkey","Token":"sessiontoken","Expiration":")" +
            expiration + R"("})",
        status);
  }};
};

TEST(Credentials, FromEnvironment) {
  AwsEnvironment env;
  env.accessKeyId = "AKIDEXAMPLE";
  env.secretAccessKey = "secret";
  env.sessionToken = "token";
  CredentialProvider provider(env);
  auto c = provider.get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->accessKeyId, "AKIDEXAMPLE");
  EXPECT_EQ(c->secretAccessKey, "secret");
  EXPECT_EQ(c->sessionToken, "token");
  EXPECT_EQ(provider.source(), "environment");
}

TEST(Credentials, HalfAKeyPairOrNothingIsAClearError) {
  AwsEnvironment onlyId;
  onlyId.accessKeyId = "AKIDEXAMPLE";
  auto a = CredentialProvider(onlyId).get();
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(a.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);

  auto none = CredentialProvider(AwsEnvironment{}).get();
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message.find("no AWS credentials"), std::string::npos);
}

TEST(Credentials, ContainerEndpointFullUriWithAuthorizationToken) {
  CredentialsEndpoint endpoint;
  AwsEnvironment env;
  env.containerCredentialsFullUri = endpoint.server.url() + "/creds";
  env.containerAuthorizationToken = "Bearer abc";
  CredentialProvider provider(env);
  auto c = provider.get();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->accessKeyId, "ASIAEXAMPLE");
  EXPECT_EQ(c->secretAccessKey, "secretkey");
  EXPECT_EQ(c->sessionToken, "sessiontoken");
  {
    std::lock_guard lock(endpoint.mu);
    EXPECT_EQ(endpoint.authorization, "Bearer abc");
  }
  // Cached while far from expiry.
  ASSERT_TRUE(provider.get().has_value());
  EXPECT_EQ(endpoint.calls.load(), 1);
  EXPECT_EQ(provider.source(), env.containerCredentialsFullUri);
}

TEST(Credentials, RefetchedWhenCloseToExpiry) {
  CredentialsEndpoint endpoint;
  endpoint.expireAt(std::chrono::system_clock::now() + 2min);
  AwsEnvironment env;
  env.containerCredentialsFullUri = endpoint.server.url() + "/creds";
  CredentialProvider provider(env);
  ASSERT_TRUE(provider.get().has_value());
  ASSERT_TRUE(provider.get().has_value());
  EXPECT_EQ(endpoint.calls.load(), 2);
}

TEST(Credentials, AuthorizationTokenFromFile) {
  CredentialsEndpoint endpoint;
  char dirTemplate[] = "/tmp/taskmesh-creds-XXXXXX";
  ASSERT_NE(mkdtemp(dirTemplate), nullptr);
  std::string path = std::string(dirTemplate) + "/token";
  ASSERT_TRUE(writeFileAtomic(path, "file-token\n").has_value());
  AwsEnvironment env;
  env.containerCredentialsFullUri = endpoint.server.url() + "/creds";
  env.containerAuthorizationTokenFile = path;
  ASSERT_TRUE(CredentialProvider(env).get().has_value());
  {
    std::lock_guard lock(endpoint.mu);
    EXPECT_EQ(endpoint.authorization, "file-token");
  }
  env.containerAuthorizationTokenFile = std::string(dirTemplate) + "/missing";
  auto missing = CredentialProvider(env).get();
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            std::string::npos);
  std::filesystem::remove_all(dirTemplate);
}

TEST(Credentials, EndpointErrorsNameTheUrlOrField) {
  CredentialsEndpoint endpoint;
  AwsEnvironment env;
  env.containerCredentialsFullUri = endpoint.server.url() + "/creds";

  endpoint.answer(500, R"({"code":"InternalError"})");
  auto e500 = CredentialProvider(env).get();
  ASSERT_FALSE(e500.has_value());
  EXPECT_EQ(e500.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(e500.error().message.find(env.containerCredentialsFullUri), std::string::npos);

  endpoint.answer(200, R"({"AccessKeyId":"ASIA","Token":"t"})");
  auto missing = CredentialProvider(env).get();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(missing.error().message.find("SecretAccessKey"), std::string::npos);

  env.containerCredentialsFullUri = endpoint.server.url() + "/other";
  endpoint.answer(200, "");
  auto notFound = CredentialProvider(env).get();
  ASSERT_FALSE(notFound.has_value());
  EXPECT_EQ(notFound.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(notFound.error().message.find("HTTP 404"), std::string::npos);
}

TEST(Credentials, FullUriMustBeLocal) {
  AwsEnvironment env;
  env.containerCredentialsFullUri = "http://10.1.2.3/creds";
  auto remote = CredentialProvider(env).get();
  ASSERT_FALSE(remote.has_value());
  EXPECT_NE(remote.error().message.find("not allowed"), std::string::npos);
  env.containerCredentialsFullUri = "ftp://127.0.0.1/creds";
  auto ftp = CredentialProvider(env).get();
  ASSERT_FALSE(ftp.has_value());
  EXPECT_NE(ftp.error().message.find("AWS_CONTAINER_CREDENTIALS_FULL_URI"), std::string::npos);
}

TEST(Credentials, RelativeUriIsUnderTheEcsEndpoint) {
  AwsEnvironment env;
  env.containerCredentialsRelativeUri = "/v2/credentials/abc";
  env.containerCredentialsFullUri = "http://127.0.0.1:1/ignored";
  EXPECT_EQ(CredentialProvider(env).source(), "http://169.254.170.2/v2/credentials/abc");
  env.containerCredentialsRelativeUri = "v2/credentials/abc";
  auto bad = CredentialProvider(env).get();
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("must start with '/'"), std::string::npos);
}

TEST(Credentials, ParsesRfc3339) {
  auto t = parseRfc3339("2015-08-30T12:36:00Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1440938160);
  EXPECT_TRUE(parseRfc3339("2015-08-30T12:36:00.123Z").has_value());
  for (const char* bad :
       {"", "2015-08-30", "2015-08-30T12:36:00", "2015-08-30T12:36:00+02:00",
        "2015-13-30T12:36:00Z", "2015-08-30T12:36:00Zjunk", "2999-01-01T00:00:00Z"}) {
    EXPECT_FALSE(parseRfc3339(bad).has_value()) << bad;
  }
  auto parsed = parseContainerCredentials(
      R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"yesterday"})");
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().message.find("Expiration"), std::string::npos);
}

}  // namespace
}  // namespace taskmesh::aws
