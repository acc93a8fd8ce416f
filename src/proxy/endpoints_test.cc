#include "proxy/endpoints.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace taskmesh::proxy {
namespace {

using namespace std::chrono_literals;

std::vector<size_t> plan(size_t n, size_t start, const std::set<size_t>& ejected) {
  AttemptPlan p = planAttempts(n, start, [&](size_t i) { return ejected.contains(i); });
  return std::vector<size_t>(p.index.begin(), p.index.begin() + static_cast<long>(p.count));
}

TEST(PlanAttempts, RoundRobinFromTheCursorUpToThreeEndpoints) {
  EXPECT_EQ(plan(0, 7, {}), (std::vector<size_t>{}));
  EXPECT_EQ(plan(1, 7, {}), (std::vector<size_t>{0}));
  EXPECT_EQ(plan(2, 1, {}), (std::vector<size_t>{1, 0}));
  EXPECT_EQ(plan(5, 3, {}), (std::vector<size_t>{3, 4, 0}));
  EXPECT_EQ(plan(5, 12, {}), (std::vector<size_t>{2, 3, 4}));
}

TEST(PlanAttempts, SkipsEjectedEndpointsAndTriesThemOnlyLast) {
  EXPECT_EQ(plan(5, 0, {0, 1}), (std::vector<size_t>{2, 3, 4}));
  EXPECT_EQ(plan(4, 0, {1, 2}), (std::vector<size_t>{0, 3, 1}));
  EXPECT_EQ(plan(3, 1, {1}), (std::vector<size_t>{2, 0, 1}));
  // Every endpoint ejected: still tried (in round-robin order) rather than refused.
  EXPECT_EQ(plan(2, 1, {0, 1}), (std::vector<size_t>{1, 0}));
}

TEST(PlanAttempts, SpreadsNewConnectionsEvenly) {
  std::vector<int> first(4);
  for (size_t cursor = 0; cursor < 400; ++cursor) ++first[plan(4, cursor, {})[0]];
  for (int count : first) EXPECT_EQ(count, 100);
}

TEST(EndpointState, EjectsAfterThreeConsecutiveFailures) {
  EndpointState s("10.0.0.1:20000");
  SteadyTime t0{std::chrono::hours(1)};
  EXPECT_FALSE(s.recordFailure(t0));
  EXPECT_FALSE(s.recordFailure(t0));
  EXPECT_FALSE(s.ejected(t0));
  EXPECT_TRUE(s.recordFailure(t0));
  EXPECT_TRUE(s.ejected(t0));
  EXPECT_TRUE(s.ejected(t0 + 9999ms));
  EXPECT_FALSE(s.ejected(t0 + 10s));
  EXPECT_EQ(s.failures(), 3u);
  EXPECT_EQ(s.ejections(), 1u);
}

TEST(EndpointState, ASuccessResetsTheConsecutiveCount) {
  EndpointState s("a:1");
  SteadyTime t0{std::chrono::hours(1)};
  s.recordFailure(t0);
  s.recordFailure(t0);
  s.recordSuccess();
  EXPECT_FALSE(s.recordFailure(t0));
  EXPECT_FALSE(s.recordFailure(t0));
  EXPECT_FALSE(s.ejected(t0));
  EXPECT_TRUE(s.recordFailure(t0));
}

TEST(EndpointState, RepeatedEjectionsDoubleUpToFiveMinutesAndASuccessResetsThem) {
  EndpointState s("a:1");
  SteadyTime t{std::chrono::hours(1)};
  std::vector<std::chrono::milliseconds> lengths;
  for (int round = 0; round < 7; ++round) {
    for (int i = 0; i < kFailureThreshold; ++i) s.recordFailure(t);
    ASSERT_TRUE(s.ejected(t));
    lengths.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(s.ejectedUntil() - t));
    t = s.ejectedUntil();  // the ejection ends; the endpoint is tried again and fails again
  }
  EXPECT_EQ(lengths,
            (std::vector<std::chrono::milliseconds>{10s, 20s, 40s, 80s, 160s, 300s, 300s}));
  s.recordSuccess();
  for (int i = 0; i < kFailureThreshold; ++i) s.recordFailure(t);
  EXPECT_EQ(s.ejectedUntil() - t, std::chrono::duration_cast<SteadyTime::duration>(10s));
}

TEST(EndpointState, FailuresWhileEjectedDoNotExtendTheEjection) {
  EndpointState s("a:1");
  SteadyTime t0{std::chrono::hours(1)};
  for (int i = 0; i < 3; ++i) s.recordFailure(t0);
  auto until = s.ejectedUntil();
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(s.recordFailure(t0 + 1s));
  EXPECT_EQ(s.ejectedUntil(), until);
  EXPECT_EQ(s.failures(), 13u);
  EXPECT_EQ(s.ejections(), 1u);
}

TEST(EndpointState, CountsActiveConnections) {
  EndpointState s("a:1");
  s.connectionOpened();
  s.connectionOpened();
  s.connectionClosed();
  EXPECT_EQ(s.active(), 1);
}

}  // namespace
}  // namespace taskmesh::proxy
