#include "base/duration.h"

#include <gtest/gtest.h>

namespace taskmesh {
namespace {
using namespace std::chrono_literals;

TEST(Duration, ParsesGoSyntax) {
  EXPECT_EQ(*parseDuration("300ms"), 300ms);
  EXPECT_EQ(*parseDuration("10s"), 10s);
  EXPECT_EQ(*parseDuration("5m"), 5min);
  EXPECT_EQ(*parseDuration("1.5h"), 90min);
  EXPECT_EQ(*parseDuration("2h45m"), 165min);
  EXPECT_EQ(*parseDuration("1m30s"), 90s);
  EXPECT_EQ(*parseDuration("0"), 0s);
  EXPECT_EQ(*parseDuration("-2s"), -2s);
  EXPECT_EQ(*parseDuration("250us"), 250us);
}

TEST(Duration, RejectsBadInputNamingIt) {
  for (const char* bad : {"", "10", "s", "nope", "10x", "1..5s", "-", "5 s"}) {
    auto r = parseDuration(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find("invalid duration"), std::string::npos) << r.error().message;
  }
}

TEST(Duration, FormatsLikeGo) {
  EXPECT_EQ(formatDuration(0s), "0s");
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(250ms), "250ms");
  EXPECT_EQ(formatDuration(1500ms), "1.5s");
  EXPECT_EQ(formatDuration(2h), "2h0m0s");
}

}  // namespace
}  // namespace taskmesh

namespace taskmesh {
namespace {

TEST(PositiveDurationFlag, NamesTheFlagAndTheProblem) {
  auto ok = parsePositiveDurationFlag("-timeout", "1.5s");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->count(), 1500);
  auto zero = parsePositiveDurationFlag("-timeout", "0s");
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().message, "-timeout must be positive, got \"0s\"");
  auto bad = parsePositiveDurationFlag("-sync-interval", "soon");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("-sync-interval: "), std::string::npos);
  EXPECT_NE(bad.error().message.find("invalid duration"), std::string::npos);
}

}  // namespace
}  // namespace taskmesh
