#include "aws/metadata.h"

#include <gtest/gtest.h>

#include "aws/test_http_server.h"

namespace taskmesh::aws {
namespace {

using namespace std::chrono_literals;
using testing::TestHttpServer;

// The /task example of reference/ecs.md §6.4 (a Fargate task).
constexpr const char* kTaskJson = R"({
  "Cluster": "arn:aws:ecs:us-east-1:111122223333:cluster/demo",
  "TaskARN": "arn:aws:ecs:us-east-1:111122223333:task/demo/0123456789abcdef0123456789abcdef",
  "Family": "web", "Revision": "3", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
  "AvailabilityZone": "us-east-1a", "LaunchType": "FARGATE",
  "Limits": {"CPU": 0.25, "Memory": 512},
  "Containers": [{
    "DockerId": "0123456789abcdef0123456789abcdef-1234567890", "Name": "app",
    "DockerName": "ecs-web-3-app-a0e7dba5aca6d8cb2e00", "Image": "example/web:1",
    "Labels": {"com.amazonaws.ecs.container-name": "app"},
    "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
    "Limits": {"CPU": 2, "Memory": 0}, "Type": "NORMAL",
    "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.1.20"],
                  "PrivateDNSName": "ip-10-0-1-20.ec2.internal"}],
    "Health": {"status": "HEALTHY", "statusSince": "2024-01-01T00:00:31Z"}
  }]
})";

TEST(TaskMetadata, ParsesTheDocumentedShape) {
  auto md = parseTaskMetadata(kTaskJson);
  ASSERT_TRUE(md.has_value()) << md.error().message;
  EXPECT_EQ(md->cluster, "arn:aws:ecs:us-east-1:111122223333:cluster/demo");
  EXPECT_EQ(md->family, "web");
  EXPECT_EQ(md->revision, "3");
  EXPECT_EQ(md->availabilityZone, "us-east-1a");
  ASSERT_EQ(md->containers.size(), 1u);
  EXPECT_EQ(md->containers[0].name, "app");
  EXPECT_EQ(md->containers[0].type, "NORMAL");
  EXPECT_EQ(md->taskIpv4(), "10.0.1.20");
  auto arn = parseArn(md->taskArn);
  ASSERT_TRUE(arn.has_value());
  EXPECT_EQ(arn->region, "us-east-1");
  EXPECT_EQ(arn->account, "111122223333");
  EXPECT_EQ(arn->resource, "task/demo/0123456789abcdef0123456789abcdef");
}

TEST(TaskMetadata, ErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case& c : {
           Case{R"({"TaskARN":"arn:aws:ecs:r:1:task/x"})", "Cluster"},
           Case{R"({"Cluster":"c","TaskARN":7})", "TaskARN"},
           Case{R"({"Cluster":"c","TaskARN":"t","Containers":{}})", "Containers"},
           Case{R"({"Cluster":"c","TaskARN":"t","Containers":[{"Name":1}]})", "Containers[0].Name"},
           Case{R"({"Cluster":"c","TaskARN":"t","Containers":[{"Name":"a","Networks":[{)"
                R"("IPv4Addresses":[1]}]}]})",
                "Containers[0].Networks[0].IPv4Addresses[0]"},
           Case{"[1,2]", "not a JSON object"},
           Case{"{", "task metadata"},
       }) {
    auto md = parseTaskMetadata(c.json);
    ASSERT_FALSE(md.has_value()) << c.json;
    EXPECT_EQ(md.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(md.error().message.find(c.field), std::string::npos) << md.error().message;
  }
}

TEST(TaskMetadata, FetchesTaskFromTheEndpoint) {
  TestHttpServer server([](const net::HttpRequest& req) {
    if (req.method == "GET" && req.path == "/v4/abc-123/task") {
      return net::HttpResponse::json(kTaskJson);
    }
    return net::HttpResponse::json(R"("V4 task metadata handler: unable to find task")", 404);
  });
  auto md = fetchTaskMetadata(server.url() + "/v4/abc-123", 2s);
  ASSERT_TRUE(md.has_value()) << md.error().message;
  EXPECT_EQ(md->family, "web");

  auto missing = fetchTaskMetadata(server.url() + "/v4/other", 2s);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(missing.error().message.find(server.url() + "/v4/other/task"), std::string::npos);
  EXPECT_NE(missing.error().message.find("HTTP 404"), std::string::npos);
  EXPECT_NE(missing.error().message.find("unable to find task"), std::string::npos);

  auto unset = fetchTaskMetadata("", 2s);
  ASSERT_FALSE(unset.has_value());
  EXPECT_NE(unset.error().message.find("ECS_CONTAINER_METADATA_URI_V4"), std::string::npos);
}

TEST(Arn, RejectsMalformed) {
  for (const char* bad : {"", "arn:aws:ecs", "notarn:aws:ecs:r:1:task/x", "arn::ecs:r:1:task/x",
                          "arn:aws:ecs:r:1:"}) {
    EXPECT_FALSE(parseArn(bad).has_value()) << bad;
  }
  auto cluster = parseArn("arn:aws:ecs:eu-west-1:1:cluster/demo");
  ASSERT_TRUE(cluster.has_value());
  EXPECT_EQ(cluster->region, "eu-west-1");
  EXPECT_EQ(cluster->resource, "cluster/demo");
}

}  // namespace
}  // namespace taskmesh::aws
