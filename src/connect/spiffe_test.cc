#include "connect/spiffe.h"

#include <gtest/gtest.h>

#include "connect/test_support.h"

namespace taskmesh::connect {
namespace {

using testing::failsWith;
using testing::kTrustDomainA;

TEST(SpiffeTest, TrustDomainAndSigningUri) {
  EXPECT_EQ(trustDomainFor("11111111-2222-3333-4444-555555555555"), kTrustDomainA);
  EXPECT_EQ(trustDomainFor("ABCDEF01-2222-3333-4444-555555555555"),
            "abcdef01-2222-3333-4444-555555555555.consul");
  EXPECT_EQ(signingUri(kTrustDomainA), "spiffe://" + kTrustDomainA);
  EXPECT_TRUE(validateTrustDomain(kTrustDomainA));
}

TEST(SpiffeTest, FormatAndParseRoundTrip) {
  ServiceId id{.trustDomain = kTrustDomainA, .datacenter = "dc1", .service = "web"};
  EXPECT_EQ(id.uri(), "spiffe://" + kTrustDomainA + "/ns/default/dc/dc1/svc/web");
  auto parsed = parseServiceUri(id.uri());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, id);

  ServiceId odd{.trustDomain = "td_1.example-2",
                .ns = "team.a",
                .datacenter = "us-east_1",
                .service = "Web.v2_canary-1"};
  auto oddParsed = parseServiceUri(odd.uri());
  ASSERT_TRUE(oddParsed) << oddParsed.error().message;
  EXPECT_EQ(*oddParsed, odd);
  EXPECT_EQ(oddParsed->uri(), odd.uri());
}

TEST(SpiffeTest, MalformedUrisAreRejectedWithTheReason) {
  const std::string td = "spiffe://" + kTrustDomainA;
  struct Case {
    std::string uri;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"https://" + kTrustDomainA + "/ns/default/dc/dc1/svc/web", "scheme must be"},
      {"SPIFFE://" + kTrustDomainA + "/ns/default/dc/dc1/svc/web", "scheme must be"},
      {"spiffe:/" + kTrustDomainA + "/ns/default/dc/dc1/svc/web", "scheme must be"},
      {"spiffe:///ns/default/dc/dc1/svc/web", "trust domain is empty"},
      {"spiffe://11111111-2222-3333-4444-555555555555.CONSUL/ns/default/dc/dc1/svc/web",
       "must be lower case"},
      {"spiffe://" + kTrustDomainA + ":8443/ns/default/dc/dc1/svc/web", "outside [a-z0-9._-]"},
      {"spiffe://user@" + kTrustDomainA + "/ns/default/dc/dc1/svc/web", "outside [a-z0-9._-]"},
      {td, "has no path"},
      {td + "/", "path must be"},
      {td + "/ns/default/dc/dc1", "path must be"},
      {td + "/ns/default/dc/dc1/svc", "path must be"},
      {td + "/ns/default/dc/dc1/service/web", "path must be"},
      {td + "/dc/dc1/ns/default/svc/web", "path must be"},
      {td + "/ns/default/dc/dc1/svc/web/extra", "extra segments"},
      {td + "/ns/default/dc/dc1/svc/web/", "extra segments"},
      {td + "//ns/default/dc/dc1/svc/web", "path must be"},
      {td + "/ns//dc/dc1/svc/web", "namespace is empty"},
      {td + "/ns/default/dc//svc/web", "datacenter is empty"},
      {td + "/ns/default/dc/dc1/svc/", "service is empty"},
      {td + "/ns/default/dc/dc1/svc/..", "service must not be"},
      {td + "/ns/./dc/dc1/svc/web", "namespace must not be"},
      {td + "/ns/default/dc/dc1/svc/we b", "service \"we b\" has a character outside"},
      {td + "/ns/default/dc/dc1/svc/web?x=1", "has a character outside"},
      {td + "/ns/default/dc/dc1/svc/web#frag", "has a character outside"},
      {td + "/ns/default/dc/dc%31/svc/web", "datacenter \"dc%31\" has a character outside"},
      {td + "/ns/default/dc/dc1/svc/" + std::string(kMaxSpiffeIdBytes, 'a'), "longer than 2048"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(failsWith(parseServiceUri(c.uri), c.fragment)) << c.uri;
  }
}

TEST(SpiffeTest, SigningUriIsNotAServiceId) {
  EXPECT_TRUE(failsWith(parseServiceUri(signingUri(kTrustDomainA)), "has no path"));
}

TEST(SpiffeTest, TrustDomainValidation) {
  EXPECT_TRUE(failsWith(validateTrustDomain(""), "trust domain is empty"));
  EXPECT_TRUE(failsWith(validateTrustDomain("Cluster.consul"), "must be lower case"));
  EXPECT_TRUE(failsWith(validateTrustDomain("a/b"), "outside [a-z0-9._-]"));
  EXPECT_TRUE(failsWith(validateTrustDomain(std::string(256, 'a')), "longer than 255"));
}

}  // namespace
}  // namespace taskmesh::connect
