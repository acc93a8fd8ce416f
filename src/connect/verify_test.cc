// signLeaf + verifyLeaf: the happy path and every refusal, each with its message.

#include "connect/verify.h"

#include <gtest/gtest.h>

#include "connect/ca.h"
#include "connect/test_support.h"

namespace taskmesh::connect {
namespace {

using namespace std::chrono_literals;
using testing::failsWith;
using testing::firstCert;
using testing::isCritical;
using testing::kNow;
using testing::kTrustDomainA;
using testing::kTrustDomainB;
using testing::serviceIn;

class LeafTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = generateRoot({.trustDomain = kTrustDomainA, .serial = 1, .now = kNow - 1h});
    auto b = generateRoot({.trustDomain = kTrustDomainB, .serial = 1, .now = kNow - 1h});
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_TRUE(b) << b.error().message;
    rootA_ = std::move(*a);
    rootB_ = std::move(*b);
  }

  // A leaf for `service` in cluster A signed by root A at kNow.
  SignedLeaf leafA(const std::string& service, uint64_t serial = 42) {
    auto request = makeLeafRequest(serviceIn(kTrustDomainA, service));
    EXPECT_TRUE(request) << request.error().message;
    if (!request) return {};
    auto leaf = signLeaf(rootA_, request->csrPem,
                         {.trustDomain = kTrustDomainA, .serial = serial, .now = kNow});
    EXPECT_TRUE(leaf) << leaf.error().message;
    return leaf ? std::move(*leaf) : SignedLeaf{};
  }

  Result<SignedLeaf> signCsrA(std::string_view csrPem) {
    return signLeaf(rootA_, csrPem, {.trustDomain = kTrustDomainA, .serial = 5, .now = kNow});
  }

  static VerifyOptions optsA(TimePoint now = kNow) {
    return {.trustDomain = kTrustDomainA, .now = now};
  }

  RootCa rootA_, rootB_;
};

TEST_F(LeafTest, SignedLeafHasConsulShape) {
  auto request = makeLeafRequest(serviceIn(kTrustDomainA, "web"));
  ASSERT_TRUE(request) << request.error().message;
  auto leaf = signLeaf(rootA_, request->csrPem,
                       {.trustDomain = kTrustDomainA, .serial = 0x2a, .now = kNow});
  ASSERT_TRUE(leaf) << leaf.error().message;
  EXPECT_EQ(leaf->serialHex, "2a");
  EXPECT_EQ(leaf->service, serviceIn(kTrustDomainA, "web"));
  EXPECT_EQ(leaf->validAfter, kNow - 1min);
  EXPECT_EQ(leaf->validBefore, kNow - 1min + 72h);
  EXPECT_EQ(testing::certCount(leaf->certPem), 1u);

  X509Ptr cert = firstCert(leaf->certPem);
  X509Ptr root = firstCert(rootA_.rootCertPem);
  ASSERT_TRUE(cert && root);
  EXPECT_EQ(testing::subjectCn(cert.get()), "web");
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(root.get())), 0);
  EXPECT_EQ(ASN1_INTEGER_get(X509_get0_serialNumber(cert.get())), 0x2a);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(root.get())), 1);
  EXPECT_EQ(testing::uriSans(cert.get()),
            std::vector<std::string>{serviceIn(kTrustDomainA, "web").uri()});
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(isCritical(cert.get(), NID_basic_constraints));
  EXPECT_EQ(X509_get_key_usage(cert.get()),
            KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT | KU_KEY_AGREEMENT);
  EXPECT_TRUE(isCritical(cert.get(), NID_key_usage));
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), XKU_SSL_CLIENT | XKU_SSL_SERVER);
  EXPECT_EQ(testing::octetsHex(X509_get0_authority_key_id(cert.get())), rootA_.signingKeyId);
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);
  EXPECT_EQ(testing::asTimePoint(X509_get0_notBefore(cert.get())), kNow - 1min);
  EXPECT_EQ(testing::asTimePoint(X509_get0_notAfter(cert.get())), kNow - 1min + 72h);
  auto notAfter = certNotAfter(leaf->certPem);
  ASSERT_TRUE(notAfter);
  EXPECT_EQ(*notAfter, leaf->validBefore);

  // The certificate carries the CSR's key, so the request's private key serves it.
  BioPtr bio(BIO_new_mem_buf(request->privateKeyPem.data(),
                             static_cast<int>(request->privateKeyPem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST_F(LeafTest, LeafVerifiesAgainstItsRoot) {
  SignedLeaf leaf = leafA("web");
  auto id = verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, serviceIn(kTrustDomainA, "web"));

  VerifyOptions expectWeb = optsA();
  expectWeb.expectedService = "web";
  EXPECT_TRUE(verifyLeaf(leaf.certPem, rootA_.rootCertPem, expectWeb));
  // Valid from NotBefore (inclusive) until NotAfter (exclusive, as OpenSSL counts it).
  EXPECT_TRUE(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validAfter)));
  EXPECT_TRUE(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validBefore - 1s)));
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validBefore)),
                        "certificate has expired"));
}

TEST_F(LeafTest, TtlOption) {
  auto request = makeLeafRequest(serviceIn(kTrustDomainA, "web"));
  ASSERT_TRUE(request);
  auto leaf = signLeaf(rootA_, request->csrPem,
                       {.trustDomain = kTrustDomainA, .serial = 3, .now = kNow, .ttl = 1h});
  ASSERT_TRUE(leaf) << leaf.error().message;
  EXPECT_EQ(leaf->validBefore, kNow - 1min + 1h);
}

TEST_F(LeafTest, DottedAndLongServiceNamesVerify) {
  // A dotted CN is checked against the root's DNS name constraint by OpenSSL: it must still pass.
  SignedLeaf dotted = leafA("web.v2");
  auto dottedId = verifyLeaf(dotted.certPem, rootA_.rootCertPem, optsA());
  EXPECT_TRUE(dottedId) << dottedId.error().message;
  // CN is cut to X.509's 64-character bound; the SAN keeps the whole name.
  std::string longName(100, 'x');
  SignedLeaf longLeaf = leafA(longName);
  X509Ptr cert = firstCert(longLeaf.certPem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(testing::subjectCn(cert.get()), std::string(64, 'x'));
  auto id = verifyLeaf(longLeaf.certPem, rootA_.rootCertPem, optsA());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(id->service, longName);
}

TEST_F(LeafTest, CsrForAnotherClusterIsRefused) {
  auto request = makeLeafRequest(serviceIn(kTrustDomainB, "web"));
  ASSERT_TRUE(request);
  EXPECT_TRUE(failsWith(signCsrA(request->csrPem), "CSR SPIFFE ID trust domain " + kTrustDomainB +
                                                       " is not this cluster's " + kTrustDomainA));
}

TEST_F(LeafTest, LeafOfAnotherTrustDomainIsRefused) {
  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(failsWith(
      verifyLeaf(leaf.certPem, rootA_.rootCertPem, {.trustDomain = kTrustDomainB, .now = kNow}),
      "trust domain " + kTrustDomainA + " does not match " + kTrustDomainB));
}

TEST_F(LeafTest, WrongServiceIsRefused) {
  SignedLeaf leaf = leafA("web");
  VerifyOptions opts = optsA();
  opts.expectedService = "db";
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootA_.rootCertPem, opts),
                        "service web is not the expected db"));
}

TEST_F(LeafTest, ExpiredAndNotYetValidAreRefused) {
  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validBefore + 1s)),
                        "certificate has expired"));
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validAfter - 1s)),
                        "certificate is not yet valid"));
}

TEST_F(LeafTest, LeafOfAnotherRootIsRefused) {
  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootB_.rootCertPem, optsA()),
                        "not signed by a trusted root"));
  // A bare self-signed certificate is not trusted either.
  EvpPkeyPtr key = testing::keyOnCurve("P-256");
  std::string self = testing::bareSelfSigned(key.get(), "web");
  EXPECT_TRUE(
      failsWith(verifyLeaf(self, rootA_.rootCertPem, optsA()), "not signed by a trusted root"));
}

TEST_F(LeafTest, RootAsLeafIsRefused) {
  EXPECT_TRUE(failsWith(verifyLeaf(rootA_.rootCertPem, rootA_.rootCertPem, optsA()),
                        "is a CA certificate, not a leaf"));
}

TEST_F(LeafTest, TamperedCsrSignatureIsRefused) {
  auto request = makeLeafRequest(serviceIn(kTrustDomainA, "web"));
  ASSERT_TRUE(request);
  EXPECT_TRUE(
      failsWith(signCsrA(testing::tamperedCsr(request->csrPem)), "CSR signature is invalid"));
}

TEST_F(LeafTest, CsrSanProblemsAreRefused) {
  EvpPkeyPtr key = testing::keyOnCurve("P-256");
  ASSERT_TRUE(key);
  std::string web = serviceIn(kTrustDomainA, "web").uri();
  EXPECT_TRUE(
      failsWith(signCsrA(testing::rawCsr(key.get(), "web", {})), "CSR has no SPIFFE URI SAN"));
  EXPECT_TRUE(
      failsWith(signCsrA(testing::rawCsr(key.get(), "web", {web, web})), "CSR has 2 URI SANs"));
  EXPECT_TRUE(failsWith(signCsrA(testing::rawCsr(key.get(), "web", {signingUri(kTrustDomainA)})),
                        "CSR SPIFFE ID"));
  // A CSR built elsewhere with a valid SAN is accepted.
  auto leaf = signCsrA(testing::rawCsr(key.get(), "ignored-cn", {web}));
  ASSERT_TRUE(leaf) << leaf.error().message;
  EXPECT_EQ(testing::subjectCn(firstCert(leaf->certPem).get()), "web");
}

TEST_F(LeafTest, CsrWithAnotherKeyTypeIsRefused) {
  EvpPkeyPtr key = testing::keyOnCurve("P-384");
  ASSERT_TRUE(key);
  std::string csr = testing::rawCsr(key.get(), "web", {serviceIn(kTrustDomainA, "web").uri()});
  EXPECT_TRUE(failsWith(signCsrA(csr), "CSR key is not an EC P-256 key"));
}

TEST_F(LeafTest, GarbageAndOversizedInputsAreRefused) {
  EXPECT_TRUE(failsWith(signCsrA("hello"), "CSR is not a PEM certificate request"));
  EXPECT_TRUE(failsWith(signCsrA("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n"
                                 "-----END CERTIFICATE REQUEST-----\n"),
                        "CSR is not a PEM certificate request"));
  auto big = signCsrA(std::string(kMaxCsrPemBytes + 1, 'A'));
  EXPECT_TRUE(failsWith(big, "the limit is 16384"));
  EXPECT_EQ(big.error().code, ErrorCode::kTooLarge);

  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(failsWith(verifyLeaf("garbage", rootA_.rootCertPem, optsA()),
                        "certificate chain: PEM bundle holds no certificate"));
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, "", optsA()),
                        "trusted roots: PEM bundle holds no certificate"));
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem,
                                   "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                   "-----END CERTIFICATE-----\n",
                                   optsA()),
                        "trusted roots: certificate 1 of the PEM bundle does not parse"));
}

TEST_F(LeafTest, BundleLimits) {
  std::string many;
  for (size_t i = 0; i <= kMaxBundleCerts; ++i) many += rootA_.rootCertPem;
  auto tooMany = parseCertificates(many);
  EXPECT_TRUE(failsWith(tooMany, "more than 64 certificates"));
  EXPECT_EQ(tooMany.error().code, ErrorCode::kTooLarge);
  auto maxed = parseCertificates(many.substr(rootA_.rootCertPem.size()));
  ASSERT_TRUE(maxed) << maxed.error().message;
  EXPECT_EQ(maxed->size(), kMaxBundleCerts);
  EXPECT_TRUE(
      failsWith(parseCertificates(std::string(kMaxBundleBytes + 1, '\n')), "the limit is 1048576"));
}

TEST_F(LeafTest, SignerProblemsAreRefused) {
  auto request = makeLeafRequest(serviceIn(kTrustDomainA, "web"));
  ASSERT_TRUE(request);
  RootCa mismatched = rootA_;
  mismatched.privateKeyPem = rootB_.privateKeyPem;
  EXPECT_TRUE(failsWith(signLeaf(mismatched, request->csrPem,
                                 {.trustDomain = kTrustDomainA, .serial = 1, .now = kNow}),
                        "signing CA private key does not match its certificate"));
  EXPECT_TRUE(failsWith(
      signLeaf(rootA_, request->csrPem, {.trustDomain = kTrustDomainA, .serial = 0, .now = kNow}),
      "serial must be non-zero"));
  EXPECT_TRUE(failsWith(signLeaf(rootA_, request->csrPem,
                                 {.trustDomain = kTrustDomainA, .serial = 1, .now = kNow + 87600h}),
                        "signing CA expired at"));
  auto leaf =
      signLeaf(rootA_, request->csrPem, {.trustDomain = kTrustDomainA, .serial = 9, .now = kNow});
  ASSERT_TRUE(leaf) << leaf.error().message;
  RootCa leafAsCa = rootA_;
  leafAsCa.rootCertPem = leaf->certPem;
  leafAsCa.privateKeyPem = request->privateKeyPem;
  EXPECT_TRUE(failsWith(
      signLeaf(leafAsCa, request->csrPem, {.trustDomain = kTrustDomainA, .serial = 1, .now = kNow}),
      "signing CA certificate is not a CA certificate"));
}

TEST_F(LeafTest, ServiceIdOfNeedsOneServiceUri) {
  X509Ptr root = firstCert(rootA_.rootCertPem);
  EXPECT_TRUE(failsWith(serviceIdOf(root.get()), "not a service SPIFFE ID"));
  EvpPkeyPtr key = testing::keyOnCurve("P-256");
  X509Ptr bare = firstCert(testing::bareSelfSigned(key.get(), "web"));
  EXPECT_TRUE(failsWith(serviceIdOf(bare.get()), "no SPIFFE URI SAN"));
  EXPECT_TRUE(failsWith(serviceIdOf(nullptr), "no certificate"));
  SignedLeaf leaf = leafA("db");
  X509Ptr cert = firstCert(leaf.certPem);
  auto id = serviceIdOf(cert.get());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(id->service, "db");
}

TEST_F(LeafTest, TrustedRootsMustBeCas) {
  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(failsWith(verifyLeaf(leaf.certPem, rootA_.rootCertPem + leaf.certPem, optsA()),
                        "trusted root 2 is not a CA certificate"));
}

TEST_F(LeafTest, LeavesNoOpensslErrorsBehind) {
  // OpenSSL's error queue is per thread; a stale entry would confuse the next TLS call there.
  ERR_clear_error();
  SignedLeaf leaf = leafA("web");
  EXPECT_TRUE(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA()));
  EXPECT_FALSE(verifyLeaf(leaf.certPem, rootB_.rootCertPem, optsA()));
  EXPECT_FALSE(verifyLeaf(leaf.certPem, rootA_.rootCertPem, optsA(leaf.validBefore + 1h)));
  EXPECT_FALSE(verifyLeaf("junk", rootA_.rootCertPem, optsA()));
  EXPECT_FALSE(signCsrA("junk"));
  auto request = makeLeafRequest(serviceIn(kTrustDomainA, "x"));
  ASSERT_TRUE(request);
  EXPECT_FALSE(signCsrA(testing::tamperedCsr(request->csrPem)));
  EXPECT_FALSE(certNotAfter("junk"));
  EXPECT_FALSE(parseCertificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  RootCa mismatched = rootA_;
  mismatched.privateKeyPem = rootB_.privateKeyPem;
  EXPECT_FALSE(crossSign(mismatched, rootB_, kNow));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(VerifyErrorMessageTest, NamesTheProblem) {
  EXPECT_EQ(verifyErrorMessage(X509_V_ERR_CERT_HAS_EXPIRED, 0), "certificate has expired");
  EXPECT_EQ(verifyErrorMessage(X509_V_ERR_CERT_HAS_EXPIRED, 1),
            "CA certificate at chain depth 1 has expired");
  EXPECT_EQ(verifyErrorMessage(X509_V_ERR_CERT_NOT_YET_VALID, 0), "certificate is not yet valid");
  EXPECT_NE(verifyErrorMessage(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 0)
                .find("not signed by a trusted root"),
            std::string::npos);
  EXPECT_NE(verifyErrorMessage(X509_V_ERR_INVALID_CA, 1).find("does not verify"),
            std::string::npos);
}

}  // namespace
}  // namespace taskmesh::connect
