#include "proxy/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace taskmesh::proxy {
namespace {

// A bootstrap file in a fresh temporary directory, removed at the end of the test.
class BootstrapFile {
 public:
  explicit BootstrapFile(const std::string& content) {
    char tmpl[] = "/tmp/taskmesh-proxy-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/bootstrap.json";
    std::ofstream(path_) << content;
  }
  ~BootstrapFile() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

::testing::AssertionResult failsWith(const Result<ProxyConfig>& r, const std::string& fragment) {
  if (r) return ::testing::AssertionFailure() << "succeeded; expected \"" << fragment << "\"";
  if (r.error().message.find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "error \"" << r.error().message << "\" does not contain \"" << fragment << "\"";
  }
  return ::testing::AssertionSuccess();
}

const char* kMeshInitBootstrap = R"({
  "proxyId": "web-abc-sidecar-proxy", "serviceId": "web-abc", "serviceName": "web",
  "agentHttpAddr": "127.0.0.1:8600", "token": "t0k", "adminAddr": "127.0.0.1:19001",
  "publicListenerPort": 20000, "localServicePort": 8080,
  "upstreams": [{"destinationName": "api", "localBindPort": 1234}]
})";

TEST(ProxyOptions, ReadsTheBootstrapFileMeshInitWrites) {
  BootstrapFile f(kMeshInitBootstrap);
  auto c = resolveProxyConfig(ProxyOptions{.bootstrapFile = f.path()}, {});
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->proxyId, "web-abc-sidecar-proxy");
  EXPECT_EQ(c->agentHostPort, "127.0.0.1:8600");
  EXPECT_EQ(c->token, "t0k");
  EXPECT_EQ(c->adminAddr, "127.0.0.1:19001");
  EXPECT_EQ(c->concurrency, 1);
  EXPECT_EQ(c->drainTimeout, std::chrono::seconds(15));
}

TEST(ProxyOptions, FlagsWinOverTheFileAndTheFileOverTheEnvironment) {
  BootstrapFile f(kMeshInitBootstrap);
  ProxyEnvironment env{.consulHttpAddr = "10.0.0.1:8500", .consulHttpToken = "env-token"};
  auto fromFile = resolveProxyConfig(ProxyOptions{.bootstrapFile = f.path()}, env);
  ASSERT_TRUE(fromFile.has_value());
  EXPECT_EQ(fromFile->agentHostPort, "127.0.0.1:8600");
  EXPECT_EQ(fromFile->token, "t0k");
  auto flags = resolveProxyConfig(ProxyOptions{.bootstrapFile = f.path(),
                                               .proxyId = "other",
                                               .httpAddr = "http://127.0.0.2:9000/",
                                               .token = "flag-token",
                                               .adminAddr = "127.0.0.1:0"},
                                  env);
  ASSERT_TRUE(flags.has_value()) << flags.error().message;
  EXPECT_EQ(flags->proxyId, "other");
  EXPECT_EQ(flags->agentHostPort, "127.0.0.2:9000");
  EXPECT_EQ(flags->token, "flag-token");
  EXPECT_EQ(flags->adminAddr, "127.0.0.1:0");
}

TEST(ProxyOptions, FlagsAloneUseTheEnvironmentThenDefaults) {
  ProxyEnvironment env{.consulHttpAddr = "http://10.0.0.1:8501", .consulHttpToken = "env-token"};
  auto c = resolveProxyConfig(ProxyOptions{.proxyId = "p"}, env);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->agentHostPort, "10.0.0.1:8501");
  EXPECT_EQ(c->token, "env-token");
  EXPECT_EQ(c->adminAddr, "127.0.0.1:19000");
  auto d = resolveProxyConfig(ProxyOptions{.proxyId = "p"}, {});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->agentHostPort, "127.0.0.1:8500");
  EXPECT_EQ(d->token, "");
}

TEST(ProxyOptions, BootstrapErrorsNameTheFileAndField) {
  {
    BootstrapFile f("[1, 2]");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}),
                          "bootstrap file " + f.path() + ": expected a JSON object"));
  }
  {
    BootstrapFile f("{\"proxyId\": ");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}), "invalid JSON"));
  }
  {
    BootstrapFile f(R"({"agentHttpAddr": "127.0.0.1:8500"})");
    EXPECT_TRUE(
        failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}), "proxyId: is required"));
  }
  {
    BootstrapFile f(R"({"proxyId": "p"})");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}),
                          "agentHttpAddr: is required"));
  }
  {
    BootstrapFile f(R"({"proxyId": 5, "agentHttpAddr": "127.0.0.1:8500"})");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}),
                          "proxyId: expected a non-empty string"));
  }
  {
    BootstrapFile f(R"({"proxyId": "p", "agentHttpAddr": "127.0.0.1:8500", "token": 7})");
    EXPECT_TRUE(
        failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}), "token: expected a string"));
  }
  {
    BootstrapFile f(R"({"proxyId": "p", "agentHttpAddr": "agent"})");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}),
                          "agentHttpAddr: \"agent\": expected HOST:PORT"));
  }
  {
    BootstrapFile f(R"({"proxyId": "p", "agentHttpAddr": "a:1", "adminAddr": "localhost:1"})");
    EXPECT_TRUE(failsWith(resolveProxyConfig({.bootstrapFile = f.path()}, {}),
                          "adminAddr: \"localhost:1\" must be an IP address and a port"));
  }
  auto missing = resolveProxyConfig({.bootstrapFile = "/nonexistent/bootstrap.json"}, {});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_NE(missing.error().message.find("/nonexistent/bootstrap.json"), std::string::npos);
}

TEST(ProxyOptions, FlagErrorsNameTheFlag) {
  EXPECT_TRUE(failsWith(resolveProxyConfig({}, {}), "-proxy-id or -c BOOTSTRAP is required"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .httpAddr = "https://a:1"}, {}),
                        "-http-addr: \"https://a:1\": https is not supported"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .httpAddr = "a:99999"}, {}),
                        "-http-addr: \"a:99999\": expected HOST:PORT"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .httpAddr = "http://a:1/v1"}, {}),
                        "-http-addr"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p"}, {.consulHttpAddr = "nope"}),
                        "CONSUL_HTTP_ADDR"));
  EXPECT_TRUE(
      failsWith(resolveProxyConfig({.proxyId = "p", .adminAddr = "1.2.3.4"}, {}), "-admin-addr"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .concurrency = 0}, {}),
                        "--concurrency must be 1..64, got 0"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .concurrency = 65}, {}),
                        "--concurrency must be 1..64, got 65"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .drainTimeout = "soon"}, {}),
                        "-drain-timeout"));
  EXPECT_TRUE(failsWith(resolveProxyConfig({.proxyId = "p", .drainTimeout = "0s"}, {}),
                        "-drain-timeout must be positive"));
  auto ok = resolveProxyConfig({.proxyId = "p", .concurrency = 4, .drainTimeout = "250ms"}, {});
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->concurrency, 4);
  EXPECT_EQ(ok->drainTimeout, std::chrono::milliseconds(250));
}

}  // namespace
}  // namespace taskmesh::proxy
