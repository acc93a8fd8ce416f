#include "agent/local_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace taskmesh::agent {
namespace {

CheckDefinition ttlCheck(const std::string& id, const std::string& serviceId,
                         const std::string& name = "") {
  CheckDefinition c;
  c.id = id;
  c.name = name.empty() ? id : name;
  c.serviceId = serviceId;
  c.kind = CheckKind::kTtl;
  c.ttl = Millis(30000);
  c.timeout = Millis(10000);
  return c;
}

ServiceDefinition serviceDef(const std::string& id, const std::string& name,
                             std::vector<CheckDefinition> checks = {}) {
  ServiceDefinition d;
  d.service.id = id;
  d.service.service = name;
  d.service.port = 8080;
  d.checks = std::move(checks);
  return d;
}

std::string statusOf(const LocalState& s, const std::string& id) {
  const LocalCheck* c = s.check(id);
  return c == nullptr ? "(none)" : c->check.status;
}

// --- Thresholds --------------------------------------------------------------------------------

// What the thresholds report for each result in turn ("-" = keep the current status).
std::vector<std::string> feed(Thresholds& t, const std::vector<std::string>& results) {
  std::vector<std::string> out;
  for (const auto& r : results) out.push_back(t.record(r).value_or("-"));
  return out;
}

CheckDefinition thresholds(int successBeforePassing, int failuresBeforeWarning,
                           int failuresBeforeCritical) {
  CheckDefinition d;
  d.successBeforePassing = successBeforePassing;
  d.failuresBeforeWarning = failuresBeforeWarning;
  d.failuresBeforeCritical = failuresBeforeCritical;
  return d;
}

using Seq = std::vector<std::string>;

TEST(ThresholdsTest, ZeroThresholdsFollowEveryResult) {
  Thresholds t(thresholds(0, 0, 0));
  EXPECT_EQ(feed(t, {"critical", "passing", "warning", "critical", "critical", "passing"}),
            (Seq{"critical", "passing", "warning", "critical", "critical", "passing"}));
}

TEST(ThresholdsTest, FirstResultIsReportedAtOnce) {
  // Consul's NewStatusHandler starts its counters at the thresholds.
  Thresholds pass(thresholds(2, 3, 3));
  EXPECT_EQ(feed(pass, {"passing"}), (Seq{"passing"}));
  Thresholds fail(thresholds(2, 3, 3));
  EXPECT_EQ(feed(fail, {"critical"}), (Seq{"critical"}));
}

TEST(ThresholdsTest, SuccessBeforePassing2) {
  Thresholds t(thresholds(2, 0, 0));
  EXPECT_EQ(feed(t, {"passing", "critical", "passing", "passing", "passing", "critical", "passing",
                     "critical", "passing", "passing"}),
            (Seq{"passing", "critical", "-", "passing", "passing", "critical", "-", "critical", "-",
                 "passing"}));
}

TEST(ThresholdsTest, FailuresBeforeCritical3) {
  // FailuresBeforeWarning defaults to FailuresBeforeCritical (definitions.cc).
  Thresholds t(thresholds(0, 3, 3));
  EXPECT_EQ(
      feed(t, {"passing", "critical", "critical", "critical", "critical", "passing", "critical",
               "critical", "passing", "critical"}),
      (Seq{"passing", "-", "-", "critical", "critical", "passing", "-", "-", "passing", "-"}));
}

TEST(ThresholdsTest, FailuresBeforeWarning1ThenCritical3) {
  Thresholds t(thresholds(0, 1, 3));
  EXPECT_EQ(
      feed(t, {"passing", "critical", "critical", "critical", "critical", "passing", "critical"}),
      (Seq{"passing", "warning", "warning", "critical", "critical", "passing", "warning"}));
}

TEST(ThresholdsTest, WarningCountsAsSuccess) {
  // Toward SuccessBeforePassing: the second success in a row is reported as it is.
  Thresholds t(thresholds(2, 0, 0));
  EXPECT_EQ(feed(t, {"passing", "critical", "warning", "warning", "passing"}),
            (Seq{"passing", "critical", "-", "warning", "passing"}));
  // And it resets the failure count.
  Thresholds f(thresholds(0, 2, 2));
  EXPECT_EQ(feed(f, {"passing", "critical", "warning", "critical", "critical"}),
            (Seq{"passing", "-", "warning", "-", "critical"}));
}

// --- LocalState --------------------------------------------------------------------------------

// Counts the listener calls.
struct Calls {
  int syncNeeded = 0;
  std::vector<std::string> checkChanged;
  std::vector<std::string> serviceChanged;
  std::vector<std::string> checkAdded;
  std::vector<std::string> checkRemoved;
  void clear() { *this = Calls{}; }
};

class LocalStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalState::Listener l;
    l.syncNeeded = [this] { ++calls.syncNeeded; };
    l.checkChanged = [this](const std::string& id) { calls.checkChanged.push_back(id); };
    l.serviceChanged = [this](const std::string& id) { calls.serviceChanged.push_back(id); };
    l.checkAdded = [this](const std::string& id) { calls.checkAdded.push_back(id); };
    l.checkRemoved = [this](const std::string& id) { calls.checkRemoved.push_back(id); };
    state.setListener(l);
  }
  void markEverythingInSync() {
    for (const auto& [id, s] : state.services()) state.markServiceInSync(id);
    for (const auto& [id, c] : state.checks()) state.markCheckInSync(id);
    state.deletedServices().clear();
    state.deletedChecks().clear();
  }

  LocalState state{"node-1"};
  Calls calls;
};

TEST_F(LocalStateTest, AddServiceBuildsCatalogRows) {
  CheckDefinition http;
  http.id = "service:web";
  http.name = "Service 'web' check";
  http.serviceId = "web";
  http.kind = CheckKind::kHttp;
  http.http = "http://127.0.0.1:8080/health";
  http.interval = Millis(10000);
  http.timeout = Millis(2000);
  state.addService(serviceDef("web", "web-name", {http}), false);

  ASSERT_NE(state.service("web"), nullptr);
  EXPECT_FALSE(state.service("web")->inSync);
  const LocalCheck* c = state.check("service:web");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->check.node, "node-1");
  EXPECT_EQ(c->check.checkId, "service:web");
  EXPECT_EQ(c->check.serviceId, "web");
  EXPECT_EQ(c->check.serviceName, "web-name");
  EXPECT_EQ(c->check.type, "http");
  EXPECT_EQ(c->check.interval, "10s");
  EXPECT_EQ(c->check.timeout, "2s");
  EXPECT_EQ(c->check.status, "critical");  // a new check starts critical
  EXPECT_EQ(c->check.definition["HTTP"], "http://127.0.0.1:8080/health");
  EXPECT_TRUE(c->criticalSince.has_value());
  EXPECT_EQ(calls.checkAdded, (std::vector<std::string>{"service:web"}));
  EXPECT_EQ(calls.serviceChanged, (std::vector<std::string>{"web"}));
  EXPECT_GE(calls.syncNeeded, 1);
  EXPECT_EQ(state.checksOf("web").size(), 1u);
}

TEST_F(LocalStateTest, ReRegisteringKeepsStatusAndOutputOfSameCheckId) {
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web"), ttlCheck("b", "web")}), false);
  ASSERT_TRUE(state.updateCheck("a", "passing", "all good"));
  ASSERT_TRUE(state.updateCheck("b", "warning", "meh"));

  // Re-registered with a renamed check "a" and a new "c"; "b" is not mentioned.
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web", "A2"), ttlCheck("c", "web")}),
                   false);
  const LocalCheck* a = state.check("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->check.name, "A2");
  EXPECT_EQ(a->check.status, "passing");
  EXPECT_EQ(a->check.output, "all good");
  EXPECT_FALSE(a->criticalSince.has_value());
  EXPECT_EQ(statusOf(state, "b"), "warning");  // kept without replace-existing-checks
  EXPECT_EQ(statusOf(state, "c"), "critical");
  EXPECT_TRUE(state.deletedChecks().empty());
}

TEST_F(LocalStateTest, ReRegisteringKeepsCriticalSince) {
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web")}), false);
  ASSERT_TRUE(state.check("a")->criticalSince.has_value());
  auto since = *state.check("a")->criticalSince;
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web")}), false);
  ASSERT_TRUE(state.check("a")->criticalSince.has_value());
  EXPECT_EQ(*state.check("a")->criticalSince, since);
}

TEST_F(LocalStateTest, ReplaceExistingChecksDropsTheOthers) {
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web"), ttlCheck("b", "web")}), false);
  ASSERT_TRUE(state.addCheck(ttlCheck("node-check", "")));
  markEverythingInSync();
  calls.clear();

  state.addService(serviceDef("web", "web", {ttlCheck("a", "web")}), true);
  EXPECT_NE(state.check("a"), nullptr);
  EXPECT_EQ(state.check("b"), nullptr);
  EXPECT_NE(state.check("node-check"), nullptr);  // not the service's
  EXPECT_TRUE(state.deletedChecks().contains("b"));
  EXPECT_FALSE(state.deletedChecks().contains("a"));
  EXPECT_NE(std::find(calls.checkRemoved.begin(), calls.checkRemoved.end(), "b"),
            calls.checkRemoved.end());
}

TEST_F(LocalStateTest, RenamingAServiceRenamesItsChecksServiceName) {
  state.addService(serviceDef("web", "old", {ttlCheck("a", "web")}), false);
  markEverythingInSync();
  state.addService(serviceDef("web", "new"), false);
  EXPECT_EQ(state.check("a")->check.serviceName, "new");
  EXPECT_FALSE(state.check("a")->inSync);
}

TEST_F(LocalStateTest, RemovingAServiceRemovesItsChecksAndRecordsTheDeletion) {
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web"), ttlCheck("b", "web")}), false);
  state.addService(serviceDef("api", "api", {ttlCheck("c", "api")}), false);
  ASSERT_TRUE(state.addCheck(ttlCheck("node-check", "")));
  markEverythingInSync();
  calls.clear();
  uint64_t version = state.version();

  EXPECT_TRUE(state.removeService("web"));
  EXPECT_EQ(state.service("web"), nullptr);
  EXPECT_EQ(state.check("a"), nullptr);
  EXPECT_EQ(state.check("b"), nullptr);
  EXPECT_NE(state.check("c"), nullptr);
  EXPECT_NE(state.check("node-check"), nullptr);
  EXPECT_TRUE(state.checksOf("web").empty());
  EXPECT_TRUE(state.deletedServices().contains("web"));
  EXPECT_FALSE(state.allInSync());
  std::vector<std::string> removed = calls.checkRemoved;
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"a", "b"}));  // their runners stop
  EXPECT_EQ(calls.serviceChanged, (std::vector<std::string>{"web"}));
  EXPECT_GE(calls.syncNeeded, 1);
  EXPECT_GT(state.version(), version);

  EXPECT_FALSE(state.removeService("web"));
  // Registering it again cancels the pending deregistration.
  state.addService(serviceDef("web", "web"), false);
  EXPECT_FALSE(state.deletedServices().contains("web"));
}

TEST_F(LocalStateTest, AddCheckForUnknownServiceIsNotFound) {
  auto r = state.addCheck(ttlCheck("a", "nope"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("nope"), std::string::npos);
  EXPECT_EQ(state.check("a"), nullptr);
  EXPECT_TRUE(calls.checkAdded.empty());

  EXPECT_TRUE(state.addCheck(ttlCheck("node-level", "")));
  EXPECT_NE(state.check("node-level"), nullptr);
}

TEST_F(LocalStateTest, AddCheckUsesInitialStatusAndRemoveCheckRecordsIt) {
  CheckDefinition c = ttlCheck("a", "");
  c.initialStatus = "passing";
  ASSERT_TRUE(state.addCheck(c));
  EXPECT_EQ(statusOf(state, "a"), "passing");
  EXPECT_FALSE(state.check("a")->criticalSince.has_value());
  calls.clear();
  EXPECT_TRUE(state.removeCheck("a"));
  EXPECT_EQ(state.check("a"), nullptr);
  EXPECT_TRUE(state.deletedChecks().contains("a"));
  EXPECT_EQ(calls.checkRemoved, (std::vector<std::string>{"a"}));
  EXPECT_EQ(calls.checkChanged, (std::vector<std::string>{"a"}));
  EXPECT_FALSE(state.removeCheck("a"));
  // Adding it back cancels the pending deregistration.
  ASSERT_TRUE(state.addCheck(c));
  EXPECT_FALSE(state.deletedChecks().contains("a"));
}

TEST_F(LocalStateTest, UpdateCheckOutputOnlyWaitsForTheNextSync) {
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web")}), false);
  markEverythingInSync();
  ASSERT_TRUE(state.allInSync());
  calls.clear();
  uint64_t version = state.version();

  // Same status (critical), new output: marked out of sync, but no sync kick, no change event.
  ASSERT_TRUE(state.updateCheck("a", "critical", "still down"));
  EXPECT_EQ(state.check("a")->check.output, "still down");
  EXPECT_FALSE(state.check("a")->inSync);
  EXPECT_EQ(calls.syncNeeded, 0);
  EXPECT_TRUE(calls.checkChanged.empty());

  // A status change is synced at once.
  state.markCheckInSync("a");
  ASSERT_TRUE(state.updateCheck("a", "passing", "up"));
  EXPECT_EQ(statusOf(state, "a"), "passing");
  EXPECT_FALSE(state.check("a")->criticalSince.has_value());
  EXPECT_FALSE(state.check("a")->inSync);
  EXPECT_EQ(calls.syncNeeded, 1);
  EXPECT_EQ(calls.checkChanged, (std::vector<std::string>{"a"}));

  // Nothing new: nothing happens.
  state.markCheckInSync("a");
  ASSERT_TRUE(state.updateCheck("a", "passing", "up"));
  EXPECT_TRUE(state.check("a")->inSync);
  EXPECT_EQ(calls.syncNeeded, 1);
  EXPECT_EQ(calls.checkChanged.size(), 1u);

  // Back to critical: criticalSince starts again.
  ASSERT_TRUE(state.updateCheck("a", "critical", "down"));
  EXPECT_TRUE(state.check("a")->criticalSince.has_value());
  EXPECT_EQ(calls.syncNeeded, 2);
  EXPECT_EQ(state.version(), version);  // status is not a definition change

  auto missing = state.updateCheck("nope", "passing", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(LocalStateTest, AggregateStatusIsTheWorstIncludingNodeChecks) {
  state.addService(serviceDef("web", "web", {ttlCheck("w1", "web"), ttlCheck("w2", "web")}), false);
  state.addService(serviceDef("api", "api", {ttlCheck("a1", "api")}), false);
  state.addService(serviceDef("bare", "bare"), false);
  EXPECT_EQ(state.aggregateStatus("web"), "critical");
  EXPECT_EQ(state.aggregateStatus("bare"), "passing");  // no checks at all

  ASSERT_TRUE(state.updateCheck("w1", "passing", ""));
  ASSERT_TRUE(state.updateCheck("w2", "warning", ""));
  ASSERT_TRUE(state.updateCheck("a1", "passing", ""));
  EXPECT_EQ(state.aggregateStatus("web"), "warning");
  EXPECT_EQ(state.aggregateStatus("api"), "passing");  // not affected by web's warning

  ASSERT_TRUE(state.addCheck(ttlCheck("node", "")));  // critical: affects every service
  EXPECT_EQ(state.aggregateStatus("web"), "critical");
  EXPECT_EQ(state.aggregateStatus("api"), "critical");
  EXPECT_EQ(state.aggregateStatus("bare"), "critical");
  ASSERT_TRUE(state.updateCheck("node", "warning", ""));
  EXPECT_EQ(state.aggregateStatus("api"), "warning");
  ASSERT_TRUE(state.removeCheck("node"));
  EXPECT_EQ(state.aggregateStatus("api"), "passing");
  ASSERT_TRUE(state.updateCheck("w2", "passing", ""));
  EXPECT_EQ(state.aggregateStatus("web"), "passing");

  EXPECT_EQ(worseStatus("passing", "warning"), "warning");
  EXPECT_EQ(worseStatus("critical", "warning"), "critical");
  EXPECT_EQ(worseStatus("passing", "passing"), "passing");
}

TEST_F(LocalStateTest, InSyncBookkeeping) {
  EXPECT_TRUE(state.allInSync());  // nothing to sync
  state.addService(serviceDef("web", "web", {ttlCheck("a", "web")}), false);
  EXPECT_FALSE(state.allInSync());
  state.markServiceInSync("web");
  EXPECT_FALSE(state.allInSync());  // the check is not
  state.markCheckInSync("a");
  EXPECT_TRUE(state.allInSync());

  state.markCheckOutOfSync("a");
  EXPECT_FALSE(state.allInSync());
  state.markCheckInSync("a");
  state.markServiceOutOfSync("web");
  EXPECT_FALSE(state.allInSync());
  state.markServiceInSync("web");
  EXPECT_TRUE(state.allInSync());

  state.markAllOutOfSync();
  EXPECT_FALSE(state.service("web")->inSync);
  EXPECT_FALSE(state.check("a")->inSync);
  markEverythingInSync();
  EXPECT_TRUE(state.allInSync());

  // Pending deletions are out of sync too.
  ASSERT_TRUE(state.removeCheck("a"));
  EXPECT_FALSE(state.allInSync());
  state.deletedChecks().clear();
  EXPECT_TRUE(state.allInSync());
  state.deletedServices().insert("gone");
  EXPECT_FALSE(state.allInSync());
  state.deletedServices().clear();
  EXPECT_TRUE(state.allInSync());

  // Marks for unknown IDs are ignored.
  state.markServiceInSync("nope");
  state.markCheckOutOfSync("nope");
  EXPECT_TRUE(state.allInSync());
}

TEST_F(LocalStateTest, VersionCountsDefinitionChanges) {
  uint64_t v0 = state.version();
  state.addService(serviceDef("web", "web"), false);
  uint64_t v1 = state.version();
  EXPECT_GT(v1, v0);
  ASSERT_TRUE(state.addCheck(ttlCheck("n", "")));
  uint64_t v2 = state.version();
  EXPECT_GT(v2, v1);
  ASSERT_TRUE(state.removeCheck("n"));
  EXPECT_GT(state.version(), v2);
}

}  // namespace
}  // namespace taskmesh::agent
