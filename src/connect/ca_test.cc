#include "connect/ca.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include "connect/test_support.h"

namespace taskmesh::connect {
namespace {

using namespace std::chrono_literals;
using testing::failsWith;
using testing::firstCert;
using testing::isCritical;
using testing::kNow;
using testing::kTrustDomainA;

// Whether `text` is 20 lower-case hex bytes joined by ':' ("c7:bd:...").
bool isSha1ColonHex(const std::string& text) {
  if (text.size() != 20 * 3 - 1) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool ok = i % 3 == 2 ? c == ':' : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    if (!ok) return false;
  }
  return true;
}

std::string groupName(EVP_PKEY* key) {
  char group[64] = {};
  size_t len = 0;
  EVP_PKEY_get_group_name(key, group, sizeof group, &len);
  return group;
}

TEST(SerialHexTest, ConsulForm) {
  EXPECT_EQ(serialHex(8), "08");
  EXPECT_EQ(serialHex(0x2a), "2a");
  EXPECT_EQ(serialHex(0x100), "01:00");
  EXPECT_EQ(serialHex(0x1234), "12:34");
  EXPECT_EQ(serialHex(0), "00");
  EXPECT_EQ(serialHex(UINT64_MAX), "ff:ff:ff:ff:ff:ff:ff:ff");
}

TEST(GenerateRootTest, SelfSignedP256CaWithSpiffeSan) {
  auto root = generateRoot({.trustDomain = kTrustDomainA, .serial = 7, .now = kNow});
  ASSERT_TRUE(root) << root.error().message;
  X509Ptr cert = firstCert(root->rootCertPem);
  ASSERT_TRUE(cert);

  EXPECT_EQ(X509_check_issued(cert.get(), cert.get()), X509_V_OK);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(testing::subjectCn(cert.get()), "Consul CA 7");
  EXPECT_EQ(root->name, "Consul CA 7");
  EXPECT_EQ(ASN1_INTEGER_get(X509_get0_serialNumber(cert.get())), 7);
  EXPECT_EQ(root->serialNumber, 7u);

  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_TRUE(isCritical(cert.get(), NID_basic_constraints));
  EXPECT_EQ(X509_get_key_usage(cert.get()), KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  EXPECT_TRUE(isCritical(cert.get(), NID_key_usage));
  EXPECT_EQ(testing::uriSans(cert.get()), std::vector<std::string>{"spiffe://" + kTrustDomainA});

  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  EXPECT_EQ(groupName(pub), "prime256v1");

  EXPECT_EQ(testing::asTimePoint(X509_get0_notBefore(cert.get())), kNow);
  EXPECT_EQ(testing::asTimePoint(X509_get0_notAfter(cert.get())), kNow + 87600h);
  EXPECT_EQ(root->notBefore, kNow);
  EXPECT_EQ(root->notAfter, kNow + 87600h);
  EXPECT_TRUE(root->intermediateCertPems.empty());
}

TEST(GenerateRootTest, IdIsSha1OfDerAndSigningKeyIdIsTheSubjectKeyId) {
  auto root = generateRoot({.trustDomain = kTrustDomainA, .now = kNow});
  ASSERT_TRUE(root) << root.error().message;
  X509Ptr cert = firstCert(root->rootCertPem);
  ASSERT_TRUE(cert);

  EXPECT_TRUE(isSha1ColonHex(root->id)) << root->id;
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  ASSERT_GT(len, 0);
  unsigned char md[SHA_DIGEST_LENGTH];
  unsigned int mdLen = 0;
  EVP_Digest(der, static_cast<size_t>(len), md, &mdLen, EVP_sha1(), nullptr);
  OPENSSL_free(der);
  ASN1_OCTET_STRING* digest = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(digest, md, static_cast<int>(mdLen));
  EXPECT_EQ(root->id, testing::octetsHex(digest));

  // The key id is SHA-1 of the public key bits (RFC 5280 §4.2.1.2 method 1).
  EXPECT_TRUE(isSha1ColonHex(root->signingKeyId)) << root->signingKeyId;
  EXPECT_EQ(root->signingKeyId, testing::octetsHex(X509_get0_subject_key_id(cert.get())));
  X509_pubkey_digest(cert.get(), EVP_sha1(), md, &mdLen);
  ASN1_OCTET_STRING_set(digest, md, static_cast<int>(mdLen));
  EXPECT_EQ(root->signingKeyId, testing::octetsHex(digest));
  ASN1_OCTET_STRING_free(digest);
  // A self-signed root names its own key as the authority key.
  EXPECT_EQ(testing::octetsHex(X509_get0_authority_key_id(cert.get())), root->signingKeyId);
}

TEST(GenerateRootTest, PrivateKeyIsSec1PemMatchingTheCertificate) {
  auto root = generateRoot({.trustDomain = kTrustDomainA, .now = kNow});
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_TRUE(root->privateKeyPem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
  BioPtr bio(
      BIO_new_mem_buf(root->privateKeyPem.data(), static_cast<int>(root->privateKeyPem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  X509Ptr cert = firstCert(root->rootCertPem);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST(GenerateRootTest, EachRootHasItsOwnKeyAndId) {
  auto a = generateRoot({.trustDomain = kTrustDomainA, .serial = 1, .now = kNow});
  auto b = generateRoot({.trustDomain = kTrustDomainA, .serial = 1, .now = kNow});
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->id, b->id);
  EXPECT_NE(a->signingKeyId, b->signingKeyId);
  EXPECT_NE(a->privateKeyPem, b->privateKeyPem);
}

TEST(GenerateRootTest, CommonNameAndTtlOptions) {
  auto root = generateRoot({.trustDomain = kTrustDomainA,
                            .commonName = "pri-1abc.consul.ca.11111111.consul",
                            .now = kNow + 500ms,
                            .ttl = 24h});
  ASSERT_TRUE(root) << root.error().message;
  X509Ptr cert = firstCert(root->rootCertPem);
  EXPECT_EQ(testing::subjectCn(cert.get()), "pri-1abc.consul.ca.11111111.consul");
  EXPECT_EQ(root->name, "pri-1abc.consul.ca.11111111.consul");
  EXPECT_EQ(root->notBefore, kNow);  // whole seconds, as in the certificate
  EXPECT_EQ(root->notAfter, kNow + 24h);
  auto notAfter = certNotAfter(root->rootCertPem);
  ASSERT_TRUE(notAfter) << notAfter.error().message;
  EXPECT_EQ(*notAfter, kNow + 24h);
}

TEST(GenerateRootTest, RejectsBadOptions) {
  EXPECT_TRUE(failsWith(generateRoot({.trustDomain = "", .now = kNow}), "trust domain is empty"));
  EXPECT_TRUE(
      failsWith(generateRoot({.trustDomain = "A.consul", .now = kNow}), "must be lower case"));
  EXPECT_TRUE(failsWith(generateRoot({.trustDomain = kTrustDomainA, .serial = 0, .now = kNow}),
                        "serial must be non-zero"));
  EXPECT_TRUE(failsWith(generateRoot({.trustDomain = kTrustDomainA}), "current time is not set"));
  EXPECT_TRUE(
      failsWith(generateRoot({.trustDomain = kTrustDomainA, .now = kNow, .ttl = 0s}), "ttl 0s"));
}

TEST(CertNotAfterTest, RejectsGarbage) {
  EXPECT_TRUE(failsWith(certNotAfter("not a pem"), "certificate is not a PEM certificate"));
}

TEST(MakeLeafRequestTest, CsrCarriesTheServiceIdentity) {
  ServiceId id = testing::serviceIn(kTrustDomainA, "web");
  auto request = makeLeafRequest(id);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_TRUE(request->privateKeyPem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
  BioPtr bio(BIO_new_mem_buf(request->csrPem.data(), static_cast<int>(request->csrPem.size())));
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(req);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  EXPECT_EQ(X509_REQ_verify(req.get(), pub), 1);
  EXPECT_EQ(groupName(pub), "prime256v1");

  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "web");

  X509ExtensionStackPtr exts(X509_REQ_get_extensions(req.get()));
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
  ASSERT_TRUE(names);
  ASSERT_EQ(sk_GENERAL_NAME_num(names.get()), 1);
  const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), 0);
  ASSERT_EQ(name->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(
                ASN1_STRING_get0_data(name->d.uniformResourceIdentifier))),
            id.uri());

  BioPtr keyBio(BIO_new_mem_buf(request->privateKeyPem.data(),
                                static_cast<int>(request->privateKeyPem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), pub), 1);
}

TEST(MakeLeafRequestTest, RejectsAnInvalidIdentity) {
  EXPECT_TRUE(failsWith(makeLeafRequest(testing::serviceIn(kTrustDomainA, "we b")),
                        "service \"we b\" has a character outside"));
  EXPECT_TRUE(failsWith(makeLeafRequest(testing::serviceIn("", "web")), "trust domain is empty"));
}

}  // namespace
}  // namespace taskmesh::connect
