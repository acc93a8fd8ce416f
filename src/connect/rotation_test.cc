// Root rotation: a new root cross-signed by the old one, so that leaves of either root verify
// while proxies hold either trust store.

#include <gtest/gtest.h>

#include "connect/ca.h"
#include "connect/test_support.h"
#include "connect/verify.h"

namespace taskmesh::connect {
namespace {

using namespace std::chrono_literals;
using testing::failsWith;
using testing::firstCert;
using testing::kNow;
using testing::kTrustDomainA;
using testing::serviceIn;

class RotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = generateRoot({.trustDomain = kTrustDomainA, .serial = 1, .now = kNow - 24h});
    auto b = generateRoot({.trustDomain = kTrustDomainA, .serial = 2, .now = kNow - 1h});
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_TRUE(b) << b.error().message;
    a_ = std::move(*a);
    b_ = std::move(*b);
    auto cross = crossSign(a_, b_, kNow);
    ASSERT_TRUE(cross) << cross.error().message;
    cross_ = std::move(*cross);
    b_.intermediateCertPems = {cross_};
  }

  SignedLeaf leafOf(const RootCa& signer, const std::string& service) {
    auto request = makeLeafRequest(serviceIn(kTrustDomainA, service));
    EXPECT_TRUE(request) << request.error().message;
    if (!request) return {};
    auto leaf = signLeaf(signer, request->csrPem,
                         {.trustDomain = kTrustDomainA, .serial = 10, .now = kNow});
    EXPECT_TRUE(leaf) << leaf.error().message;
    return leaf ? std::move(*leaf) : SignedLeaf{};
  }

  static Result<ServiceId> verify(const std::string& chain, const std::string& roots) {
    return verifyLeaf(chain, roots, {.trustDomain = kTrustDomainA, .now = kNow});
  }

  // Verifies with X509_V_FLAG_X509_STRICT (RFC 5280 profile checks) against `roots`.
  static bool verifiesStrictly(const std::string& chain, const std::string& roots) {
    auto chainCerts = parseCertificates(chain);
    auto rootCerts = parseCertificates(roots);
    if (!chainCerts || !rootCerts) return false;
    auto store = makeTrustStore(*rootCerts);
    if (!store) return false;
    X509_STORE_set_flags(store->get(), X509_V_FLAG_X509_STRICT);
    X509Ptr leaf = std::move(chainCerts->front());
    chainCerts->erase(chainCerts->begin());
    auto ok = verifyChain(store->get(), leaf.get(), *chainCerts, kNow);
    if (!ok) ADD_FAILURE() << ok.error().message;
    return ok.has_value();
  }

  RootCa a_, b_;
  std::string cross_;
};

TEST_F(RotationTest, CrossSignedCertIsTheNewRootIssuedByTheOld) {
  X509Ptr cross = firstCert(cross_);
  X509Ptr a = firstCert(a_.rootCertPem);
  X509Ptr b = firstCert(b_.rootCertPem);
  ASSERT_TRUE(cross && a && b);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cross.get()), X509_get_subject_name(b.get())), 0);
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(cross.get()), X509_get_subject_name(a.get())), 0);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cross.get()), X509_get0_pubkey(b.get())), 1);
  EXPECT_EQ(X509_verify(cross.get(), X509_get0_pubkey(a.get())), 1);
  EXPECT_EQ(X509_verify(cross.get(), X509_get0_pubkey(b.get())), 0);
  ERR_clear_error();
  EXPECT_EQ(X509_check_ca(cross.get()), 1);
  EXPECT_EQ(testing::octetsHex(X509_get0_subject_key_id(cross.get())), b_.signingKeyId);
  EXPECT_EQ(testing::octetsHex(X509_get0_authority_key_id(cross.get())), a_.signingKeyId);
  EXPECT_EQ(testing::uriSans(cross.get()), std::vector<std::string>{"spiffe://" + kTrustDomainA});
  EXPECT_EQ(testing::asTimePoint(X509_get0_notBefore(cross.get())), kNow - 1min);
  // A expires first (generated a day earlier), so it bounds the cross-signed cert.
  EXPECT_EQ(testing::asTimePoint(X509_get0_notAfter(cross.get())), a_.notAfter);
}

TEST_F(RotationTest, NewRootLeafVerifiesWithEitherTrustStore) {
  SignedLeaf leaf = leafOf(b_, "web");
  EXPECT_EQ(testing::certCount(leaf.certPem), 2u);  // leaf + cross-signed B
  for (const std::string& roots :
       {a_.rootCertPem, b_.rootCertPem, a_.rootCertPem + b_.rootCertPem}) {
    auto id = verify(leaf.certPem, roots);
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_EQ(id->service, "web");
  }
  EXPECT_TRUE(verifiesStrictly(leaf.certPem, a_.rootCertPem));
  EXPECT_TRUE(verifiesStrictly(leaf.certPem, b_.rootCertPem));
}

TEST_F(RotationTest, OldRootLeafVerifiesWithBothRoots) {
  SignedLeaf leaf = leafOf(a_, "db");
  EXPECT_EQ(testing::certCount(leaf.certPem), 1u);
  EXPECT_TRUE(verify(leaf.certPem, a_.rootCertPem + b_.rootCertPem));
  EXPECT_TRUE(verify(leaf.certPem, a_.rootCertPem));
  EXPECT_TRUE(failsWith(verify(leaf.certPem, b_.rootCertPem), "not signed by a trusted root"));
  EXPECT_TRUE(verifiesStrictly(leaf.certPem, a_.rootCertPem));
}

TEST_F(RotationTest, WithoutTheCrossSignedCertTheOldStoreRefuses) {
  RootCa bAlone = b_;
  bAlone.intermediateCertPems.clear();
  SignedLeaf leaf = leafOf(bAlone, "web");
  EXPECT_TRUE(failsWith(verify(leaf.certPem, a_.rootCertPem), "not signed by a trusted root"));
  EXPECT_TRUE(verify(leaf.certPem, b_.rootCertPem));
}

TEST_F(RotationTest, CrossSignedCertEndsWithTheEarlierRoot) {
  auto shortLived =
      generateRoot({.trustDomain = kTrustDomainA, .serial = 4, .now = kNow, .ttl = 48h});
  ASSERT_TRUE(shortLived) << shortLived.error().message;
  auto cross = crossSign(a_, *shortLived, kNow);
  ASSERT_TRUE(cross) << cross.error().message;
  X509Ptr cert = firstCert(*cross);
  ASSERT_TRUE(cert);
  EXPECT_EQ(testing::asTimePoint(X509_get0_notAfter(cert.get())), kNow + 48h);
  // Once the old root has expired there is nothing left to cross-sign with.
  EXPECT_TRUE(failsWith(crossSign(a_, b_, a_.notAfter + 2min), "cannot cross-sign"));
}

TEST_F(RotationTest, ConsulStyleDottedRootNameCrossSigns) {
  auto c = generateRoot({.trustDomain = kTrustDomainA,
                         .commonName = "pri-3.consul.ca.example.com",
                         .serial = 3,
                         .now = kNow - 1h});
  ASSERT_TRUE(c) << c.error().message;
  auto cross = crossSign(a_, *c, kNow);
  ASSERT_TRUE(cross) << cross.error().message;
  c->intermediateCertPems = {*cross};
  SignedLeaf leaf = leafOf(*c, "web");
  EXPECT_TRUE(verify(leaf.certPem, a_.rootCertPem));
}

TEST_F(RotationTest, CrossSignRefusesBadInput) {
  RootCa broken = a_;
  broken.privateKeyPem = b_.privateKeyPem;
  EXPECT_TRUE(failsWith(crossSign(broken, b_, kNow), "old root private key does not match"));
  RootCa garbage = b_;
  garbage.rootCertPem = "nope";
  EXPECT_TRUE(failsWith(crossSign(a_, garbage, kNow), "new root certificate is not a PEM"));
  EXPECT_TRUE(failsWith(crossSign(a_, b_, TimePoint{}), "current time is not set"));
}

}  // namespace
}  // namespace taskmesh::connect
