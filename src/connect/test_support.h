#pragma once
// Test-only helpers for connect's unit tests (not part of the library): fixed trust domains and
// clock, assertions on error messages, and raw-OpenSSL builders for inputs our API never makes
// (CSRs without a SAN, tampered signatures, foreign key types).

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <string>
#include <string_view>
#include <vector>

#include "connect/ca.h"
#include "connect/openssl_ptr.h"
#include "connect/verify.h"

namespace taskmesh::connect::testing {

inline const std::string kTrustDomainA = "11111111-2222-3333-4444-555555555555.consul";
inline const std::string kTrustDomainB = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.consul";
// 2027-01-15T08:00:00Z, a whole second.
inline const TimePoint kNow = TimePoint(std::chrono::seconds(1800000000));

// Passes when `r` failed with a message containing `fragment`.
template <typename T>
::testing::AssertionResult failsWith(const Result<T>& r, std::string_view fragment) {
  if (r.has_value()) {
    return ::testing::AssertionFailure()
           << "succeeded; expected an error containing \"" << fragment << "\"";
  }
  if (r.error().message.find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "error \"" << r.error().message << "\" does not contain \"" << fragment << "\"";
  }
  return ::testing::AssertionSuccess();
}

inline ServiceId serviceIn(const std::string& trustDomain, const std::string& service) {
  return ServiceId{.trustDomain = trustDomain, .datacenter = "dc1", .service = service};
}

// The first certificate of `pem`, or null (with a test failure).
inline X509Ptr firstCert(std::string_view pem) {
  auto certs = parseCertificates(pem);
  if (!certs) {
    ADD_FAILURE() << certs.error().message;
    return nullptr;
  }
  return std::move(certs->front());
}

// How many certificates `pem` holds (0 on a parse error).
inline size_t certCount(std::string_view pem) {
  auto certs = parseCertificates(pem);
  return certs ? certs->size() : 0;
}

inline std::string subjectCn(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// Whether `cert` has extension `nid` marked critical (false when absent).
inline bool isCritical(X509* cert, int nid) {
  int at = X509_get_ext_by_NID(cert, nid, -1);
  return at >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, at)) == 1;
}

// Every URI SAN of `cert`.
inline std::vector<std::string> uriSans(X509* cert) {
  std::vector<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = name->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

inline std::string octetsHex(const ASN1_OCTET_STRING* s) {
  if (s == nullptr) return "";
  std::string out;
  char buf[4];
  for (int i = 0; i < ASN1_STRING_length(s); ++i) {
    snprintf(buf, sizeof buf, "%s%02x", i == 0 ? "" : ":", ASN1_STRING_get0_data(s)[i]);
    out += buf;
  }
  return out;
}

inline TimePoint asTimePoint(const ASN1_TIME* t) {
  struct tm tm = {};
  EXPECT_EQ(ASN1_TIME_to_tm(t, &tm), 1);
  return TimePoint(std::chrono::seconds(timegm(&tm)));
}

inline EvpPkeyPtr keyOnCurve(const char* curve) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

// A CSR signed by `key` with CN=`cn` and the given URI SANs (none → no SAN extension).
inline std::string rawCsr(EVP_PKEY* key, const std::string& cn,
                          const std::vector<std::string>& uris) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_REQ_set_pubkey(req.get(), key);
  if (!uris.empty()) {
    GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
    for (const std::string& uri : uris) {
      GENERAL_NAME* name = GENERAL_NAME_new();
      ASN1_IA5STRING* s = ASN1_IA5STRING_new();
      ASN1_STRING_set(s, uri.data(), static_cast<int>(uri.size()));
      GENERAL_NAME_set0_value(name, GEN_URI, s);
      sk_GENERAL_NAME_push(names.get(), name);
    }
    X509ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get()));
    X509_REQ_add_extensions(req.get(), exts.get());
  }
  EXPECT_GT(X509_REQ_sign(req.get(), key, EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// `csrPem` with the last byte of its DER (inside the signature) flipped.
inline std::string tamperedCsr(const std::string& csrPem) {
  BioPtr in(BIO_new_mem_buf(csrPem.data(), static_cast<int>(csrPem.size())));
  X509ReqPtr req(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr));
  EXPECT_TRUE(req);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  der[len - 1] ^= 0x01;
  const unsigned char* p = der;
  X509ReqPtr bad(d2i_X509_REQ(nullptr, &p, len));
  OPENSSL_free(der);
  EXPECT_TRUE(bad);
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), bad.get());
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// A self-signed v3 certificate for `key` with CN=`cn`, valid around kNow, with no extensions.
inline std::string bareSelfSigned(EVP_PKEY* key, const std::string& cn) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 99);
  X509_NAME_add_entry_by_NID(X509_get_subject_name(cert.get()), NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), 1800000000 - 3600);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), 1800000000 + 3600);
  X509_set_pubkey(cert.get(), key);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), cert.get());
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace taskmesh::connect::testing
