#include "runtime/drivers/runc_engine.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include <filesystem>
#include <iostream>
#include <optional>

#include "runtime/drivers/cni_network.h"
#include "runtime/drivers/oci_bundle.h"
#include "runtime/drivers/test_support.h"

namespace taskmesh::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::runUntil;
using testing::slurp;

class RuncEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProcessSupervisor::create(io_);
    ASSERT_TRUE(s) << s.error().message;
    sup_ = std::move(*s);
    engine_ = makeEngine();
    ASSERT_TRUE(engine_);
  }
  void TearDown() override {
    if (!engine_) return;
    auto orphans = engine_->removeOrphans();
    EXPECT_TRUE(orphans) << orphans.error().message;
    runUntil(
        io_, [] { return false; }, 100ms);  // reap what was killed
    for (const auto& m : netns::readMountInfo()) {
      if (m.fsType != "cgroup" && m.fsType != "cgroup2") continue;
      EXPECT_FALSE(fs::exists(m.mountPoint + "/" + engine_->options().cgroupParent))
          << "cgroup left in " << m.mountPoint;
    }
  }
  std::unique_ptr<RuncEngine> makeEngine() {
    // hostBinary defaults to /proc/self/exe: this test binary.
    auto e = RuncEngine::create(
        io_, *sup_, {.root = dir_.path() + "/runc", .bundlesDir = dir_.path() + "/bundles"});
    EXPECT_TRUE(e) << e.error().message;
    return e ? std::move(*e) : nullptr;
  }
  ContainerSpec spec(const std::string& id, std::vector<std::string> args) {
    return {.id = id,
            .bundleDir = dir_.path() + "/bundles/" + id,
            .args = std::move(args),
            .env = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
            .logPath = dir_.path() + "/logs/" + id + ".log"};
  }
  struct Run {
    std::optional<Result<pid_t>> started;
    std::optional<int> exited;
  };
  std::shared_ptr<Run> start(const ContainerSpec& s) {
    auto run = std::make_shared<Run>();
    engine_->start(
        s, [run](Result<pid_t> p) { run->started = std::move(p); },
        [run](int code) { run->exited = code; });
    EXPECT_TRUE(runUntil(io_, [&] { return run->started.has_value(); }));
    return run;
  }
  // Starts `sh -c script` and waits for its exit code (-1000 on a deadline or start error).
  int runToExit(const ContainerSpec& s) {
    auto run = start(s);
    if (!run->started || !*run->started) {
      ADD_FAILURE() << (run->started ? run->started->error().message : "no start");
      return -1000;
    }
    if (!runUntil(io_, [&] { return run->exited.has_value(); })) return -1000;
    return *run->exited;
  }
  ExecResult exec(const std::string& id, std::vector<std::string> args,
                  std::chrono::milliseconds timeout) {
    std::optional<ExecResult> r;
    engine_->exec(id, args, timeout, [&](ExecResult e) { r = std::move(e); });
    EXPECT_TRUE(runUntil(io_, [&] { return r.has_value(); }));
    return r.value_or(ExecResult{});
  }
  Result<void> remove(const std::string& id) {
    std::optional<Result<void>> r;
    engine_->remove(id, [&](Result<void> e) { r = std::move(e); });
    if (!runUntil(io_, [&] { return r.has_value(); }))
      return makeError(ErrorCode::kTimeout, "test deadline");
    return *r;
  }

  testing::TempDir dir_;
  asio::io_context io_;
  std::unique_ptr<ProcessSupervisor> sup_;
  std::unique_ptr<RuncEngine> engine_;
};

TEST(OciBundle, ConfigHasTheHostImageLayout) {
  ContainerSpec s{.id = "c1",
                  .bundleDir = "/b/c1",
                  .args = {"/bin/true"},
                  .netnsPath = "/ns/t1",
                  .logPath = "/l"};
  s.mounts.push_back({"/data", "/data", true});
  auto c = ociConfig(s, {"/usr/bin/taskmesh", "tm"});
  EXPECT_EQ(c["ociVersion"], "1.0.2");
  EXPECT_EQ(c["linux"]["cgroupsPath"], "/tm/c1");
  EXPECT_GE(c["process"]["rlimits"][0]["hard"], 1024);
  EXPECT_LE(c["process"]["rlimits"][0]["hard"], 65536);
  auto caps = c["process"]["capabilities"]["bounding"];
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_NET_BIND_SERVICE"), caps.end());
  bool netns = false;
  for (const auto& ns : c["linux"]["namespaces"])
    netns |= ns["type"] == "network" && ns["path"] == "/ns/t1";
  EXPECT_TRUE(netns);
  const auto& m = c["mounts"];
  EXPECT_EQ(m.back()["options"], nlohmann::json({"rbind", "ro"}));
  EXPECT_EQ(m[m.size() - 2]["destination"], kContainerBinaryPath);
  EXPECT_FALSE(
      validateContainerSpec({.id = "bad/id", .bundleDir = "/b", .args = {"x"}, .logPath = "/l"}));
  EXPECT_FALSE(validateContainerSpec({.id = "ok", .bundleDir = "/b", .args = {}, .logPath = "/l"}));
}

TEST_F(RuncEngineTest, ExitCodeAndBothStreamsInTheLog) {
  auto s = spec("exit3", {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  auto start = std::chrono::steady_clock::now();
  auto run = this->start(s);
  auto startMs = testing::msSince(start);
  ASSERT_TRUE(*run->started) << run->started->error().message;
  EXPECT_GT(**run->started, 0);
  ASSERT_TRUE(runUntil(io_, [&] { return run->exited.has_value(); }));
  EXPECT_EQ(*run->exited, 3);
  EXPECT_EQ(slurp(s.logPath), "out\nerr\n");
  EXPECT_TRUE(remove("exit3"));
  EXPECT_FALSE(fs::exists(s.bundleDir));
  std::cout << "[timing] runc run -d (start() to started) " << startMs << " ms\n";
}

TEST_F(RuncEngineTest, StartFailureCarriesRuncsMessage) {
  auto run = start(spec("nobin", {"/nonexistent"}));
  ASSERT_FALSE(*run->started);
  EXPECT_NE(run->started->error().message.find("no such file"), std::string::npos)
      << run->started->error().message;
  runUntil(
      io_, [] { return false; }, 100ms);
  EXPECT_FALSE(run->exited.has_value());
  auto bad = start(spec("bad id", {"/bin/true"}));
  ASSERT_FALSE(*bad->started);
  EXPECT_EQ(bad->started->error().code, ErrorCode::kInvalidArgument);
}

TEST_F(RuncEngineTest, SignalStopsTheContainer) {
  // SIGTERM goes to the first process only (as `docker stop` sends it): an entrypoint that
  // traps it decides; its child never sees the signal (it would have printed child-term).
  auto termSpec = spec("term", {"/bin/sh", "-c",
                                "sh -c 'trap \"echo child-term; exit 1\" TERM; sleep 1000 & "
                                "wait' & child=$!; trap 'echo parent-term; exit 7' TERM; "
                                "wait $child"});
  auto run = start(termSpec);
  ASSERT_TRUE(*run->started) << run->started->error().message;
  std::this_thread::sleep_for(300ms);  // the traps are set
  engine_->signal("term", SIGTERM);
  ASSERT_TRUE(runUntil(io_, [&] { return run->exited.has_value(); }));
  EXPECT_EQ(*run->exited, 7);
  EXPECT_EQ(slurp(termSpec.logPath), "parent-term\n");

  // A bare `sleep` is the pid namespace's init: the kernel drops signals it has no handler
  // for (as with Docker without --init), so SIGTERM does nothing and SIGKILL is needed.
  auto bare = start(spec("bare", {"/bin/sleep", "1000"}));
  ASSERT_TRUE(*bare->started) << bare->started->error().message;
  engine_->signal("bare", SIGTERM);
  runUntil(
      io_, [&] { return bare->exited.has_value(); }, 500ms);
  EXPECT_FALSE(bare->exited.has_value());
  engine_->signal("bare", SIGKILL);
  ASSERT_TRUE(runUntil(io_, [&] { return bare->exited.has_value(); }));
  EXPECT_EQ(*bare->exited, 137);
  engine_->signal("no-such-container", SIGTERM);  // ignored
  EXPECT_TRUE(remove("term"));
  EXPECT_TRUE(remove("bare"));
}

TEST_F(RuncEngineTest, Exec) {
  auto run = start(spec("execme", {"/bin/sleep", "1000"}));
  ASSERT_TRUE(*run->started) << run->started->error().message;
  auto start = std::chrono::steady_clock::now();
  auto t = exec("execme", {"/bin/true"}, 5s);
  auto execMs = testing::msSince(start);
  EXPECT_EQ(t.exitCode, 0);
  EXPECT_FALSE(t.timedOut);
  EXPECT_EQ(exec("execme", {"/bin/false"}, 5s).exitCode, 1);
  auto out = exec("execme", {"/bin/sh", "-c", "echo hello; echo oops >&2"}, 5s);
  // runc relays the two streams separately: their order is not preserved.
  EXPECT_EQ(out.output.size(), 11u);
  EXPECT_NE(out.output.find("hello\n"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("oops\n"), std::string::npos) << out.output;
  start = std::chrono::steady_clock::now();
  auto slow = exec("execme", {"/bin/sleep", "30"}, 300ms);
  EXPECT_TRUE(slow.timedOut);
  EXPECT_EQ(slow.exitCode, 143);
  EXPECT_LT(testing::msSince(start), 3000);
  auto gone = exec("no-such-container", {"/bin/true"}, 5s);
  EXPECT_NE(gone.exitCode, 0);
  engine_->signal("execme", SIGKILL);
  ASSERT_TRUE(runUntil(io_, [&] { return run->exited.has_value(); }));
  EXPECT_TRUE(remove("execme"));
  std::cout << "[timing] runc exec true " << execMs << " ms\n";
}

TEST_F(RuncEngineTest, ReadonlyRootfs) {
  auto ro = spec("ro", {"/bin/sh", "-c", "touch /x"});
  ro.readonlyRootfs = true;
  EXPECT_NE(runToExit(ro), 0);
  EXPECT_EQ(runToExit(spec("rw", {"/bin/sh", "-c", "touch /x && touch /tmp/y"})), 0);
  auto roTmp = spec("rotmp", {"/bin/sh", "-c", "touch /tmp/y"});
  roTmp.readonlyRootfs = true;
  EXPECT_EQ(runToExit(roTmp), 0) << "/tmp is a tmpfs even with a read-only rootfs";
}

TEST_F(RuncEngineTest, BindMountSharedByTwoContainers) {
  std::string shared = dir_.path() + "/volume";  // created by the engine
  auto writer = spec("writer", {"/bin/sh", "-c", "echo from-writer > /shared/msg"});
  writer.mounts.push_back({shared, "/shared", false});
  auto reader = spec("reader", {"/bin/sh", "-c", "cat /shared/msg; echo no >> /shared/msg"});
  reader.mounts.push_back({shared, "/shared", true});
  EXPECT_EQ(runToExit(writer), 0);
  EXPECT_NE(runToExit(reader), 0);  // read-only: the append fails
  EXPECT_EQ(slurp(reader.logPath).substr(0, 12), "from-writer\n");
  EXPECT_EQ(slurp(shared + "/msg"), "from-writer\n");
}

TEST_F(RuncEngineTest, EnvCwdUserAndHostBinary) {
  auto s = spec("who", {"/bin/sh", "-c",
                        "echo \"$GREETING\"; pwd; id -u; id -g; hostname; "
                        "test -x /usr/local/bin/taskmesh && echo has-binary; "
                        "touch /tmp/mine && echo tmp-writable"});
  s.env.push_back("GREETING=hi there");
  s.cwd = "/tmp";
  s.uid = 1234;
  s.gid = 4321;
  s.hostname = "myhost";
  EXPECT_EQ(runToExit(s), 0);
  EXPECT_EQ(slurp(s.logPath), "hi there\n/tmp\n1234\n4321\nmyhost\nhas-binary\ntmp-writable\n");
}

TEST_F(RuncEngineTest, JoinsTheTaskNetworkNamespace) {
  testing::NetSlot slot;
  ASSERT_TRUE(slot.ok());
  auto net = CniNetwork::create(io_, *sup_,
                                {.dataDir = dir_.path() + "/net",
                                 .bridgeName = slot.bridgeName(),
                                 .subnet = slot.subnet(),
                                 .networkName = "tmtest"});
  ASSERT_TRUE(net) << net.error().message;
  std::optional<Result<TaskAttachment>> a;
  (*net)->setup("nettask", [&](Result<TaskAttachment> r) { a = std::move(r); });
  ASSERT_TRUE(runUntil(io_, [&] { return a.has_value(); }));
  ASSERT_TRUE(*a) << a->error().message;
  auto s = spec("netc", {"/bin/sh", "-c", "ip -4 -o addr show dev eth0"});
  s.netnsPath = (*a)->netnsPath;
  EXPECT_EQ(runToExit(s), 0);
  EXPECT_NE(slurp(s.logPath).find((*a)->ipv4 + "/24"), std::string::npos) << slurp(s.logPath);
  EXPECT_TRUE(remove("netc"));
  std::optional<Result<void>> down;
  (*net)->teardown("nettask", [&](Result<void> r) { down = std::move(r); });
  ASSERT_TRUE(runUntil(io_, [&] { return down.has_value(); }));
  EXPECT_TRUE(*down);
  auto removed = (*net)->removeBridge();
  EXPECT_TRUE(removed) << removed.error().message;
}

TEST_F(RuncEngineTest, RemoveOrphansKillsWhatACrashLeft) {
  auto run = start(spec("left", {"/bin/sleep", "1000"}));
  ASSERT_TRUE(*run->started) << run->started->error().message;
  pid_t pid = **run->started;
  // "Crash": the engine and the supervisor go away without stopping the container.
  engine_.reset();
  sup_.reset();
  auto s = ProcessSupervisor::create(io_);
  ASSERT_TRUE(s);
  sup_ = std::move(*s);
  engine_ = makeEngine();
  ASSERT_TRUE(engine_);
  auto removed = engine_->removeOrphans();
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, std::vector<std::string>{"left"});
  EXPECT_TRUE(runUntil(
      io_, [&] { return !testing::processExists(pid); }, 10s));
  auto list = sup_->runCommandSync(
      {.argv = {"/usr/bin/runc", "--root", dir_.path() + "/runc", "list", "-q"}});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->out, "");
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/bundles"));
}

}  // namespace
}  // namespace taskmesh::runtime
