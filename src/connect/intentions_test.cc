#include "connect/intentions.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "connect/test_support.h"

namespace taskmesh::connect {
namespace {

using testing::failsWith;

Intention make(std::string src, std::string dst, IntentionAction action = IntentionAction::kAllow,
               std::string srcNs = "default", std::string dstNs = "default") {
  Intention x;
  x.sourceNs = std::move(srcNs);
  x.sourceName = std::move(src);
  x.destinationNs = std::move(dstNs);
  x.destinationName = std::move(dst);
  x.action = action;
  return x;
}

constexpr IntentionAction kAllow = IntentionAction::kAllow;
constexpr IntentionAction kDeny = IntentionAction::kDeny;

// "src => dst (action)" for each intention, to compare orders readably.
std::vector<std::string> describe(const std::vector<Intention>& xs) {
  std::vector<std::string> out;
  for (const Intention& x : xs) {
    out.push_back(x.sourceNs + "/" + x.sourceName + " => " + x.destinationNs + "/" +
                  x.destinationName + " (" + actionName(x.action) + ")");
  }
  return out;
}

TEST(IntentionPrecedenceTest, ConsulTable) {
  // Default (exact) namespaces.
  EXPECT_EQ(precedence(make("web", "db")), 9);
  EXPECT_EQ(precedence(make("*", "db")), 8);
  EXPECT_EQ(precedence(make("web", "*")), 6);
  EXPECT_EQ(precedence(make("*", "*")), 5);
  // Wildcard namespaces.
  EXPECT_EQ(precedence(make("*", "db", kAllow, "*")), 7);
  EXPECT_EQ(precedence(make("*", "*", kAllow, "*")), 4);
  EXPECT_EQ(precedence(make("web", "*", kAllow, "default", "*")), 3);
  EXPECT_EQ(precedence(make("*", "*", kAllow, "default", "*")), 2);
  EXPECT_EQ(precedence(make("*", "*", kAllow, "*", "*")), 1);
}

TEST(IntentionSortTest, PrecedenceThenDenyThenNames) {
  std::vector<Intention> xs = {
      make("*", "*", kAllow, "*", "*"),
      make("web", "*"),
      make("web", "db"),
      make("api", "db", kAllow),
      make("api", "db", kDeny),
      make("*", "db", kDeny),
      make("*", "*"),
  };
  sortForEvaluation(xs);
  EXPECT_EQ(describe(xs), (std::vector<std::string>{
                              "default/api => default/db (deny)",
                              "default/api => default/db (allow)",
                              "default/web => default/db (allow)",
                              "default/* => default/db (deny)",
                              "default/web => default/* (allow)",
                              "default/* => default/* (allow)",
                              "*/* => */* (allow)",
                          }));
}

TEST(IntentionSortTest, DenyWinsATie) {
  std::vector<Intention> xs = {make("web", "db", kAllow), make("web", "db", kDeny)};
  sortForEvaluation(xs);
  EXPECT_EQ(xs[0].action, kDeny);
  EXPECT_FALSE(authorize(xs, "web", "db", true).allowed);
  std::reverse(xs.begin(), xs.end());
  EXPECT_FALSE(authorize(xs, "web", "db", true).allowed);
}

TEST(AuthorizeTest, ExactDenyBeatsWildcardAllow) {
  std::vector<Intention> xs = {make("*", "db", kAllow), make("web", "db", kDeny)};
  Decision web = authorize(xs, "web", "db", false);
  EXPECT_FALSE(web.allowed);
  EXPECT_EQ(web.reason, "Matched intention: web => db (deny)");
  ASSERT_TRUE(web.matched);
  EXPECT_EQ(*web.matched, xs[1]);
  Decision api = authorize(xs, "api", "db", false);
  EXPECT_TRUE(api.allowed);
  EXPECT_EQ(api.reason, "Matched intention: * => db (allow)");
}

TEST(AuthorizeTest, WildcardDenyWithExactAllow) {
  std::vector<Intention> xs = {make("*", "db", kDeny), make("web", "db", kAllow)};
  EXPECT_TRUE(authorize(xs, "web", "db", false).allowed);
  EXPECT_FALSE(authorize(xs, "api", "db", true).allowed);
  EXPECT_EQ(authorize(xs, "api", "db", true).reason, "Matched intention: * => db (deny)");
}

TEST(AuthorizeTest, DefaultPolicyWhenNothingMatches) {
  Decision allow = authorize({}, "web", "db", true);
  EXPECT_TRUE(allow.allowed);
  EXPECT_FALSE(allow.matched);
  EXPECT_EQ(allow.reason, "No matching intention, default policy allow");
  Decision deny = authorize({}, "web", "db", false);
  EXPECT_FALSE(deny.allowed);
  EXPECT_EQ(deny.reason, "No matching intention, default policy deny");
}

TEST(AuthorizeTest, IntentionsForOtherPairsDoNotApply) {
  // Same source, another destination; same destination, another source.
  std::vector<Intention> xs = {make("web", "cache", kDeny), make("api", "db", kDeny)};
  Decision d = authorize(xs, "web", "db", true);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.matched);
  EXPECT_FALSE(authorize(xs, "web", "cache", true).allowed);
  // A name is matched whole, never as a prefix.
  EXPECT_TRUE(authorize({make("web", "db", kDeny)}, "web2", "db", true).allowed);
  EXPECT_TRUE(authorize({make("web", "db", kDeny)}, "web", "db2", true).allowed);
}

TEST(AuthorizeTest, WildcardDestinationAndCatchAll) {
  std::vector<Intention> xs = {make("web", "*", kDeny), make("*", "*", kAllow, "*", "*")};
  EXPECT_FALSE(authorize(xs, "web", "db", true).allowed);
  EXPECT_EQ(authorize(xs, "web", "db", true).reason, "Matched intention: web => * (deny)");
  EXPECT_TRUE(authorize(xs, "api", "db", false).allowed);
  EXPECT_EQ(authorize(xs, "api", "db", false).reason, "Matched intention: */* => */* (allow)");
  // A more specific allow beats the broader deny.
  xs.push_back(make("web", "db", kAllow));
  EXPECT_TRUE(authorize(xs, "web", "db", false).allowed);
}

TEST(MatchTest, BySourceAndByDestination) {
  std::vector<Intention> all = {
      make("web", "db", kAllow),
      make("web", "*", kDeny),
      make("*", "db", kAllow),
      make("api", "db", kDeny),
      make("*", "*", kDeny),
      make("api", "cache", kAllow),
      make("web", "db", kDeny, "default", "*"),  // invalid for a PUT; still matched by name
  };
  EXPECT_EQ(describe(match(all, MatchBy::kDestination, "db")),
            (std::vector<std::string>{
                "default/api => default/db (deny)",
                "default/web => default/db (allow)",
                "default/* => default/db (allow)",
                "default/web => default/* (deny)",
                "default/* => default/* (deny)",
                "default/web => */db (deny)",
            }));
  EXPECT_EQ(describe(match(all, MatchBy::kSource, "web")), (std::vector<std::string>{
                                                               "default/web => default/db (allow)",
                                                               "default/* => default/db (allow)",
                                                               "default/web => default/* (deny)",
                                                               "default/* => default/* (deny)",
                                                               "default/web => */db (deny)",
                                                           }));
  EXPECT_EQ(describe(match(all, MatchBy::kDestination, "cache")),
            (std::vector<std::string>{
                "default/api => default/cache (allow)",
                "default/web => default/* (deny)",
                "default/* => default/* (deny)",
            }));
  EXPECT_TRUE(match(all, MatchBy::kSource, "nobody").size() == 2u);  // the two "*" sources
}

TEST(IntentionActionTest, ParseAndName) {
  auto allow = parseAction("allow");
  ASSERT_TRUE(allow);
  EXPECT_EQ(*allow, kAllow);
  auto deny = parseAction("deny");
  ASSERT_TRUE(deny);
  EXPECT_EQ(*deny, kDeny);
  EXPECT_STREQ(actionName(kAllow), "allow");
  EXPECT_STREQ(actionName(kDeny), "deny");
  EXPECT_TRUE(failsWith(parseAction("Allow"), "intention action \"Allow\""));
  EXPECT_TRUE(failsWith(parseAction(""), "intention action \"\""));
}

TEST(IntentionValidationTest, Names) {
  EXPECT_TRUE(validateIntentionName("SourceName", "*"));
  EXPECT_TRUE(validateIntentionName("SourceName", "web.v2_canary-1"));
  EXPECT_TRUE(validateIntentionName("SourceName", std::string(128, 'a')));
  EXPECT_TRUE(failsWith(validateIntentionName("SourceName", ""), "SourceName is empty"));
  EXPECT_TRUE(failsWith(validateIntentionName("DestinationName", "web*"),
                        "DestinationName \"web*\": partial wildcards are not supported"));
  EXPECT_TRUE(failsWith(validateIntentionName("SourceName", "**"), "partial wildcards"));
  EXPECT_TRUE(failsWith(validateIntentionName("SourceName", "we b"), "has a character outside"));
  EXPECT_TRUE(failsWith(validateIntentionName("SourceName", std::string(129, 'a')),
                        "SourceName is longer than 128 bytes"));
}

TEST(IntentionValidationTest, WholeIntention) {
  EXPECT_TRUE(validateIntention(make("web", "db")));
  EXPECT_TRUE(validateIntention(make("*", "*", kDeny, "*", "*")));
  EXPECT_TRUE(validateIntention(make("web", "*")));
  EXPECT_TRUE(failsWith(validateIntention(make("web", "db", kAllow, "prod")),
                        "SourceNS \"prod\" is not supported"));
  EXPECT_TRUE(failsWith(validateIntention(make("web", "db", kAllow, "default", "*")),
                        "DestinationNS is \"*\", so the name must be \"*\" too"));
  Intention x = make("web", "db");
  x.sourceType = "external-trust-domain";
  EXPECT_TRUE(failsWith(validateIntention(x), "SourceType \"external-trust-domain\""));
  x = make("web", "db");
  x.description = std::string(513, 'd');
  EXPECT_TRUE(failsWith(validateIntention(x), "Description is longer than 512"));
  x = make("web", "db");
  x.meta[""] = "v";
  EXPECT_TRUE(failsWith(validateIntention(x), "Meta key \"\" is empty"));
  x = make("web", "db");
  x.meta["k"] = std::string(513, 'v');
  EXPECT_TRUE(failsWith(validateIntention(x), "Meta value of \"k\""));
  x = make("web", "db");
  for (int i = 0; i < 65; ++i) x.meta["k" + std::to_string(i)] = "v";
  EXPECT_TRUE(failsWith(validateIntention(x), "Meta has more than 64 pairs"));
}

}  // namespace
}  // namespace taskmesh::connect
