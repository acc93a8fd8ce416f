#include "agent/check_runners.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aws/test_http_server.h"
#include "base/file.h"

namespace taskmesh::agent {
namespace {

using namespace std::chrono_literals;
using aws::testing::TestHttpServer;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A handler that blocks until the test opens the gate (bounded, so a failing test still ends).
class Gate {
 public:
  void wait(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, limit, [this] { return open_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/taskmesh-checks-XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// True while `pid` is a live process (not gone, not a zombie waiting for its reaper).
bool processAlive(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
  char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X';
}

// The agent's wiring (agent.cc) around a real io_context run on the test thread, a LocalState
// and a ServerLink with no servers.
class CheckRunnersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalState::Listener l;
    l.checkAdded = [this](const std::string& id) { runners.start(id); };
    l.checkRemoved = [this](const std::string& id) { runners.stop(id); };
    l.checkChanged = [this](const std::string& id) {
      if (const LocalCheck* c = state.check(id)) history[id].push_back(c->check.status);
      if (onCheckChanged) onCheckChanged(id);
      asio::post(io, [this, id] { runners.localStatusChanged(id); });
    };
    l.serviceChanged = [this](const std::string&) {
      asio::post(io, [this] { runners.localStatusChanged(""); });
    };
    state.setListener(l);
  }

  // Runs the io_context until `done` holds; false when `limit` passed first.
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io.run_one_for(5ms);
    }
    return true;
  }
  // Runs the io_context for `d` (for tests about time passing).
  void runFor(std::chrono::milliseconds d) {
    runUntil([] { return false; }, d);
  }
  bool reaches(const std::string& id, const std::string& wanted,
               std::chrono::milliseconds limit = 1500ms) {
    return runUntil([&] { return status(id) == wanted; }, limit);
  }
  std::string status(const std::string& id) const {
    const LocalCheck* c = state.check(id);
    return c == nullptr ? "(none)" : c->check.status;
  }
  std::string output(const std::string& id) const {
    const LocalCheck* c = state.check(id);
    return c == nullptr ? "(none)" : c->check.output;
  }

  CheckDefinition decoded(const std::string& json) {
    DecodeOptions options;
    options.enableScriptChecks = true;
    auto d = decodeCheckDefinition(Json::parse(json), "", options);
    EXPECT_TRUE(d) << d.error().message;
    return d.value_or(CheckDefinition{});
  }
  void addCheck(const std::string& json) {
    auto added = state.addCheck(decoded(json));
    EXPECT_TRUE(added) << added.error().message;
  }
  void registerService(const std::string& json) {
    auto defs = decodeServiceRegistration(Json::parse(json), DecodeOptions{},
                                          [](const std::string&) { return 21000; });
    ASSERT_TRUE(defs) << defs.error().message;
    for (const auto& d : *defs) state.addService(d, false);
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  ServerLink servers{io, ServerLinkOptions{}};
  LocalState state{"node-1"};
  CheckRunners runners{io, state, servers};
  std::map<std::string, std::vector<std::string>> history;  // statuses seen per check
  std::function<void(const std::string&)> onCheckChanged;
};

// --- HTTP --------------------------------------------------------------------------------------

TEST_F(CheckRunnersTest, HttpFirstRunIsImmediateAndSendsTheRequestAsDefined) {
  std::mutex mu;
  int requests = 0;
  std::string method, header, body, path;
  TestHttpServer server([&](const net::HttpRequest& req) {
    std::lock_guard lock(mu);
    ++requests;
    method = req.method;
    header = req.header("x-check");
    body = req.body;
    path = req.path;
    return net::HttpResponse::text(200, "fine");
  });
  auto started = std::chrono::steady_clock::now();
  addCheck(R"({"Name": "web", "HTTP": ")" + server.url() +
           R"(/health", "Method": "POST", "Header": {"X-Check": ["yes"]}, "Body": "ping",
               "Interval": "10s"})");
  EXPECT_EQ(status("web"), "critical");
  // With a 10 s interval, passing within 1 s means the first run did not wait for it.
  ASSERT_TRUE(reaches("web", "passing", 1000ms)) << output("web");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1000ms);
  EXPECT_TRUE(contains(output("web"), "200")) << output("web");
  EXPECT_TRUE(contains(output("web"), "fine")) << output("web");
  std::lock_guard lock(mu);
  EXPECT_EQ(requests, 1);
  EXPECT_EQ(method, "POST");
  EXPECT_EQ(header, "yes");
  EXPECT_EQ(body, "ping");
  EXPECT_EQ(path, "/health");
}

TEST_F(CheckRunnersTest, HttpStatusCodesMapToCheckStatuses) {
  TestHttpServer server([](const net::HttpRequest& req) {
    int code = std::stoi(req.path.substr(1));
    return net::HttpResponse::text(code, code == 204 ? "" : "answer " + req.path);
  });
  const std::vector<std::pair<int, std::string>> cases = {
      {200, "passing"}, {204, "passing"}, {429, "warning"}, {503, "critical"}, {404, "critical"}};
  for (const auto& [code, wanted] : cases) {
    // Start from another status, so that reaching `wanted` shows the probe's result.
    std::string initial = wanted == "critical" ? "passing" : "critical";
    addCheck(R"({"Name": "c)" + std::to_string(code) + R"(", "HTTP": ")" + server.url() + "/" +
             std::to_string(code) + R"(", "Interval": "10s", "Status": ")" + initial + R"("})");
  }
  ASSERT_TRUE(runUntil(
      [&] {
        for (const auto& [code, wanted] : cases) {
          if (status("c" + std::to_string(code)) != wanted) return false;
        }
        return true;
      },
      1500ms))
      << [&] {
           std::string seen;
           for (const auto& [code, wanted] : cases) {
             std::string id = "c" + std::to_string(code);
             seen += id + "=" + status(id) + " (" + output(id) + ")\n";
           }
           return seen;
         }();
  for (const auto& [code, wanted] : cases) {
    std::string id = "c" + std::to_string(code);
    EXPECT_TRUE(contains(output(id), std::to_string(code))) << id << ": " << output(id);
  }
}

TEST_F(CheckRunnersTest, HttpSlowerThanTimeoutIsCritical) {
  Gate gate;
  TestHttpServer server([&](const net::HttpRequest&) {
    gate.wait(3000ms);
    return net::HttpResponse::text(200, "too late");
  });
  auto started = std::chrono::steady_clock::now();
  addCheck(R"({"Name": "slow", "HTTP": ")" + server.url() +
           R"(/", "Interval": "10s", "Timeout": "200ms", "Status": "passing"})");
  bool critical = reaches("slow", "critical", 1500ms);
  auto took = std::chrono::steady_clock::now() - started;
  gate.open();
  ASSERT_TRUE(critical) << output("slow");
  EXPECT_LT(took, 1500ms);
  EXPECT_TRUE(contains(output("slow"), "timed out")) << output("slow");
}

TEST_F(CheckRunnersTest, OutputIsCappedAtOutputMaxSize) {
  TestHttpServer server(
      [](const net::HttpRequest&) { return net::HttpResponse::text(200, std::string(500, 'x')); });
  addCheck(R"({"Name": "big", "HTTP": ")" + server.url() +
           R"(/", "Interval": "10s", "OutputMaxSize": 32})");
  ASSERT_TRUE(reaches("big", "passing"));
  std::string out = output("big");
  EXPECT_TRUE(out.ends_with("(output truncated)")) << out;
  EXPECT_LT(out.size(), 100u) << out;
}

TEST_F(CheckRunnersTest, StoppedRunnerProbesNoMore) {
  std::atomic<int> requests{0};
  TestHttpServer server([&](const net::HttpRequest&) {
    ++requests;
    return net::HttpResponse::text(200, "ok");
  });
  addCheck(R"({"Name": "fast", "HTTP": ")" + server.url() + R"(/", "Interval": "20ms"})");
  ASSERT_TRUE(runUntil([&] { return requests >= 3; }, 1500ms));
  ASSERT_TRUE(state.removeCheck("fast"));
  int atRemoval = requests;
  runFor(200ms);                       // ten intervals
  EXPECT_LE(requests - atRemoval, 1);  // at most the probe that was in flight
  EXPECT_EQ(state.check("fast"), nullptr);
}

TEST_F(CheckRunnersTest, SuccessBeforePassingNeedsTwoPassingProbesAfterAFailure) {
  std::atomic<int> served{0};
  const std::vector<int> script = {200, 503, 200, 200};
  TestHttpServer server([&](const net::HttpRequest&) {
    int n = served++;
    int code = n < static_cast<int>(script.size()) ? script[n] : 200;
    return net::HttpResponse::text(code, "probe " + std::to_string(n + 1));
  });
  std::vector<std::pair<std::string, int>> changes;  // status, probes served by then
  onCheckChanged = [&](const std::string& id) {
    if (id == "sbp") changes.emplace_back(status(id), served.load());
  };
  addCheck(R"({"Name": "sbp", "HTTP": ")" + server.url() +
           R"(/", "Interval": "30ms", "SuccessBeforePassing": 2})");
  ASSERT_TRUE(runUntil([&] { return changes.size() >= 4; }, 1500ms))
      << ::testing::PrintToString(changes);
  // The first result is reported at once (as Consul does); after the failure, the first 200
  // is not enough, the second one is.
  EXPECT_EQ(changes, (std::vector<std::pair<std::string, int>>{
                         {"critical", 0}, {"passing", 1}, {"critical", 2}, {"passing", 4}}));
}

TEST_F(CheckRunnersTest, FailuresBeforeCriticalHoldsThePassingStatus) {
  std::atomic<int> served{0};
  TestHttpServer server([&](const net::HttpRequest&) {
    int n = served++;
    return net::HttpResponse::text(n == 0 ? 200 : 503, "probe");
  });
  std::vector<std::pair<std::string, int>> changes;
  onCheckChanged = [&](const std::string& id) {
    if (id == "fbc") changes.emplace_back(status(id), served.load());
  };
  addCheck(R"({"Name": "fbc", "HTTP": ")" + server.url() +
           R"(/", "Interval": "30ms", "FailuresBeforeWarning": 1, "FailuresBeforeCritical": 3})");
  ASSERT_TRUE(runUntil([&] { return changes.size() >= 4; }, 1500ms));
  EXPECT_EQ(changes, (std::vector<std::pair<std::string, int>>{
                         {"critical", 0}, {"passing", 1}, {"warning", 2}, {"critical", 4}}));
}

// --- TCP ---------------------------------------------------------------------------------------

TEST_F(CheckRunnersTest, TcpToAListeningSocketPasses) {
  asio::ip::tcp::acceptor listener(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::string address = "127.0.0.1:" + std::to_string(listener.local_endpoint().port());
  addCheck(R"({"Name": "tcp", "TCP": ")" + address + R"(", "Interval": "10s"})");
  ASSERT_TRUE(reaches("tcp", "passing", 1000ms)) << output("tcp");
  EXPECT_TRUE(contains(output("tcp"), address)) << output("tcp");
}

TEST_F(CheckRunnersTest, TcpToAClosedPortIsCritical) {
  uint16_t port = 0;
  {
    asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  std::string address = "127.0.0.1:" + std::to_string(port);
  addCheck(R"({"Name": "tcp", "TCP": ")" + address +
           R"(", "Interval": "10s", "Status": "passing"})");
  ASSERT_TRUE(reaches("tcp", "critical", 1000ms));
  EXPECT_TRUE(contains(output("tcp"), address)) << output("tcp");
}

TEST_F(CheckRunnersTest, ACheckThatHasNotPassedYetRunsSoonerThanItsInterval) {
  uint16_t port = 0;
  {
    asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }
  std::string address = "127.0.0.1:" + std::to_string(port);
  addCheck(R"({"Name": "tcp", "TCP": ")" + address + R"(", "Interval": "3s"})");
  ASSERT_TRUE(reaches("tcp", "critical", 1000ms));
  // The app starts listening: seen within a few 150 ms paces, not at the next 3 s interval.
  asio::ip::tcp::acceptor app(io, {asio::ip::make_address("127.0.0.1"), port});
  EXPECT_TRUE(reaches("tcp", "passing", 1500ms)) << output("tcp");
}

// --- scripts -----------------------------------------------------------------------------------

TEST_F(CheckRunnersTest, ScriptExitCodesMapToStatuses) {
  addCheck(R"({"Name": "ok", "Args": ["true"], "Interval": "10s"})");
  addCheck(R"({"Name": "warn", "Args": ["sh", "-c", "exit 1"], "Interval": "10s"})");
  addCheck(R"({"Name": "crit", "Args": ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 2"],
               "Interval": "10s", "Status": "passing"})");
  ASSERT_TRUE(runUntil(
      [&] {
        return status("ok") == "passing" && status("warn") == "warning" &&
               status("crit") == "critical";
      },
      1500ms))
      << status("ok") << " " << status("warn") << " " << status("crit");
  EXPECT_TRUE(contains(output("crit"), "to-stdout")) << output("crit");
  EXPECT_TRUE(contains(output("crit"), "to-stderr")) << output("crit");
}

TEST_F(CheckRunnersTest, ScriptPastItsTimeoutIsKilledWithItsProcessGroup) {
  TempDir dir;
  std::string pidFile = dir.file("child.pid");
  auto started = std::chrono::steady_clock::now();
  addCheck(R"({"Name": "hang", "Args": ["sh", "-c", "sleep 5 & echo $! > )" + pidFile +
           R"(; wait"], "Interval": "10s", "Timeout": "300ms", "Status": "passing"})");
  ASSERT_TRUE(reaches("hang", "critical", 1500ms)) << output("hang");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);  // not the 5 s of the sleep
  EXPECT_TRUE(contains(output("hang"), "Timed out (300ms)")) << output("hang");

  // The background sleep was in the script's process group: it is gone too.
  auto text = readFile(pidFile);
  ASSERT_TRUE(text && !text->empty()) << "the script did not start its child";
  pid_t child = static_cast<pid_t>(std::stol(*text));
  ASSERT_GT(child, 0);
  EXPECT_TRUE(runUntil([&] { return !processAlive(child); }, 1000ms))
      << "pid " << child << " survived the timeout";
}

TEST_F(CheckRunnersTest, RunScriptCapsOutputAndReportsSpawnFailures) {
  std::optional<std::pair<int, std::string>> capped, code7, missing;
  runScript(io, {"sh", "-c", "printf 0123456789"}, 2000ms, 4,
            [&](int c, std::string out) { capped.emplace(c, std::move(out)); });
  runScript(io, {"sh", "-c", "exit 7"}, 2000ms, 100,
            [&](int c, std::string out) { code7.emplace(c, std::move(out)); });
  runScript(io, {"/nonexistent/taskmesh-no-such-check"}, 2000ms, 100,
            [&](int c, std::string out) { missing.emplace(c, std::move(out)); });
  ASSERT_TRUE(runUntil([&] { return capped && code7 && missing; }, 1500ms));
  EXPECT_EQ(*capped, (std::pair<int, std::string>{0, "0123"}));
  EXPECT_EQ(code7->first, 7);
  EXPECT_EQ(missing->first, -1);
  EXPECT_TRUE(contains(missing->second, "cannot run")) << missing->second;
}

// --- TTL ---------------------------------------------------------------------------------------

TEST_F(CheckRunnersTest, TtlExpiresToCriticalAndUpdatesResetIt) {
  addCheck(R"({"Name": "ttl", "TTL": "400ms"})");
  ASSERT_TRUE(runners.ttlUpdate("ttl", "passing", "alive"));
  EXPECT_EQ(status("ttl"), "passing");
  EXPECT_EQ(output("ttl"), "alive");
  // Refreshed every 100 ms for 600 ms (longer than the TTL): it never expires.
  for (int i = 0; i < 6; ++i) {
    runFor(100ms);
    ASSERT_TRUE(runners.ttlUpdate("ttl", "passing", "alive " + std::to_string(i)));
  }
  EXPECT_EQ(history["ttl"], (std::vector<std::string>{"critical", "passing"}));
  // Left alone, it expires.
  ASSERT_TRUE(reaches("ttl", "critical", 1500ms));
  EXPECT_TRUE(contains(output("ttl"), "TTL expired")) << output("ttl");
  ASSERT_TRUE(runners.ttlUpdate("ttl", "warning", "back"));
  EXPECT_EQ(status("ttl"), "warning");
  EXPECT_EQ(output("ttl"), "back");
}

TEST_F(CheckRunnersTest, TtlStateIsRestoredWithTheTimeThatWasLeft) {
  addCheck(R"({"Name": "ttl", "TTL": "30s"})");
  EXPECT_FALSE(runners.ttlRemaining("nope").has_value());
  ASSERT_TRUE(runners.ttlUpdate("ttl", "passing", "alive"));
  auto left = runners.ttlRemaining("ttl");
  ASSERT_TRUE(left.has_value());
  EXPECT_GT(*left, 29s);
  EXPECT_LE(*left, 30s);
  // As after an agent restart: the saved status comes back with 200 ms left, then expires.
  addCheck(R"({"Name": "restored", "TTL": "30s"})");
  runners.restoreTtl("restored", "passing", "saved", 200ms);
  EXPECT_EQ(status("restored"), "passing");
  EXPECT_EQ(output("restored"), "saved");
  ASSERT_TRUE(reaches("restored", "critical", 2000ms));
  // Nothing is restored with no time left, or onto a check that is not a TTL check.
  addCheck(R"({"Name": "late", "TTL": "30s"})");
  runners.restoreTtl("late", "passing", "", 0ms);
  EXPECT_EQ(status("late"), "critical");
}

TEST_F(CheckRunnersTest, TtlUpdateErrors) {
  addCheck(R"({"Name": "ttl", "TTL": "30s"})");
  asio::ip::tcp::acceptor listener(io, {asio::ip::make_address("127.0.0.1"), 0});
  addCheck(R"({"Name": "tcp", "TCP": "127.0.0.1:)" +
           std::to_string(listener.local_endpoint().port()) + R"(", "Interval": "10s"})");
  auto unknown = runners.ttlUpdate("nope", "passing", "");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  auto notTtl = runners.ttlUpdate("tcp", "passing", "");
  ASSERT_FALSE(notTtl);
  EXPECT_EQ(notTtl.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(notTtl.error().message, "TTL")) << notTtl.error().message;
  ASSERT_TRUE(state.removeCheck("ttl"));
  auto removed = runners.ttlUpdate("ttl", "passing", "");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, ErrorCode::kNotFound);
}

// --- alias -------------------------------------------------------------------------------------

TEST_F(CheckRunnersTest, LocalAliasFollowsTheAliasedService) {
  registerService(R"({"ID": "web-1", "Name": "web", "Port": 8080,
      "Check": {"CheckID": "web-ttl", "TTL": "30s", "Status": "passing"},
      "Connect": {"SidecarService": {"Port": 21000,
        "Check": {"CheckID": "alias", "AliasService": "web-1"}}}})");
  ASSERT_NE(state.check("alias"), nullptr);
  ASSERT_TRUE(reaches("alias", "passing", 1000ms)) << output("alias");

  ASSERT_TRUE(runners.ttlUpdate("web-ttl", "critical", "down"));
  ASSERT_TRUE(reaches("alias", "critical", 1000ms));
  ASSERT_TRUE(runners.ttlUpdate("web-ttl", "warning", "meh"));
  ASSERT_TRUE(reaches("alias", "warning", 1000ms));
  ASSERT_TRUE(runners.ttlUpdate("web-ttl", "passing", "up"));
  ASSERT_TRUE(reaches("alias", "passing", 1000ms));

  // A node-level check counts for every service.
  addCheck(R"({"Name": "node-ttl", "TTL": "30s"})");
  ASSERT_TRUE(reaches("alias", "critical", 1000ms));
  ASSERT_TRUE(state.removeCheck("node-ttl"));
  ASSERT_TRUE(reaches("alias", "passing", 1000ms));

  // The aliased service goes away.
  ASSERT_TRUE(state.removeService("web-1"));
  ASSERT_TRUE(reaches("alias", "critical", 1000ms));
  EXPECT_TRUE(contains(output("alias"), "could not be found")) << output("alias");
}

TEST_F(CheckRunnersTest, LocalNodeAliasMirrorsNodeChecksOnly) {
  // As Consul's CheckAlias: without AliasService, service checks do not count.
  registerService(R"({"Name": "web", "Check": {"CheckID": "web-ttl", "TTL": "30s"}})");
  addCheck(R"({"Name": "node-ttl", "TTL": "30s", "Status": "passing"})");
  addCheck(R"({"Name": "node-alias", "AliasNode": "node-1"})");
  ASSERT_EQ(status("web-ttl"), "critical");
  ASSERT_TRUE(reaches("node-alias", "passing", 1000ms)) << output("node-alias");
  ASSERT_TRUE(runners.ttlUpdate("node-ttl", "critical", "down"));
  ASSERT_TRUE(reaches("node-alias", "critical", 1000ms));
}

TEST_F(CheckRunnersTest, RemoteAliasUsesBlockingQueriesOnTheServers) {
  std::mutex mu;
  std::vector<std::string> targets;
  {
    TestHttpServer server([&](const net::HttpRequest& req) {
      {
        std::lock_guard lock(mu);
        targets.push_back(req.path + " index=" + req.param("index"));
      }
      // A blocking query at the current index: held a little, then answered unchanged.
      if (req.param("index") != "0") std::this_thread::sleep_for(50ms);
      net::HttpResponse r = net::HttpResponse::json(R"([
          {"Node": "remote", "CheckID": "serfHealth", "ServiceID": "", "Status": "passing"},
          {"Node": "remote", "CheckID": "service:web", "ServiceID": "web", "Status": "critical"}])");
      r.headers.emplace_back("X-Consul-Index", "5");
      return r;
    });
    ASSERT_TRUE(servers.addServer("127.0.0.1:" + std::to_string(server.port())));

    // Without AliasService only the node-level checks count (Consul's CheckAlias).
    addCheck(R"({"Name": "node-alias", "AliasNode": "remote"})");
    ASSERT_TRUE(reaches("node-alias", "passing", 1500ms)) << output("node-alias");
    addCheck(R"({"Name": "web-alias", "AliasNode": "remote", "AliasService": "web",
                 "Status": "passing"})");
    ASSERT_TRUE(reaches("web-alias", "critical", 1500ms)) << output("web-alias");
    std::lock_guard lock(mu);
    ASSERT_GE(targets.size(), 2u);
    EXPECT_EQ(targets[0], "/v1/health/node/remote index=0");
    EXPECT_NE(std::find(targets.begin(), targets.end(), "/v1/health/node/remote index=5"),
              targets.end());
  }
  // The server is gone: the queries in flight fail, and the aliases say so. (This also lets
  // those exchanges finish before the test's io_context goes.)
  EXPECT_TRUE(runUntil(
      [&] {
        return status("node-alias") == "critical" && !contains(output("web-alias"), "Aliased");
      },
      1500ms))
      << output("node-alias") << " / " << output("web-alias");
}

// --- DeregisterCriticalServiceAfter ------------------------------------------------------------

TEST_F(CheckRunnersTest, ReaperRemovesServicesCriticalForTooLong) {
  registerService(R"({"Name": "doomed", "Check": {"CheckID": "doomed-ttl", "TTL": "30s",
                      "DeregisterCriticalServiceAfter": "300ms"}})");
  registerService(R"({"Name": "healthy", "Check": {"CheckID": "healthy-ttl", "TTL": "30s",
                      "Status": "passing", "DeregisterCriticalServiceAfter": "300ms"}})");
  registerService(R"({"Name": "kept", "Check": {"CheckID": "kept-ttl", "TTL": "30s"}})");
  runners.startReaper();  // ticks every second
  ASSERT_TRUE(runUntil([&] { return state.service("doomed") == nullptr; }, 2500ms));
  EXPECT_EQ(state.check("doomed-ttl"), nullptr);
  EXPECT_TRUE(state.deletedServices().contains("doomed"));
  EXPECT_FALSE(runners.ttlUpdate("doomed-ttl", "passing", ""));  // its runner stopped
  EXPECT_NE(state.service("healthy"), nullptr);                  // not critical
  EXPECT_NE(state.service("kept"), nullptr);                     // critical, but no limit
}

}  // namespace
}  // namespace taskmesh::agent
