// Lifecycle and service-scheduler tests of the runtime against fake drivers (fake_drivers.h):
// deterministic, no runc, no network namespaces. Every wait has a deadline; the few fixed
// windows (runFor) only give a wrong behaviour the chance to show itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ecs/task_definition.h"
#include "runtime/ecs_api.h"
#include "runtime/fake_drivers.h"
#include "runtime/registry.h"
#include "runtime/runtime.h"

namespace taskmesh::runtime {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Json = nlohmann::json;
using testing::FakeEngine;
using testing::FakeNetwork;
using Kind = FakeEngine::CallKind;
using Clock = std::chrono::steady_clock;

std::string makeTempDir() {
  char tmpl[] = "/tmp/runtime_test.XXXXXX";
  const char* p = mkdtemp(tmpl);
  return p ? p : "";
}

// A container of the host image that runs until told otherwise; `extra` is merged in.
Json container(const std::string& name, const Json& extra = Json::object()) {
  Json c = {{"name", name}, {"image", "host"}, {"command", {"sleep", "infinity"}}};
  c.update(extra);
  return c;
}

Json taskDefinition(const std::string& family, const std::vector<Json>& containers) {
  return Json{{"family", family}, {"containerDefinitions", containers}};
}

Json healthCheck(int retries = 1) {
  return Json{
      {"command", {"CMD-SHELL", "check"}}, {"interval", 5}, {"timeout", 2}, {"retries", retries}};
}

FakeEngine::StartOutcome hold() { return {FakeEngine::StartOutcome::kHold, ""}; }

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir();
    ASSERT_FALSE(dir_.empty());
    auto registry = Registry::open(io_, dir_, ArnScheme{});
    ASSERT_TRUE(registry.has_value()) << registry.error().message;
    registry_ = std::move(*registry);
    engine_ = std::make_unique<FakeEngine>(io_);
    network_ = std::make_unique<FakeNetwork>(io_);
    runtime_ = std::make_unique<Runtime>(io_, *registry_, *engine_, *network_,
                                         RuntimeOptions{.dataDir = dir_});
    runtime_->start();
    api_ = std::make_unique<EcsApi>(*runtime_, ApiAccess::kFull);
  }

  void TearDown() override {
    if (engine_) {
      EXPECT_THAT(engine_->violations(), IsEmpty());
    }
    if (network_) {
      EXPECT_THAT(network_->violations(), IsEmpty());
    }
    drain();
    api_.reset();
    runtime_.reset();
    registry_.reset();
    network_.reset();
    engine_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Runs handlers one by one until `done()` holds (checked after each) or `timeout` passes.
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      io_.restart();
      io_.run_one_for(10ms);
    }
    return true;
  }
  // Gives the runtime `window` to do something it should not do.
  void runFor(std::chrono::milliseconds window) {
    runUntil([] { return false; }, window);
  }
  void drain() {
    for (int i = 0; i < 1000; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
  }

  const TaskDefinitionRecord* define(const Json& request) {
    auto parsed = ecs::parseTaskDefinition(request);
    EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().message);
    if (!parsed) return nullptr;
    return &registry_->addTaskDefinition(TaskDefinitionRecord{.family = parsed->family,
                                                              .revision = 0,
                                                              .status = "ACTIVE",
                                                              .registeredAt = nowSeconds(),
                                                              .deregisteredAt = 0,
                                                              .document = parsed->document,
                                                              .tags = parsed->tags});
  }
  std::string runTask(const TaskDefinitionRecord* def) {
    if (!def) return "";
    auto ids = runtime_->runTask(RunTaskParams{.cluster = "default", .definition = def});
    EXPECT_TRUE(ids.has_value()) << (ids ? "" : ids.error().message);
    return ids && ids->size() == 1 ? ids->front() : "";
  }
  std::string runTask(const Json& request) { return runTask(define(request)); }

  TaskRecord& task(const std::string& id) {
    auto* t = registry_->task(id);
    if (!t) ADD_FAILURE() << "no task " << id;
    static TaskRecord none;
    return t ? *t : none;
  }
  ContainerRecord& rec(const std::string& taskId, const std::string& name) {
    auto* c = task(taskId).container(name);
    if (!c) ADD_FAILURE() << "no container " << name << " in task " << taskId;
    static ContainerRecord none;
    return c ? *c : none;
  }
  // The engine id of a container (ContainerRecord::runtimeId).
  std::string cid(const std::string& taskId, const std::string& name) {
    return rec(taskId, name).runtimeId;
  }
  // Container names of `taskId` the engine got `kind` calls for, in call order.
  std::vector<std::string> names(const std::string& taskId, Kind kind, int signal = 0) {
    std::vector<std::string> out;
    for (const auto& id : engine_->ids(kind, signal)) {
      for (const auto& c : task(taskId).containers) {
        if (c.runtimeId == id) out.push_back(c.name);
      }
    }
    return out;
  }
  bool requested(const std::string& taskId, const std::string& name) {
    return engine_->has(cid(taskId, name));
  }
  // The task's own timeline events ("task" subject), in order.
  std::vector<std::string> taskEvents(const std::string& taskId) {
    std::vector<std::string> out;
    for (const auto& e : task(taskId).timeline) {
      if (e.subject == "task") out.push_back(e.event);
    }
    return out;
  }
  bool status(const std::string& taskId, const std::string& s) {
    return task(taskId).lastStatus == s;
  }

  // --- ECS API
  Json call(const std::string& operation, const Json& body, int* httpStatus = nullptr) {
    net::HttpRequest request;
    request.method = "POST";
    request.path = "/";
    request.target = "/";
    request.headers["x-amz-target"] = "AmazonEC2ContainerServiceV20141113." + operation;
    request.body = body.dump();
    auto response = api_->handle(request);
    if (httpStatus) *httpStatus = response.status;
    auto parsed = Json::parse(response.body, nullptr, false);
    if (!httpStatus && response.status != 200) {
      ADD_FAILURE() << operation << " -> " << response.status << " " << response.body;
    }
    return parsed;
  }
  Json service(const std::string& name) {
    Json r = call("DescribeServices", {{"services", {name}}});
    return r.value("services", Json::array()).empty() ? Json() : r["services"][0];
  }
  // The service's tasks that are not STOPPED.
  std::vector<TaskRecord*> liveTasks(const std::string& serviceName) {
    std::vector<TaskRecord*> out;
    for (auto& [_, t] : registry_->tasks()) {
      if (t.serviceName == serviceName && !t.stopped()) out.push_back(&t);
    }
    return out;
  }
  int runningTasks(const std::string& serviceName, int revision = 0) {
    int n = 0;
    for (auto* t : liveTasks(serviceName)) {
      n += t->lastStatus == "RUNNING" && t->desiredStatus == "RUNNING" &&
                   (revision == 0 || t->revision == revision)
               ? 1
               : 0;
    }
    return n;
  }

  static Json network() { return {{"awsvpcConfiguration", {{"subnets", {"subnet-1"}}}}}; }

  asio::io_context io_;
  std::string dir_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<FakeNetwork> network_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<EcsApi> api_;
};

// --- 1. start ordering

TEST_F(RuntimeTest, DependsOnStartWaitsUntilTheDependencyRuns) {
  engine_->onStart = [](const ContainerSpec&) { return hold(); };
  auto id = runTask(taskDefinition(
      "web",
      {container("app", {{"dependsOn", {{{"containerName", "proxy"}, {"condition", "START"}}}}}),
       container("proxy")}));
  ASSERT_TRUE(runUntil([&] { return requested(id, "proxy"); }));
  runFor(100ms);
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("proxy"));
  EXPECT_EQ(task(id).lastStatus, "PENDING");

  engine_->completeStart(cid(id, "proxy"));
  ASSERT_TRUE(runUntil([&] { return requested(id, "app"); }));
  EXPECT_EQ(rec(id, "proxy").lastStatus, "RUNNING");
  engine_->completeStart(cid(id, "app"));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("proxy", "app"));
  EXPECT_GT(task(id).startedAt, 0);
}

TEST_F(RuntimeTest, DependsOnCompleteWaitsForAnExitWithAnyCode) {
  auto id = runTask(taskDefinition(
      "web", {container("init", {{"essential", false}}),
              container("app", {{"dependsOn",
                                 {{{"containerName", "init"}, {"condition", "COMPLETE"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "init").lastStatus == "RUNNING"; }));
  runFor(100ms);
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init"));
  EXPECT_EQ(task(id).lastStatus, "PENDING");

  engine_->exit(cid(id, "init"), 3);
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init", "app"));
  EXPECT_EQ(rec(id, "init").exitCode, 3);
  EXPECT_EQ(task(id).desiredStatus, "RUNNING");
}

TEST_F(RuntimeTest, DependsOnSuccessWaitsForAZeroExit) {
  auto id = runTask(taskDefinition(
      "web",
      {container("app", {{"dependsOn", {{{"containerName", "init"}, {"condition", "SUCCESS"}}}}}),
       container("init", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "init").lastStatus == "RUNNING"; }));
  runFor(100ms);
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init"));

  engine_->exit(cid(id, "init"), 0);
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init", "app"));
}

TEST_F(RuntimeTest, DependencyChainStartsInOrder) {
  // mesh-init (SUCCESS) → dataplane (START) → app, declared in reverse.
  auto id = runTask(taskDefinition(
      "mesh",
      {container("app",
                 {{"dependsOn", {{{"containerName", "dataplane"}, {"condition", "START"}}}}}),
       container("dataplane",
                 {{"dependsOn", {{{"containerName", "mesh-init"}, {"condition", "SUCCESS"}}}}}),
       container("mesh-init", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "mesh-init").lastStatus == "RUNNING"; }));
  engine_->exit(cid(id, "mesh-init"), 0);
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("mesh-init", "dataplane", "app"));
}

TEST_F(RuntimeTest, VolumesFromIsAnImplicitStartDependency) {
  engine_->onStart = [](const ContainerSpec&) { return hold(); };
  Json request = taskDefinition(
      "web", {container("app", {{"volumesFrom", {{{"sourceContainer", "data"}}}}}),
              container("data", {{"mountPoints",
                                  {{{"sourceVolume", "shared"}, {"containerPath", "/shared"}}}}})});
  request["volumes"] = {{{"name", "shared"}}};
  auto id = runTask(request);
  ASSERT_TRUE(runUntil([&] { return requested(id, "data"); }));
  runFor(100ms);
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("data"));

  engine_->completeStart(cid(id, "data"));
  ASSERT_TRUE(runUntil([&] { return requested(id, "app"); }));
  engine_->completeStart(cid(id, "app"));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  // app sees data's volume.
  const auto* spec = engine_->spec(cid(id, "app"));
  ASSERT_NE(spec, nullptr);
  bool mounted = false;
  for (const auto& m : spec->mounts) mounted |= m.destination == "/shared";
  EXPECT_TRUE(mounted);
}

// --- 2. SUCCESS dependency failing

TEST_F(RuntimeTest, SuccessDependencyExitingNonZeroFailsTheTask) {
  auto id = runTask(taskDefinition(
      "web", {container("init", {{"essential", false}}),
              container("app", {{"dependsOn",
                                 {{{"containerName", "init"}, {"condition", "SUCCESS"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "init").lastStatus == "RUNNING"; }));
  engine_->exit(cid(id, "init"), 2);
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  const auto& t = task(id);
  EXPECT_EQ(t.stopCode, "TaskFailedToStart");
  EXPECT_THAT(t.stoppedReason, HasSubstr("did not exit successfully"));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init"));
  EXPECT_EQ(rec(id, "app").lastStatus, "STOPPED");
  EXPECT_EQ(rec(id, "app").startedAt, 0);
  EXPECT_EQ(network_->teardownCount(id), 1u);
}

// --- 3. essential exit, stop order, SIGKILL

TEST_F(RuntimeTest, EssentialExitStopsTheRestInReverseDependencyOrder) {
  // db ← proxy ← app (START), logger independent and non-essential.
  engine_->onSignal = [](const std::string&, int) { return std::optional<int>(); };
  auto id = runTask(taskDefinition(
      "web",
      {container("db"),
       container("proxy", {{"dependsOn", {{{"containerName", "db"}, {"condition", "START"}}}}}),
       container("app", {{"dependsOn", {{{"containerName", "proxy"}, {"condition", "START"}}}}}),
       container("logger", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));

  engine_->exit(cid(id, "db"), 1);
  ASSERT_TRUE(runUntil([&] { return names(id, Kind::kSignal, SIGTERM).size() == 2; }));
  runFor(100ms);
  EXPECT_EQ(task(id).desiredStatus, "STOPPED");
  EXPECT_EQ(task(id).stopCode, "EssentialContainerExited");
  EXPECT_EQ(task(id).stoppedReason, "Essential container in task exited");
  // proxy waits for app, which depends on it.
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("app", "logger"));

  engine_->exit(cid(id, "app"), 143);
  ASSERT_TRUE(runUntil([&] { return names(id, Kind::kSignal, SIGTERM).size() == 3; }));
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("app", "logger", "proxy"));
  EXPECT_FALSE(status(id, "STOPPED"));

  engine_->exit(cid(id, "proxy"), 143);
  engine_->exit(cid(id, "logger"), 143);
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("app", "logger", "proxy"));
  EXPECT_THAT(names(id, Kind::kSignal, SIGKILL), IsEmpty());
  for (const auto& c : task(id).containers) {
    EXPECT_EQ(engine_->count(Kind::kRemove, c.runtimeId), 1u) << c.name;
    EXPECT_EQ(c.lastStatus, "STOPPED") << c.name;
  }
  EXPECT_EQ(rec(id, "db").exitCode, 1);
  EXPECT_EQ(rec(id, "proxy").exitCode, 143);
  EXPECT_EQ(network_->teardownCount(id), 1u);
}

TEST_F(RuntimeTest, SigkillFollowsAfterStopTimeout) {
  // "stubborn" ignores SIGTERM; "polite" exits on it and must not be killed.
  engine_->onSignal = [](const std::string& id, int sig) {
    if (sig == SIGTERM && endsWith(id, "-stubborn")) return std::optional<int>();
    return std::optional<int>(128 + sig);
  };
  auto id = runTask(taskDefinition("web", {container("stubborn", {{"stopTimeout", 1}}),
                                           container("polite", {{"stopTimeout", 1}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  auto t0 = Clock::now();
  runtime_->stopTask(id, "UserInitiated", "Task stopped by user");
  ASSERT_TRUE(runUntil([&] { return !names(id, Kind::kSignal, SIGKILL).empty(); }, 4s));
  auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 900ms);
  EXPECT_LE(waited, 3s);
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  runFor(1200ms);  // past polite's stopTimeout too
  EXPECT_THAT(names(id, Kind::kSignal, SIGKILL), ElementsAre("stubborn"));
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM),
              ::testing::UnorderedElementsAre("stubborn", "polite"));
  EXPECT_EQ(rec(id, "stubborn").exitCode, 137);
  EXPECT_EQ(rec(id, "polite").exitCode, 143);
}

// --- 4. non-essential exit

TEST_F(RuntimeTest, NonEssentialExitDoesNotStopTheTask) {
  auto id =
      runTask(taskDefinition("web", {container("app"), container("side", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  engine_->exit(cid(id, "side"), 1);
  ASSERT_TRUE(runUntil([&] { return rec(id, "side").lastStatus == "STOPPED"; }));
  runFor(300ms);
  EXPECT_EQ(task(id).lastStatus, "RUNNING");
  EXPECT_EQ(task(id).desiredStatus, "RUNNING");
  EXPECT_EQ(rec(id, "side").exitCode, 1);
  EXPECT_THAT(engine_->ids(Kind::kSignal), IsEmpty());
  EXPECT_EQ(engine_->state(cid(id, "app")), FakeEngine::State::kRunning);
}

// --- 5. StopTask

TEST_F(RuntimeTest, StopTaskWalksTheStoppingStatusesAndCleansUp) {
  auto id = runTask(taskDefinition(
      "web",
      {container("app"),
       container("side", {{"dependsOn", {{{"containerName", "app"}, {"condition", "START"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  runtime_->stopTask(id, "UserInitiated", "bye");
  EXPECT_EQ(task(id).desiredStatus, "STOPPED");
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));

  std::vector<std::string> statuses;
  for (const auto& e : taskEvents(id)) {
    if (e == "STOP_REQUESTED" || e.rfind("NETWORK_", 0) == 0 || e.rfind("HEALTH_", 0) == 0)
      continue;
    statuses.push_back(e);
  }
  EXPECT_THAT(statuses, ElementsAre("PROVISIONING", "PENDING", "RUNNING", "DEACTIVATING",
                                    "STOPPING", "DEPROVISIONING", "STOPPED"));
  const auto& t = task(id);
  EXPECT_EQ(t.stopCode, "UserInitiated");
  EXPECT_EQ(t.stoppedReason, "bye");
  EXPECT_GT(t.stoppingAt, 0);
  EXPECT_GE(t.stoppedAt, t.stoppingAt);
  EXPECT_EQ(t.attachmentStatus, "DELETED");
  EXPECT_EQ(network_->teardownCount(id), 1u);
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("side", "app"));
  for (const auto& c : t.containers) {
    EXPECT_EQ(engine_->count(Kind::kRemove, c.runtimeId), 1u) << c.name;
    EXPECT_EQ(c.desiredStatus, "STOPPED");
  }
  EXPECT_EQ(runtime_->liveTasks(), 0u);
}

TEST_F(RuntimeTest, StopTaskWhileADependentWaitsStillStopsTheDependency) {
  auto id = runTask(taskDefinition(
      "web", {container("init", {{"essential", false}}),
              container("app", {{"dependsOn",
                                 {{{"containerName", "init"}, {"condition", "COMPLETE"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "init").lastStatus == "RUNNING"; }));
  runtime_->stopTask(id, "UserInitiated", "bye");
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }, 3s))
      << "lastStatus=" << task(id).lastStatus;
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("init"));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("init"));
}

// Before 2363ddb such a task stayed PROVISIONING forever (TaskRunner::onNetworkReady called
// advance() before leaving PROVISIONING); this guards that fix.
TEST_F(RuntimeTest, StopTaskDuringProvisioningStopsOnceTheNetworkIsReady) {
  network_->holdSetup = true;
  auto id = runTask(taskDefinition("web", {container("app")}));
  ASSERT_TRUE(runUntil([&] { return network_->setups().size() == 1; }));
  runtime_->stopTask(id, "UserInitiated", "bye");
  network_->completeSetup(id);
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }, 3s))
      << "lastStatus=" << task(id).lastStatus;
  EXPECT_THAT(engine_->ids(Kind::kStart), IsEmpty());
  EXPECT_EQ(network_->teardownCount(id), 1u);
  EXPECT_EQ(task(id).stopCode, "UserInitiated");
}

// --- 6. network failure

TEST_F(RuntimeTest, NetworkSetupFailureFailsTheTaskBeforeAnyContainer) {
  network_->setupFailure = "no free address in 198.18.0.0/16";
  auto id = runTask(taskDefinition("web", {container("app"), container("side")}));
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  const auto& t = task(id);
  EXPECT_EQ(t.stopCode, "TaskFailedToStart");
  EXPECT_THAT(t.stoppedReason, StartsWith("ResourceInitializationError"));
  EXPECT_THAT(t.stoppedReason, HasSubstr("no free address"));
  EXPECT_EQ(t.desiredStatus, "STOPPED");
  EXPECT_THAT(engine_->calls(), IsEmpty());
  for (const auto& c : t.containers) EXPECT_EQ(c.lastStatus, "STOPPED") << c.name;
  EXPECT_EQ(runtime_->liveTasks(), 0u);
}

// --- 7. engine start failure

TEST_F(RuntimeTest, EssentialStartFailureFailsTheTask) {
  engine_->onStart = [](const ContainerSpec& spec) {
    if (endsWith(spec.id, "-app")) {
      return FakeEngine::StartOutcome{FakeEngine::StartOutcome::kFail,
                                      "runc create: exec format error"};
    }
    return FakeEngine::StartOutcome{};
  };
  auto id = runTask(taskDefinition(
      "web",
      {container("side"),
       container("app", {{"dependsOn", {{{"containerName", "side"}, {"condition", "START"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  const auto& t = task(id);
  EXPECT_EQ(t.stopCode, "TaskFailedToStart");
  EXPECT_THAT(rec(id, "app").reason, StartsWith("CannotStartContainerError"));
  EXPECT_THAT(rec(id, "app").reason, HasSubstr("exec format error"));
  EXPECT_THAT(t.stoppedReason, HasSubstr("CannotStartContainerError"));
  EXPECT_EQ(t.startedAt, 0);
  EXPECT_THAT(names(id, Kind::kSignal, SIGTERM), ElementsAre("side"));
  EXPECT_EQ(engine_->count(Kind::kRemove, cid(id, "side")), 1u);
  EXPECT_EQ(network_->teardownCount(id), 1u);
}

TEST_F(RuntimeTest, NonEssentialStartFailureStillLetsTheTaskRun) {
  engine_->onStart = [](const ContainerSpec& spec) {
    if (endsWith(spec.id, "-side")) {
      return FakeEngine::StartOutcome{FakeEngine::StartOutcome::kFail, "no such file"};
    }
    return FakeEngine::StartOutcome{};
  };
  auto id =
      runTask(taskDefinition("web", {container("app"), container("side", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); })) << task(id).lastStatus;
  EXPECT_EQ(rec(id, "side").lastStatus, "STOPPED");
  EXPECT_THAT(rec(id, "side").reason, StartsWith("CannotStartContainerError"));
  EXPECT_EQ(task(id).desiredStatus, "RUNNING");
}

// --- 8. health

TEST_F(RuntimeTest, TaskHealthAggregatesEssentialContainers) {
  // Probes are held so the test decides the order of their results (one 5 s interval).
  engine_->onExec = [](const std::string&, const std::vector<std::string>&) {
    return std::optional<ExecResult>();
  };
  auto def = define(taskDefinition(
      "web", {container("app", {{"healthCheck", healthCheck()}}),
              container("side", {{"healthCheck", healthCheck()}}),
              container("debug", {{"essential", false}, {"healthCheck", healthCheck()}})}));
  auto x = runTask(def);
  auto y = runTask(def);
  ASSERT_TRUE(runUntil(
      [&] {
        for (const auto& id : {x, y}) {
          for (const char* n : {"app", "side", "debug"}) {
            if (engine_->heldExecs(cid(id, n)) == 0) return false;
          }
        }
        return true;
      },
      8s));
  EXPECT_EQ(task(x).healthStatus, "UNKNOWN");
  EXPECT_THAT(engine_->calls().back().args, ElementsAre("/bin/sh", "-c", "check"));
  auto answer = [&](const std::string& id, const char* name, int code) {
    ASSERT_TRUE(engine_->completeExec(cid(id, name), ExecResult{code, false, "out"}));
    std::string want = code == 0 ? "HEALTHY" : "UNHEALTHY";
    ASSERT_TRUE(runUntil([&] { return rec(id, name).healthStatus == want; }));
  };
  // An early failure (before the first interval) does not count: still UNKNOWN.
  ASSERT_TRUE(engine_->completeExec(cid(y, "side"), ExecResult{1, false, "early"}));
  runFor(100ms);
  EXPECT_EQ(rec(y, "side").healthStatus, "UNKNOWN");
  // x: HEALTHY + UNKNOWN → UNKNOWN.
  answer(x, "app", 0);
  EXPECT_EQ(task(x).healthStatus, "UNKNOWN");
  answer(x, "side", 0);
  EXPECT_EQ(task(x).healthStatus, "HEALTHY");
  // One interval after the start, failures count (retries 1).
  ASSERT_TRUE(runUntil([&] { return engine_->heldExecs(cid(y, "side")) > 0; }));
  runFor(5s);
  // x: a failing non-essential container does not count.
  answer(x, "debug", 1);
  EXPECT_EQ(task(x).healthStatus, "HEALTHY");
  // y: UNHEALTHY + UNKNOWN → UNHEALTHY; UNHEALTHY + HEALTHY → UNHEALTHY.
  answer(y, "side", 1);
  EXPECT_EQ(task(y).healthStatus, "UNHEALTHY");
  answer(y, "app", 0);
  EXPECT_EQ(task(y).healthStatus, "UNHEALTHY");
  EXPECT_EQ(rec(y, "side").healthExitCode, 1);
  // A stand-alone task keeps running whatever its health.
  runFor(100ms);
  EXPECT_EQ(task(y).desiredStatus, "RUNNING");
}

TEST_F(RuntimeTest, DependsOnHealthyWaitsForAPassingProbe) {
  auto id = runTask(taskDefinition(
      "web", {container("proxy", {{"healthCheck", healthCheck()}}),
              container("app", {{"dependsOn",
                                 {{{"containerName", "proxy"}, {"condition", "HEALTHY"}}}}})}));
  ASSERT_TRUE(runUntil([&] { return rec(id, "proxy").lastStatus == "RUNNING"; }));
  // The first probe runs at once (not one 5 s interval later) and passes.
  ASSERT_TRUE(runUntil([&] { return requested(id, "app"); }, 3s));
  EXPECT_EQ(rec(id, "proxy").healthStatus, "HEALTHY");
  EXPECT_EQ(engine_->count(Kind::kExec, cid(id, "proxy")), 1u);
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  EXPECT_THAT(names(id, Kind::kStart), ElementsAre("proxy", "app"));
}

TEST_F(RuntimeTest, StartTimeoutOfAHealthyDependencyFailsTheTask) {
  // The probe never answers, so the proxy never turns HEALTHY.
  engine_->onExec = [](const std::string&, const std::vector<std::string>&) {
    return std::optional<ExecResult>();
  };
  auto id = runTask(taskDefinition(
      "web", {container("proxy", {{"healthCheck", healthCheck()}, {"startTimeout", 1}}),
              container("app", {{"dependsOn",
                                 {{{"containerName", "proxy"}, {"condition", "HEALTHY"}}}}})}));
  auto t0 = Clock::now();
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }, 4s)) << task(id).lastStatus;
  EXPECT_GE(Clock::now() - t0, 900ms);
  EXPECT_EQ(task(id).stopCode, "TaskFailedToStart");
  EXPECT_THAT(task(id).stoppedReason, HasSubstr("startTimeout"));
  EXPECT_FALSE(requested(id, "app"));
}

// --- 9. services

class ServiceTest : public RuntimeTest {
 protected:
  void SetUp() override {
    RuntimeTest::SetUp();
    call("RegisterTaskDefinition", taskDefinition("web", {container("app")}));
  }
  // Starts the service (desiredCount 2, maximumPercent 150, minimumHealthyPercent 50), rolls it
  // to web:2 and runs until the rollout settled; `observe` runs after every handler.
  bool rollToRevisionTwo(const std::function<void()>& observe) {
    createService(2, {{"maximumPercent", 150}, {"minimumHealthyPercent", 50}});
    if (!runUntil([&] { return runningTasks("web") == 2; })) return false;
    call("RegisterTaskDefinition",
         taskDefinition("web", {container("app", {{"command", {"sleep", "1000"}}})}));
    Json updated = call("UpdateService", {{"service", "web"}, {"taskDefinition", "web:2"}});
    EXPECT_EQ(updated["service"]["deployments"].size(), 2u);
    return runUntil([&] {
      observe();
      return liveTasks("web").size() == 2 && runningTasks("web", 2) == 2 &&
             service("web")["deployments"].size() == 1;
    });
  }
  Json createService(int desiredCount, const Json& deployment = Json::object()) {
    Json body = {{"serviceName", "web"},
                 {"taskDefinition", "web"},
                 {"desiredCount", desiredCount},
                 {"networkConfiguration", network()}};
    if (!deployment.empty()) body["deploymentConfiguration"] = deployment;
    return call("CreateService", body);
  }
};

TEST_F(ServiceTest, KeepsDesiredCountAndReplacesAStoppedTask) {
  Json created = createService(2);
  ASSERT_EQ(created["service"]["status"], "ACTIVE");
  ASSERT_TRUE(runUntil([&] { return runningTasks("web") == 2; }));
  std::string deploymentId = service("web")["deployments"][0]["id"];
  EXPECT_THAT(deploymentId, StartsWith("ecs-svc/"));
  auto tasks = liveTasks("web");
  ASSERT_EQ(tasks.size(), 2u);
  for (auto* t : tasks) {
    EXPECT_EQ(t->startedBy, deploymentId);
    EXPECT_EQ(t->group, "service:web");
    EXPECT_EQ(t->family, "web");
  }

  std::string victim = tasks[0]->id;
  engine_->exit(cid(victim, "app"), 1);
  ASSERT_TRUE(runUntil([&] { return status(victim, "STOPPED"); }));
  EXPECT_EQ(task(victim).stopCode, "EssentialContainerExited");
  ASSERT_TRUE(runUntil([&] { return runningTasks("web") == 2; }));
  EXPECT_EQ(registry_->tasks().size(), 3u);
  EXPECT_EQ(engine_->ids(Kind::kStart).size(), 3u);
  for (auto* t : liveTasks("web")) EXPECT_NE(t->id, victim);
}

TEST_F(ServiceTest, RollingUpdateStaysWithinMaximumPercent) {
  // ECS: maximumPercent bounds the tasks "in the RUNNING or PENDING state";
  // minimumHealthyPercent is a floor on RUNNING ones. Both checked after every handler.
  size_t maxActive = 0;
  int minRunning = 2;
  bool done = rollToRevisionTwo([&] {
    size_t active = 0;
    for (auto* t : liveTasks("web")) {
      const auto& s = t->lastStatus;
      active += s == "PROVISIONING" || s == "PENDING" || s == "RUNNING" ? 1 : 0;
    }
    maxActive = std::max(maxActive, active);
    minRunning = std::min(minRunning, runningTasks("web"));
  });
  EXPECT_LE(maxActive, 3u);
  EXPECT_GE(minRunning, 1);
  ASSERT_TRUE(done) << service("web").dump();
  Json s = service("web");
  EXPECT_EQ(s["taskDefinition"], registry_->arns().taskDefinition("web", 2));
  EXPECT_EQ(s["deployments"][0]["status"], "PRIMARY");
  EXPECT_EQ(s["deployments"][0]["taskDefinition"], registry_->arns().taskDefinition("web", 2));
  for (auto* t : liveTasks("web")) EXPECT_EQ(t->startedBy, s["deployments"][0]["id"]);
  // The two old tasks were stopped by the scheduler.
  int retired = 0;
  for (const auto& [_, t] : registry_->tasks()) {
    if (t.revision == 1) {
      EXPECT_TRUE(t.stopped());
      retired += t.stopCode == "ServiceSchedulerInitiated" ? 1 : 0;
    }
  }
  EXPECT_EQ(retired, 2);
  EXPECT_EQ(registry_->tasks().size(), 4u);
}

TEST_F(ServiceTest, DeploymentRolloutCompletes) {
  createService(2, {{"maximumPercent", 150}, {"minimumHealthyPercent", 50}});
  auto rollout = [&] { return service("web")["deployments"][0]["rolloutState"]; };
  ASSERT_TRUE(runUntil([&] { return runningTasks("web") == 2 && rollout() == "COMPLETED"; }))
      << service("web").dump();
  call("RegisterTaskDefinition",
       taskDefinition("web", {container("app", {{"command", {"sleep", "1000"}}})}));
  call("UpdateService", {{"service", "web"}, {"taskDefinition", "web:2"}});
  EXPECT_EQ(rollout(), "IN_PROGRESS");
  ASSERT_TRUE(runUntil([&] {
    return runningTasks("web", 2) == 2 && service("web")["deployments"].size() == 1 &&
           rollout() == "COMPLETED";
  })) << service("web").dump();
  EXPECT_THAT(service("web")["events"][0]["message"].get<std::string>(),
              HasSubstr("has reached a steady state"));
}

TEST_F(ServiceTest, ScaleToZeroAndDeleteMakesItInactive) {
  createService(2);
  ASSERT_TRUE(runUntil([&] { return runningTasks("web") == 2; }));
  int httpStatus = 0;
  Json refused = call("DeleteService", {{"service", "web"}}, &httpStatus);
  EXPECT_EQ(httpStatus, 400);
  EXPECT_EQ(refused["__type"], "InvalidParameterException");

  call("UpdateService", {{"service", "web"}, {"desiredCount", 0}});
  ASSERT_TRUE(runUntil([&] { return liveTasks("web").empty(); }));
  for (const auto& [_, t] : registry_->tasks()) EXPECT_EQ(t.stopCode, "ServiceSchedulerInitiated");
  Json deleted = call("DeleteService", {{"service", "web"}});
  EXPECT_EQ(deleted["service"]["status"], "DRAINING");
  ASSERT_TRUE(runUntil([&] { return service("web")["status"] == "INACTIVE"; }));
  EXPECT_EQ(registry_->tasks().size(), 2u);  // no task was started after the scale-down
  Json listed = call("ListServices", Json::object());
  EXPECT_THAT(listed["serviceArns"], IsEmpty());
}

// --- 11. throttling

TEST_F(ServiceTest, TasksThatNeverStartAreThrottled) {
  engine_->onStart = [](const ContainerSpec&) {
    return FakeEngine::StartOutcome{FakeEngine::StartOutcome::kFail, "runc create: no such file"};
  };
  createService(1);
  runFor(3s);
  size_t starts = engine_->ids(Kind::kStart).size();
  EXPECT_GE(starts, 1u);
  EXPECT_LE(starts, 3u);
  for (const auto& [_, t] : registry_->tasks()) {
    if (t.stopped()) {
      EXPECT_EQ(t.stopCode, "TaskFailedToStart");
    }
  }
  Json s = service("web");
  EXPECT_GE(s["deployments"][0]["failedTasks"].get<int>(), 1);
}

// --- API shape

TEST_F(RuntimeTest, ApiErrorsAreTypedJsonWithStatus400) {
  int httpStatus = 0;
  Json unknown = call("Frobnicate", Json::object(), &httpStatus);
  EXPECT_EQ(httpStatus, 400);
  EXPECT_EQ(unknown, (Json{{"__type", "UnknownOperationException"},
                           {"message", "Unknown operation Frobnicate"}}));

  Json invalid = call("RegisterTaskDefinition",
                      {{"family", "web"}, {"containerDefinitions", Json::array()}}, &httpStatus);
  EXPECT_EQ(httpStatus, 400);
  EXPECT_EQ(invalid["__type"], "ClientException");
  EXPECT_EQ(invalid.size(), 2u);
  EXPECT_FALSE(invalid.value("message", "").empty());

  net::HttpRequest garbage;
  garbage.method = "POST";
  garbage.path = "/";
  garbage.headers["x-amz-target"] = "AmazonEC2ContainerServiceV20141113.ListTasks";
  garbage.body = "{not json";
  auto response = api_->handle(garbage);
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(Json::parse(response.body).value("__type", ""), "SerializationException");

  call("RegisterTaskDefinition", taskDefinition("web", {container("app")}));
  Json noNetwork = call("RunTask", {{"taskDefinition", "web"}}, &httpStatus);
  EXPECT_EQ(httpStatus, 400);
  EXPECT_EQ(noNetwork["__type"], "InvalidParameterException");
  EXPECT_EQ(noNetwork["message"],
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.");
  EXPECT_THAT(engine_->calls(), IsEmpty());

  // Bad overrides are refused before anything starts (a non-string would once have thrown
  // while the container spec was built).
  Json net = {{"awsvpcConfiguration", {{"subnets", {"s"}}}}};
  Json badEnv = call("RunTask",
                     {{"taskDefinition", "web"},
                      {"networkConfiguration", net},
                      {"overrides",
                       {{"containerOverrides",
                         {{{"name", "app"}, {"environment", {{{"name", "X"}, {"value", 5}}}}}}}}}},
                     &httpStatus);
  EXPECT_EQ(httpStatus, 400);
  EXPECT_EQ(badEnv["__type"], "InvalidParameterException");
  EXPECT_THAT(engine_->calls(), IsEmpty());
}

TEST_F(RuntimeTest, TaskNetworkListenerServesOnlyReads) {
  EcsApi taskApi(*runtime_, ApiAccess::kReadOnly);
  auto post = [&](const std::string& op, const Json& body) {
    net::HttpRequest r;
    r.method = "POST";
    r.path = "/";
    r.headers["x-amz-target"] = "AmazonEC2ContainerServiceV20141113." + op;
    r.body = body.dump();
    return taskApi.handle(r);
  };
  auto denied = post("RegisterTaskDefinition", taskDefinition("web", {container("app")}));
  EXPECT_EQ(denied.status, 400);
  EXPECT_EQ(Json::parse(denied.body).value("__type", ""), "AccessDeniedException");
  EXPECT_EQ(post("ListTasks", Json::object()).status, 200);
  EXPECT_EQ(post("DescribeClusters", Json::object()).status, 200);
}

TEST_F(RuntimeTest, RunTaskThroughTheApi) {
  call("RegisterTaskDefinition", taskDefinition("web", {container("app")}));
  Json ran = call("RunTask", {{"taskDefinition", "web"}, {"networkConfiguration", network()}});
  ASSERT_EQ(ran["tasks"].size(), 1u);
  EXPECT_EQ(ran["tasks"][0]["lastStatus"], "PROVISIONING");
  EXPECT_EQ(ran["tasks"][0]["group"], "family:web");
  std::string arn = ran["tasks"][0]["taskArn"];
  std::string id = lastArnSegment(arn);
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  Json described = call("DescribeTasks", {{"tasks", {arn}}});
  ASSERT_EQ(described["tasks"].size(), 1u);
  EXPECT_EQ(described["tasks"][0]["lastStatus"], "RUNNING");
  EXPECT_EQ(described["tasks"][0]["containers"][0]["lastStatus"], "RUNNING");

  Json stopped = call("StopTask", {{"task", id}});
  EXPECT_EQ(stopped["task"]["desiredStatus"], "STOPPED");
  ASSERT_TRUE(runUntil([&] { return status(id, "STOPPED"); }));
  described = call("DescribeTasks", {{"tasks", {id}}});
  EXPECT_EQ(described["tasks"][0]["stoppedReason"], "Task stopped by user");
  EXPECT_EQ(described["tasks"][0]["stopCode"], "UserInitiated");
}

// --- 10. persistence and restart

TEST_F(RuntimeTest, StateFileRoundTripsEveryRecord) {
  auto id = runTask(taskDefinition("web", {container("app")}));
  ASSERT_TRUE(runUntil([&] { return status(id, "RUNNING"); }));
  std::string path = dir_ + "/state.json";
  ASSERT_TRUE(runUntil([&] { return std::filesystem::exists(path); }));
  ASSERT_TRUE(registry_->save().has_value());

  asio::io_context io2;
  auto reopened = Registry::open(io2, dir_, ArnScheme{});
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  auto& r2 = **reopened;
  ASSERT_EQ(r2.tasks().size(), 1u);
  ASSERT_NE(r2.task(id), nullptr);
  EXPECT_EQ(r2.task(id)->lastStatus, "RUNNING");
  EXPECT_EQ(toStateJson(*r2.task(id)), toStateJson(task(id)));
  ASSERT_NE(r2.taskDefinition("web:1"), nullptr);
  EXPECT_EQ(toStateJson(*r2.taskDefinition("web:1")),
            toStateJson(*registry_->taskDefinition("web:1")));
  ASSERT_NE(r2.activeCluster("default"), nullptr);
  EXPECT_EQ(r2.clusters().size(), registry_->clusters().size());
}

TEST_F(RuntimeTest, StartAfterARestartRecordsLiveTasksStopped) {
  auto id = runTask(taskDefinition("web", {container("app")}));
  auto pending = runTask(taskDefinition(
      "slow",
      {container("app", {{"dependsOn", {{{"containerName", "init"}, {"condition", "SUCCESS"}}}}}),
       container("init", {{"essential", false}})}));
  ASSERT_TRUE(runUntil([&] {
    return status(id, "RUNNING") && status(pending, "PENDING") &&
           rec(pending, "init").lastStatus == "RUNNING";
  }));
  ASSERT_TRUE(registry_->save().has_value());

  // A new process: same data dir, fresh drivers.
  asio::io_context io2;
  auto opened = Registry::open(io2, dir_, ArnScheme{});
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  auto registry2 = std::move(*opened);
  FakeEngine engine2(io2);
  FakeNetwork network2(io2);
  {
    Runtime runtime2(io2, *registry2, engine2, network2, RuntimeOptions{.dataDir = dir_});
    runtime2.start();
    for (const auto& ref : {id, pending}) {
      const auto* t = registry2->task(ref);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->lastStatus, "STOPPED");
      EXPECT_EQ(t->desiredStatus, "STOPPED");
      EXPECT_THAT(t->stoppedReason, HasSubstr("restarted"));
      EXPECT_GT(t->stoppedAt, 0);
      for (const auto& c : t->containers) EXPECT_EQ(c.lastStatus, "STOPPED");
    }
    EXPECT_EQ(registry2->task(id)->stopCode, "TerminationNotice");
    EXPECT_EQ(registry2->task(pending)->stopCode, "TaskFailedToStart");
    EXPECT_EQ(runtime2.liveTasks(), 0u);
    io2.run_for(50ms);
    EXPECT_THAT(engine2.calls(), IsEmpty());
  }
  // The STOPPED records are what a third start sees.
  asio::io_context io3;
  auto third = Registry::open(io3, dir_, ArnScheme{});
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ((*third)->task(id)->lastStatus, "STOPPED");
}

}  // namespace
}  // namespace taskmesh::runtime
