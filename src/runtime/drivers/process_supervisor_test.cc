#include "runtime/drivers/process_supervisor.h"

#include <gtest/gtest.h>

#include <optional>

#include "runtime/drivers/test_support.h"

namespace taskmesh::runtime {
namespace {

using namespace std::chrono_literals;
using testing::processExists;
using testing::runUntil;
using testing::slurp;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProcessSupervisor::create(io_);
    ASSERT_TRUE(s) << s.error().message;
    sup_ = std::move(*s);
  }
  // Spawns `sh -c script` and waits for its exit code.
  std::optional<int> shExit(const std::string& script) {
    std::optional<int> code;
    auto pid = sup_->spawn({.argv = {"/bin/sh", "-c", script}}, [&](int c) { code = c; });
    EXPECT_TRUE(pid) << pid.error().message;
    runUntil(io_, [&] { return code.has_value(); });
    return code;
  }
  Result<CommandResult> run(CommandSpec spec) {
    std::optional<Result<CommandResult>> result;
    sup_->runCommand(std::move(spec), [&](Result<CommandResult> r) { result = std::move(r); });
    if (!runUntil(io_, [&] { return result.has_value(); }))
      return makeError(ErrorCode::kTimeout, "test deadline");
    return std::move(*result);
  }

  asio::io_context io_;
  std::unique_ptr<ProcessSupervisor> sup_;
  testing::TempDir dir_;
};

TEST_F(SupervisorTest, ExitCodesFollowDockerConvention) {
  EXPECT_EQ(shExit("exit 0"), 0);
  EXPECT_EQ(shExit("exit 7"), 7);
  EXPECT_EQ(shExit("kill -TERM $$"), 143);
  EXPECT_EQ(shExit("kill -KILL $$"), 137);
  EXPECT_EQ(sup_->watchedCount(), 0u);
}

TEST_F(SupervisorTest, OnlyOneSupervisorPerProcess) {
  auto second = ProcessSupervisor::create(io_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
}

TEST_F(SupervisorTest, SpawnAppliesRedirectsEnvAndCwd) {
  std::string out = dir_.path() + "/out.log";
  std::optional<int> code;
  auto pid = sup_->spawn({.argv = {"/bin/sh", "-c", "echo \"$GREETING\"; pwd; echo oops >&2"},
                          .env = {"GREETING=hello"},
                          .stdoutPath = out,
                          .stderrPath = out,
                          .cwd = "/usr"},
                         [&](int c) { code = c; });
  ASSERT_TRUE(pid) << pid.error().message;
  ASSERT_TRUE(runUntil(io_, [&] { return code.has_value(); }));
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(slurp(out), "hello\n/usr\noops\n");
}

TEST_F(SupervisorTest, SpawnOfMissingBinaryIsAnError) {
  auto pid = sup_->spawn({.argv = {"/nonexistent/binary"}}, [](int) {});
  ASSERT_FALSE(pid);
  EXPECT_NE(pid.error().message.find("/nonexistent/binary"), std::string::npos);
}

// What `runc run -d` does: the parent exits, the grandchild is re-parented to us (subreaper)
// and its exit is reported to a watch() issued after the parent's exit.
TEST_F(SupervisorTest, OrphanedGrandchildIsReapedAndWatchable) {
  std::string pidFile = dir_.path() + "/grandchild.pid";
  EXPECT_EQ(shExit("(sleep 0.3; exit 5) & echo $! > " + pidFile), 0);
  int grandchild = std::stoi(slurp(pidFile));
  std::optional<int> code;
  sup_->watch(grandchild, [&](int c) { code = c; });
  ASSERT_TRUE(runUntil(io_, [&] { return code.has_value(); }));
  EXPECT_EQ(*code, 5);
  EXPECT_FALSE(processExists(grandchild));
}

TEST_F(SupervisorTest, ExitBeforeWatchIsRemembered) {
  std::string pidFile = dir_.path() + "/grandchild.pid";
  EXPECT_EQ(shExit("(sleep 0.2; exit 9) & echo $! > " + pidFile), 0);
  int grandchild = std::stoi(slurp(pidFile));
  ASSERT_TRUE(runUntil(io_, [&] { return !processExists(grandchild); }));  // reaped unwatched
  EXPECT_GE(sup_->unclaimedCount(), 1u);
  std::optional<int> code;
  sup_->watch(grandchild, [&](int c) { code = c; });
  EXPECT_FALSE(code.has_value());  // never from inside watch()
  ASSERT_TRUE(runUntil(io_, [&] { return code.has_value(); }));
  EXPECT_EQ(*code, 9);
}

TEST_F(SupervisorTest, WatchOfUnknownGonePidReportsMinusOne) {
  std::optional<int> code;
  sup_->watch(999999999, [&](int c) { code = c; });
  ASSERT_TRUE(runUntil(io_, [&] { return code.has_value(); }));
  EXPECT_EQ(*code, -1);
}

TEST_F(SupervisorTest, CommandCapturesStdoutStderrAndStdin) {
  auto r = run({.argv = {"/bin/sh", "-c", "cat; echo to-err >&2; exit 4"}, .stdinData = "input\n"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exitCode, 4);
  EXPECT_FALSE(r->timedOut);
  EXPECT_EQ(r->out, "input\n");
  EXPECT_EQ(r->err, "to-err\n");
}

TEST_F(SupervisorTest, CommandOutputIsBoundedToItsTail) {
  auto r = run({.argv = {"/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a; echo END"},
                .maxOutput = 1000,
                .mergeStderr = true});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exitCode, 0);
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_EQ(r->out.substr(996), "END\n");
}

TEST_F(SupervisorTest, CommandTimeoutKills) {
  auto start = std::chrono::steady_clock::now();
  auto r = run({.argv = {"/bin/sleep", "30"}, .timeout = 200ms});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timedOut);
  EXPECT_EQ(r->exitCode, 137);
  EXPECT_LT(testing::msSince(start), 3000);
}

TEST_F(SupervisorTest, CommandTimeoutTermsThenKills) {
  auto r = run({.argv = {"/bin/sleep", "30"}, .timeout = 100ms, .termGrace = 1s});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timedOut);
  EXPECT_EQ(r->exitCode, 143);  // sleep dies of the SIGTERM
  auto start = std::chrono::steady_clock::now();
  auto stubborn = run({.argv = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"},
                       .timeout = 100ms,
                       .termGrace = 300ms});
  ASSERT_TRUE(stubborn) << stubborn.error().message;
  EXPECT_EQ(stubborn->exitCode, 137);
  EXPECT_GE(testing::msSince(start), 350);
}

TEST_F(SupervisorTest, CommandOfMissingBinaryIsAnError) {
  auto r = run({.argv = {"/nonexistent/binary"}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/binary"), std::string::npos);
}

TEST_F(SupervisorTest, SyncCommand) {
  auto ok = sup_->runCommandSync({.argv = {"/bin/sh", "-c", "echo hi; echo ho >&2; exit 2"}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->exitCode, 2);
  EXPECT_EQ(ok->out, "hi\n");
  EXPECT_EQ(ok->err, "ho\n");
  auto start = std::chrono::steady_clock::now();
  auto slow = sup_->runCommandSync({.argv = {"/bin/sleep", "30"}, .timeout = 200ms});
  ASSERT_TRUE(slow) << slow.error().message;
  EXPECT_TRUE(slow->timedOut);
  EXPECT_EQ(slow->exitCode, 137);
  EXPECT_LT(testing::msSince(start), 3000);
  auto big = sup_->runCommandSync(
      {.argv = {"/bin/sh", "-c", "head -c 100000 /dev/zero; echo END"}, .maxOutput = 64});
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_EQ(big->out.size(), 64u);
  EXPECT_EQ(big->out.substr(60), "END\n");
}

TEST_F(SupervisorTest, DestroyingKillsRunningCommands) {
  std::string pidFile = dir_.path() + "/cmd.pid";
  bool called = false;
  sup_->runCommand({.argv = {"/bin/sh", "-c", "echo $$ > " + pidFile + "; exec sleep 30"}},
                   [&](Result<CommandResult>) { called = true; });
  ASSERT_TRUE(runUntil(io_, [&] { return slurp(pidFile).size() > 1; }));
  int pid = std::stoi(slurp(pidFile));
  sup_.reset();
  EXPECT_FALSE(processExists(pid));
  io_.restart();
  io_.run_for(50ms);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace taskmesh::runtime
