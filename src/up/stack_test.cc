#include "up/stack.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace taskmesh::up {
namespace {

namespace fs = std::filesystem;

class StackTest : public ::testing::Test {
 protected:
  StackTest() {
    dir_ = fs::temp_directory_path() / ("stack-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    write("web.task.json",
          R"({"family": "web", "containerDefinitions": [{"name": "app", "image": "host"}]})");
    write("web.mesh.json", R"({"service": {"name": "web", "port": 8080}})");
  }
  ~StackTest() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  Result<Stack> load(const std::string& stack) {
    write("stack.json", stack);
    return loadStack(dir_.string(), "host");
  }
  fs::path dir_;
};

TEST_F(StackTest, LoadsAndExpandsEveryService) {
  auto s = load(R"({"cluster": "c", "server": {"defaultIntentionPolicy": "deny"},
                    "services": [{"name": "web", "taskDefinition": "web.task.json",
                                  "meshConfig": "web.mesh.json", "desiredCount": 2,
                                  "public": true}]})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->cluster, "c");
  ASSERT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->services[0].desiredCount, 2);
  EXPECT_TRUE(s->services[0].isPublic);
  EXPECT_EQ(s->services[0].appPort, 8080);
  EXPECT_EQ(s->services[0].taskDefinition["containerDefinitions"].size(), 5u);
  EXPECT_NE(s->serverTaskDefinition.dump().find("\"deny\""), std::string::npos);
}

TEST_F(StackTest, BadStacksNameTheFileAndTheField) {
  const std::string svc =
      R"({"name": "web", "taskDefinition": "web.task.json", "meshConfig": "web.mesh.json"})";
  struct Case {
    std::string stack;
    std::string contains;
  };
  std::vector<Case> cases = {
      {"[]", "stack.json: expected a JSON object"},
      {"{", "stack.json: invalid JSON"},
      {R"({"services": [)" + svc + "]}", "cluster: missing"},
      {R"({"cluster": "c", "servces": []})", "servces: unknown field"},
      {R"({"cluster": "c", "services": []})", "services: expected a non-empty array"},
      {R"({"cluster": "c", "services": [)" + svc + "," + svc + "]}", "\"web\" is used twice"},
      {R"({"cluster": "c", "services": [{"name": "web", "taskDefinition": "nope.json",
           "meshConfig": "web.mesh.json"}]})",
       "nope.json"},
      {R"({"cluster": "c", "services": [{"name": "x", "taskDefinition": "web.task.json",
           "meshConfig": "web.mesh.json", "desiredCount": -1}]})",
       "services[0].desiredCount"},
      {R"({"cluster": "c", "server": {"defaultIntentionPolicy": "maybe"}, "services": [)" + svc +
           "]}",
       "-default-intention-policy"},
  };
  for (const auto& c : cases) {
    auto s = load(c.stack);
    ASSERT_FALSE(s) << c.stack;
    EXPECT_NE(s.error().message.find(c.contains), std::string::npos)
        << s.error().message << " / expected: " << c.contains;
  }
}

}  // namespace
}  // namespace taskmesh::up
