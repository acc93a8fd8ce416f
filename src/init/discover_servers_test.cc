#include "init/discover_servers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>

#include "aws/fake_ecs.h"
#include "aws/test_http_server.h"
#include "base/file.h"

namespace taskmesh::init {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using aws::testing::FakeEcs;
using aws::testing::TestHttpServer;

const aws::Credentials kCreds{"AKIDEXAMPLE", "secret-key", ""};

std::string taskArn(const std::string& region, int i) {
  return "arn:aws:ecs:" + region + ":111122223333:task/demo/" + std::to_string(1000 + i);
}

json task(const std::string& arn, const std::string& lastStatus, const json& containers,
          const std::string& desiredStatus = "RUNNING") {
  return {{"taskArn", arn},
          {"lastStatus", lastStatus},
          {"desiredStatus", desiredStatus},
          {"containers", containers},
          {"attachments", json::array()}};
}

json container(const std::string& name, const std::string& ip = "") {
  json c{{"name", name}, {"lastStatus", "RUNNING"}, {"networkInterfaces", json::array()}};
  if (!ip.empty()) c["networkInterfaces"].push_back({{"privateIpv4Address", ip}});
  return c;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/taskmesh-discover-XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ECS answers with one RUNNING task (us-east-1, number 1) whose consul-server has `ip`.
void serveOneRunningServer(FakeEcs& ecs, const std::string& ip) {
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok({{"taskArns", {taskArn("us-east-1", 1)}}});
  });
  ecs.on("DescribeTasks", [ip](const json&, int) {
    return FakeEcs::ok(
        {{"tasks", json::array({task(taskArn("us-east-1", 1), "RUNNING",
                                     json::array({container("consul-server", ip)}))})}});
  });
}

aws::AwsEnvironment envWithKeys(const std::string& endpoint) {
  aws::AwsEnvironment env;
  env.accessKeyId = kCreds.accessKeyId;
  env.secretAccessKey = kCreds.secretAccessKey;
  env.region = "us-east-1";
  env.endpointUrlEcs = endpoint;
  return env;
}

DiscoverServersOptions fastOptions(const std::string& out) {
  DiscoverServersOptions o;
  o.cluster = "demo";
  o.serviceName = "consul-server";
  o.out = out;
  o.timeout = "10s";
  o.initialBackoff = 5ms;
  o.maxBackoff = 20ms;
  o.requestTimeout = 2000ms;
  return o;
}

// The server service has no task, then a PENDING one, then a RUNNING one whose container has no
// address yet, and finally the address: discover-servers keeps asking (with backoff) and writes
// the IP once it is there.
TEST(DiscoverServers, WaitsUntilARunningTaskHasTheContainerAndAnIp) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int call) {
    json arns = json::array();
    if (call > 0) arns.push_back(taskArn("us-east-1", 1));
    return FakeEcs::ok({{"taskArns", arns}});
  });
  ecs.on("DescribeTasks", [](const json& body, int call) {
    std::string arn = body["tasks"][0];
    json t = call == 0 ? task(arn, "PENDING", json::array())
             : call == 1
                 ? task(arn, "RUNNING", json::array({container("consul-server")}))
                 : task(arn, "RUNNING", json::array({container("consul-server", "198.18.0.5")}));
    return FakeEcs::ok({{"tasks", json::array({t})}, {"failures", json::array()}});
  });
  TempDir dir;
  auto options = fastOptions(dir.file("server-ip"));
  EXPECT_EQ(runDiscoverServers(options, envWithKeys(ecs.url())), 0);
  auto written = readFile(options.out);
  ASSERT_TRUE(written.has_value()) << written.error().message;
  EXPECT_EQ(*written, "198.18.0.5\n");
  EXPECT_EQ(ecs.calls("ListTasks"), 4);
  EXPECT_EQ(ecs.calls("DescribeTasks"), 3);
  EXPECT_EQ(
      ecs.bodies("ListTasks").at(0),
      (json{{"cluster", "demo"}, {"serviceName", "consul-server"}, {"desiredStatus", "RUNNING"}}));
  EXPECT_EQ(ecs.bodies("DescribeTasks").at(0),
            (json{{"cluster", "demo"}, {"tasks", json::array({taskArn("us-east-1", 1)})}}));
  EXPECT_TRUE(ecs.signatureErrors().empty());
}

// In an ECS task: the cluster and region come from the task metadata endpoint, credentials from
// the container credentials endpoint (with a session token), the endpoint from
// AWS_ENDPOINT_URL_ECS; the IP comes from the task's ENI attachment.
TEST(DiscoverServers, ClusterRegionAndCredentialsFromTheTaskEnvironment) {
  const std::string clusterArn = "arn:aws:ecs:eu-west-1:111122223333:cluster/demo";
  TestHttpServer metadata([&](const net::HttpRequest& req) {
    if (req.path != "/v4/abc/task") return net::HttpResponse::text(404, "not found");
    return net::HttpResponse::json(json{
        {"Cluster", clusterArn},
        {"TaskARN", taskArn("eu-west-1", 9)},
        {"Family", "web"}}.dump());
  });
  TestHttpServer credentials([](const net::HttpRequest&) {
    return net::HttpResponse::json(
        R"({"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"role-secret","Token":"role-token",)"
        R"("Expiration":"2199-01-01T00:00:00Z"})");
  });
  FakeEcs ecs("eu-west-1", {"ASIAEXAMPLE", "role-secret", "role-token"});
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok({{"taskArns", {taskArn("eu-west-1", 2)}}});
  });
  ecs.on("DescribeTasks", [](const json& body, int) {
    json t = task(body["tasks"][0], "RUNNING", json::array({container("server")}));
    t["attachments"] = {{{"type", "ElasticNetworkInterface"},
                         {"status", "ATTACHED"},
                         {"details",
                          {{{"name", "subnetId"}, {"value", "subnet-1"}},
                           {{"name", "privateIPv4Address"}, {"value", "10.0.3.7"}}}}}};
    return FakeEcs::ok({{"tasks", json::array({t})}});
  });
  aws::AwsEnvironment env;
  env.metadataUriV4 = metadata.url() + "/v4/abc";
  env.containerCredentialsFullUri = credentials.url() + "/creds";
  env.endpointUrlEcs = ecs.url();
  DiscoverServersOptions o = fastOptions("unused");
  o.cluster.clear();
  o.serviceName.clear();
  o.family = "server";
  o.container = "server";
  auto found = discoverServer(o, env);
  ASSERT_TRUE(found.has_value()) << found.error().message;
  EXPECT_EQ(found->ip, "10.0.3.7");
  EXPECT_EQ(found->taskArn, taskArn("eu-west-1", 2));
  EXPECT_TRUE(ecs.signatureErrors().empty());
  EXPECT_EQ(ecs.lastSecurityToken(), "role-token");
  EXPECT_EQ(ecs.bodies("ListTasks").at(0),
            (json{{"cluster", clusterArn}, {"family", "server"}, {"desiredStatus", "RUNNING"}}));
}

TEST(DiscoverServers, MetadataEndpointFailuresAreRetried) {
  std::atomic<int> metadataCalls{0};
  TestHttpServer metadata([&](const net::HttpRequest&) {
    if (metadataCalls++ < 2) return net::HttpResponse::text(500, "agent not ready");
    return net::HttpResponse::json(
        json{{"Cluster", "demo"}, {"TaskARN", taskArn("us-east-1", 9)}}.dump());
  });
  FakeEcs ecs("us-east-1", kCreds);
  serveOneRunningServer(ecs, "10.1.1.1");
  auto env = envWithKeys(ecs.url());
  env.metadataUriV4 = metadata.url() + "/v4/x";
  auto options = fastOptions("unused");
  options.cluster.clear();
  auto found = discoverServer(options, env);
  ASSERT_TRUE(found.has_value()) << found.error().message;
  EXPECT_EQ(found->ip, "10.1.1.1");
  EXPECT_EQ(metadataCalls.load(), 3);
  EXPECT_EQ(ecs.bodies("ListTasks").at(0)["cluster"], "demo");
}

// -endpoint wins over AWS_ENDPOINT_URL_ECS, which wins over AWS_ENDPOINT_URL.
TEST(DiscoverServers, EndpointPrecedence) {
  FakeEcs ecs("us-east-1", kCreds);
  serveOneRunningServer(ecs, "10.2.2.2");
  auto options = fastOptions("unused");
  options.timeout = "2s";
  auto env = envWithKeys("http://127.0.0.1:1");
  options.endpoint = ecs.url();
  EXPECT_TRUE(discoverServer(options, env).has_value());
  options.endpoint.clear();
  env.endpointUrlEcs.clear();
  env.endpointUrl = ecs.url();
  EXPECT_TRUE(discoverServer(options, env).has_value());
  EXPECT_EQ(ecs.calls("ListTasks"), 2);
}

TEST(DiscoverServers, PicksTheRunningTaskThatHasTheContainer) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok(
        {{"taskArns",
          {taskArn("us-east-1", 1), taskArn("us-east-1", 2), taskArn("us-east-1", 3)}}});
  });
  ecs.on("DescribeTasks", [](const json&, int) {
    return FakeEcs::ok(
        {{"tasks",
          {task(taskArn("us-east-1", 1), "RUNNING",
                json::array({container("consul-server", "10.0.0.1")}), "STOPPED"),
           task(taskArn("us-east-1", 2), "RUNNING", json::array({container("app", "10.0.0.2")})),
           task(taskArn("us-east-1", 3), "RUNNING",
                json::array({container("app"), container("consul-server", "10.0.0.3")}))}}});
  });
  auto found = discoverServer(fastOptions("unused"), envWithKeys(ecs.url()));
  ASSERT_TRUE(found.has_value()) << found.error().message;
  EXPECT_EQ(found->ip, "10.0.0.3");
}

TEST(DiscoverServers, TimesOutWithAMessageSayingWhatWasMissing) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok({{"taskArns", {taskArn("us-east-1", 1)}}});
  });
  ecs.on("DescribeTasks", [](const json&, int) {
    return FakeEcs::ok(
        {{"tasks", json::array({task(taskArn("us-east-1", 1), "PENDING", json::array())})}});
  });
  TempDir dir;
  auto options = fastOptions(dir.file("server-ip"));
  options.timeout = "300ms";
  auto start = std::chrono::steady_clock::now();
  auto found = discoverServer(options, envWithKeys(ecs.url()));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, ErrorCode::kTimeout);
  EXPECT_NE(found.error().message.find(
                "no RUNNING task of service consul-server in cluster demo has container "
                "consul-server with a private IPv4 after 300ms"),
            std::string::npos)
      << found.error().message;
  EXPECT_NE(found.error().message.find("task 1001 is PENDING"), std::string::npos)
      << found.error().message;
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_GT(ecs.calls("ListTasks"), 2);

  EXPECT_EQ(runDiscoverServers(options, envWithKeys(ecs.url())), 1);
  EXPECT_FALSE(std::filesystem::exists(options.out));
}

TEST(DiscoverServers, MissingTasksAreReported) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok({{"taskArns", {taskArn("us-east-1", 1)}}});
  });
  ecs.on("DescribeTasks", [](const json&, int) {
    return FakeEcs::ok(
        {{"tasks", json::array()},
         {"failures", json::array({{{"arn", taskArn("us-east-1", 1)}, {"reason", "MISSING"}}})}});
  });
  auto options = fastOptions("unused");
  options.timeout = "100ms";
  auto found = discoverServer(options, envWithKeys(ecs.url()));
  ASSERT_FALSE(found.has_value());
  EXPECT_NE(found.error().message.find(
                "DescribeTasks returned none of the 1 listed tasks (1001: MISSING)"),
            std::string::npos)
      << found.error().message;
}

TEST(DiscoverServers, EcsClientErrorsFailFast) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::error(400, "ClusterNotFoundException", "Cluster not found.");
  });
  auto start = std::chrono::steady_clock::now();
  auto found = discoverServer(fastOptions("unused"), envWithKeys(ecs.url()));
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, ErrorCode::kNotFound);
  EXPECT_NE(found.error().message.find("ClusterNotFoundException: Cluster not found."),
            std::string::npos)
      << found.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(ecs.calls("ListTasks"), 1);
}

TEST(DiscoverServers, ServerErrorsAreRetried) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int call) {
    if (call < 2) return FakeEcs::error(500, "ServerException", "try again");
    return FakeEcs::ok({{"taskArns", {taskArn("us-east-1", 1)}}});
  });
  ecs.on("DescribeTasks", [](const json&, int) {
    return FakeEcs::ok(
        {{"tasks", json::array({task(taskArn("us-east-1", 1), "RUNNING",
                                     json::array({container("consul-server", "10.9.8.7")}))})}});
  });
  auto found = discoverServer(fastOptions("unused"), envWithKeys(ecs.url()));
  ASSERT_TRUE(found.has_value()) << found.error().message;
  EXPECT_EQ(found->ip, "10.9.8.7");
  EXPECT_EQ(ecs.calls("ListTasks"), 3);
}

TEST(DiscoverServers, UnreachableEndpointTimesOutNamingIt) {
  std::string endpoint;
  {
    FakeEcs gone("us-east-1", kCreds);
    endpoint = gone.url();
  }
  auto options = fastOptions("unused");
  options.timeout = "200ms";
  auto found = discoverServer(options, envWithKeys(endpoint));
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, ErrorCode::kTimeout);
  EXPECT_NE(found.error().message.find(endpoint), std::string::npos) << found.error().message;
}

TEST(DiscoverServers, BadFlagsAndConfigurationAreClearErrors) {
  struct Case {
    std::function<void(DiscoverServersOptions&, aws::AwsEnvironment&)> change;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {[](auto& o, auto&) { o.serviceName.clear(); }, "one of -service-name or -family"},
      {[](auto& o, auto&) { o.serviceName = "bad name"; }, "invalid -service-name"},
      {[](auto& o, auto&) { o.container = ""; }, "invalid -container"},
      {[](auto& o, auto&) { o.timeout = "5 minutes"; }, "-timeout"},
      {[](auto& o, auto&) { o.timeout = "0s"; }, "-timeout must be positive"},
      {[](auto& o, auto&) { o.cluster.clear(); }, "ECS_CONTAINER_METADATA_URI_V4 is not set"},
      {[](auto&, auto& e) { e.region.clear(); }, "region is unknown"},
      {[](auto&, auto& e) { e.endpointUrlEcs = "ftp://127.0.0.1/"; }, "unsupported scheme"},
      {[](auto&, auto& e) { e.secretAccessKey.clear(); }, "AWS_SECRET_ACCESS_KEY"},
  };
  for (const auto& c : cases) {
    auto options = fastOptions("unused");
    auto env = envWithKeys("http://127.0.0.1:1");
    c.change(options, env);
    auto found = discoverServer(options, env);
    ASSERT_FALSE(found.has_value()) << c.expected;
    EXPECT_EQ(found.error().code, ErrorCode::kInvalidArgument) << found.error().message;
    EXPECT_NE(found.error().message.find(c.expected), std::string::npos) << found.error().message;
  }
}

TEST(DiscoverServers, UnwritableOutIsExitOne) {
  FakeEcs ecs("us-east-1", kCreds);
  serveOneRunningServer(ecs, "10.0.0.9");
  auto options = fastOptions("/nonexistent-dir/server-ip");
  EXPECT_EQ(runDiscoverServers(options, envWithKeys(ecs.url())), 1);
}

}  // namespace
}  // namespace taskmesh::init
