#include "aws/ecs_client.h"

#include <gtest/gtest.h>

#include "aws/fake_ecs.h"

namespace taskmesh::aws {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::FakeEcs;

const Credentials kCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

std::string arn(int i) {
  return "arn:aws:ecs:us-east-1:111122223333:task/demo/" + std::to_string(1000 + i);
}

EcsClient clientFor(const FakeEcs& ecs) {
  auto client = EcsClient::create({ecs.url(), "us-east-1", 5000ms});
  EXPECT_TRUE(client.has_value()) << client.error().message;
  return std::move(*client);
}

// The DescribeTasks example of reference/ecs.md §8.2: an awsvpc Fargate service task.
const char* kDescribeExample = R"({"tasks": [{
  "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/demo/0123456789abcdef0123456789abcdef",
  "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/demo",
  "lastStatus": "RUNNING", "desiredStatus": "RUNNING", "healthStatus": "UNKNOWN",
  "launchType": "FARGATE", "cpu": "256", "memory": "512", "version": 4,
  "createdAt": 1704067200.123, "startedAt": 1704067230.456,
  "attachments": [{"id": "a1b2", "type": "ElasticNetworkInterface", "status": "ATTACHED",
    "details": [{"name": "subnetId", "value": "subnet-0abc"},
                {"name": "networkInterfaceId", "value": "eni-0abc"},
                {"name": "privateIPv4Address", "value": "10.0.1.20"}]}],
  "containers": [{"name": "app", "lastStatus": "RUNNING",
    "networkBindings": [], "networkInterfaces": [{"attachmentId": "a1b2",
    "privateIpv4Address": "10.0.1.20"}], "cpu": "0"}],
  "tags": [{"key": "consul.hashicorp.com/mesh", "value": "true"}]
}], "failures": [{"arn": "arn:aws:ecs:us-east-1:111122223333:task/demo/gone",
                  "reason": "MISSING"}]})";

TEST(EcsClient, ListTasksFollowsEveryPageAndSignsEachRequest) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json& body, int call) {
    json page;
    for (int i = call * 100; i < std::min(250, call * 100 + 100); ++i) page.push_back(arn(i));
    json out{{"taskArns", page}};
    if (call < 2) out["nextToken"] = "token-" + std::to_string(call + 1);
    if (call > 0 && body.value("nextToken", "") != "token-" + std::to_string(call)) {
      return FakeEcs::error(400, "InvalidParameterException", "bad nextToken");
    }
    return FakeEcs::ok(out);
  });
  auto client = clientFor(ecs);
  auto arns = client.listTasks({"demo", "consul-server", "", "RUNNING"}, kCreds, in(5s));
  ASSERT_TRUE(arns.has_value()) << arns.error().message;
  ASSERT_EQ(arns->size(), 250u);
  EXPECT_EQ(arns->front(), arn(0));
  EXPECT_EQ(arns->back(), arn(249));
  EXPECT_EQ(ecs.calls("ListTasks"), 3);
  auto first = ecs.bodies("ListTasks").at(0);
  EXPECT_EQ(
      first,
      (json{{"cluster", "demo"}, {"serviceName", "consul-server"}, {"desiredStatus", "RUNNING"}}));
  EXPECT_TRUE(ecs.signatureErrors().empty()) << ecs.signatureErrors().front();
}

TEST(EcsClient, DescribeTasksInBatchesOfOneHundred) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("DescribeTasks", [](const json& body, int) {
    json tasks = json::array();
    for (const auto& t : body["tasks"]) {
      tasks.push_back({{"taskArn", t}, {"lastStatus", "RUNNING"}, {"desiredStatus", "RUNNING"}});
    }
    return FakeEcs::ok({{"tasks", tasks}, {"failures", json::array()}});
  });
  std::vector<std::string> wanted;
  for (int i = 0; i < 250; ++i) wanted.push_back(arn(i));
  auto result = clientFor(ecs).describeTasks("demo", wanted, kCreds, in(5s));
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->tasks.size(), 250u);
  auto bodies = ecs.bodies("DescribeTasks");
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies[0]["tasks"].size(), 100u);
  EXPECT_EQ(bodies[2]["tasks"].size(), 50u);
  EXPECT_EQ(bodies[0]["cluster"], "demo");
}

TEST(EcsClient, ParsesTheDocumentedDescribeTasksShape) {
  auto result = parseDescribeTasks(json::parse(kDescribeExample));
  ASSERT_TRUE(result.has_value()) << result.error().message;
  ASSERT_EQ(result->tasks.size(), 1u);
  const auto& t = result->tasks[0];
  EXPECT_EQ(t.lastStatus, "RUNNING");
  ASSERT_EQ(t.attachments.size(), 1u);
  EXPECT_EQ(t.attachments[0].type, "ElasticNetworkInterface");
  EXPECT_EQ(t.attachments[0].detail("privateIPv4Address"), "10.0.1.20");
  ASSERT_EQ(t.containers.size(), 1u);
  EXPECT_EQ(t.containers[0].privateIpv4Addresses, std::vector<std::string>{"10.0.1.20"});
  ASSERT_EQ(result->failures.size(), 1u);
  EXPECT_EQ(result->failures[0].reason, "MISSING");
}

TEST(EcsClient, MalformedResponsesNameTheField) {
  struct Case {
    json body;
    const char* field;
  };
  for (const Case& c : {
           Case{{{"tasks", {{{"lastStatus", "RUNNING"}}}}}, "tasks[0].taskArn"},
           Case{{{"tasks", {{{"taskArn", "a"}, {"containers", {{{"name", 5}}}}}}}},
                "tasks[0].containers[0].name"},
           Case{{{"tasks", {{{"taskArn", "a"}, {"attachments", {{{"details", "x"}}}}}}}},
                "tasks[0].attachments[0].details"},
           Case{{{"tasks", "none"}}, "tasks"},
           Case{{{"failures", {{{"arn", 1}}}}}, "failures[0].arn"},
       }) {
    auto r = parseDescribeTasks(c.body);
    ASSERT_FALSE(r.has_value()) << c.body.dump();
    EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
  }
}

TEST(EcsClient, EcsErrorsBecomeClearMessagesWithRetryableCodes) {
  struct Case {
    int status;
    std::string type;
    ErrorCode code;
    std::string expectedType;
  };
  for (const Case& c : {
           Case{400, "ClusterNotFoundException", ErrorCode::kNotFound, "ClusterNotFoundException"},
           Case{400, "ServiceNotFoundException", ErrorCode::kNotFound, "ServiceNotFoundException"},
           Case{400, "com.amazonaws.ecs#AccessDeniedException", ErrorCode::kInvalidArgument,
                "AccessDeniedException"},
           Case{400, "ThrottlingException", ErrorCode::kUnavailable, "ThrottlingException"},
           Case{500, "ServerException", ErrorCode::kUnavailable, "ServerException"},
       }) {
    FakeEcs ecs("us-east-1", kCreds);
    ecs.on("ListTasks", [&c](const json&, int) {
      return FakeEcs::error(c.status, c.type, "Cluster not found.");
    });
    auto r = clientFor(ecs).listTasks({"nope", "svc", "", "RUNNING"}, kCreds, in(5s));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, c.code) << r.error().message;
    const std::string& m = r.error().message;
    EXPECT_NE(m.find("ECS ListTasks failed: " + c.expectedType + ": Cluster not found."),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("HTTP " + std::to_string(c.status) + " from " + ecs.url()), std::string::npos)
        << m;
  }
}

TEST(EcsClient, NonJsonErrorsAndWrongCredentials) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("DescribeTasks",
         [](const json&, int) { return net::HttpResponse::text(502, "<html>bad gateway</html>"); });
  auto bad = clientFor(ecs).describeTasks("demo", {"t"}, kCreds, in(5s));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(bad.error().message.find("bad gateway"), std::string::npos);

  Credentials wrong = kCreds;
  wrong.secretAccessKey = "not-the-secret";
  auto denied = clientFor(ecs).describeTasks("demo", {"t"}, wrong, in(5s));
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(denied.error().message.find("InvalidSignatureException"), std::string::npos);
}

TEST(EcsClient, SessionTokenIsSentAndSigned) {
  Credentials session = kCreds;
  session.sessionToken = "session-token";
  FakeEcs ecs("eu-west-1", session);
  ecs.on("ListTasks", [](const json&, int) { return FakeEcs::ok({{"taskArns", json::array()}}); });
  auto client = EcsClient::create({ecs.url() + "/", "eu-west-1", 5000ms});
  ASSERT_TRUE(client.has_value());
  auto r = client->listTasks({"", "", "fam", "RUNNING"}, session, in(5s));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(ecs.lastSecurityToken(), "session-token");
  EXPECT_TRUE(ecs.signatureErrors().empty());
  EXPECT_EQ(ecs.bodies("ListTasks").at(0), (json{{"family", "fam"}, {"desiredStatus", "RUNNING"}}));
}

TEST(EcsClient, RepeatedNextTokenAndPassedDeadlineAreErrors) {
  FakeEcs ecs("us-east-1", kCreds);
  ecs.on("ListTasks", [](const json&, int) {
    return FakeEcs::ok({{"taskArns", {"a"}}, {"nextToken", "same"}});
  });
  auto client = clientFor(ecs);
  auto loop = client.listTasks({"demo", "svc", "", "RUNNING"}, kCreds, in(5s));
  ASSERT_FALSE(loop.has_value());
  EXPECT_NE(loop.error().message.find("same nextToken"), std::string::npos);

  auto late = client.listTasks({"demo", "svc", "", "RUNNING"}, kCreds,
                               std::chrono::steady_clock::now() - 1ms);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kTimeout);
}

TEST(EcsClient, CreateValidatesEndpointAndRegion) {
  // AWS's own endpoint is https (created here, never contacted).
  auto https = EcsClient::create({defaultEcsEndpoint("us-east-1"), "us-east-1", 5000ms});
  ASSERT_TRUE(https.has_value()) << https.error().message;
  auto ftp = EcsClient::create({"ftp://127.0.0.1/", "us-east-1", 5000ms});
  ASSERT_FALSE(ftp.has_value());
  EXPECT_NE(ftp.error().message.find("ECS endpoint"), std::string::npos);
  EXPECT_FALSE(EcsClient::create({"http://127.0.0.1:1/?x=1", "us-east-1", 5000ms}).has_value());
  EXPECT_FALSE(EcsClient::create({"http://127.0.0.1:1/a%20b", "us-east-1", 5000ms}).has_value());
  EXPECT_FALSE(EcsClient::create({"http://127.0.0.1:1", "", 5000ms}).has_value());
  EXPECT_EQ(defaultEcsEndpoint("cn-north-1"), "https://ecs.cn-north-1.amazonaws.com.cn");
}

}  // namespace
}  // namespace taskmesh::aws
