#include "connect/x509_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <climits>
#include <ctime>

namespace taskmesh::connect::detail {
namespace {

constexpr size_t kMaxCommonNameBytes = 64;  // ub-common-name (RFC 5280)

// Never prompts on a terminal for the pass phrase of an encrypted key: such keys are refused.
int noPassword(char*, int, int, void*) { return 0; }

Result<std::string> bioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) {
    return makeError(opensslFailure(ErrorCode::kInternal, "PEM encoding produced no output"));
  }
  return std::string(data, static_cast<size_t>(size));
}

Result<BioPtr> writeBio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return makeError(opensslFailure(ErrorCode::kInternal, "cannot allocate a memory BIO"));
  return bio;
}

}  // namespace

std::string takeOpensslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  if (const char* reason = ERR_reason_error_string(code)) return reason;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

Error opensslFailure(ErrorCode code, std::string what) {
  std::string reason = takeOpensslError();
  if (!reason.empty()) what += " (" + reason + ")";
  return Error{code, std::move(what)};
}

std::string colonHex(std::span<const unsigned char> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 3);
  for (unsigned char b : bytes) {
    if (!out.empty()) out.push_back(':');
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

Result<BioPtr> readBio(std::string_view data) {
  if (data.size() > INT_MAX) return makeError(ErrorCode::kTooLarge, "PEM input is too large");
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return makeError(opensslFailure(ErrorCode::kInternal, "cannot allocate a memory BIO"));
  return bio;
}

Result<X509Ptr> readCertificate(std::string_view pem, std::string_view what) {
  auto bio = readBio(pem);
  if (!bio) return makeError(bio.error());
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return makeError(opensslFailure(ErrorCode::kInvalidArgument,
                                    std::string(what) + " is not a PEM certificate"));
  }
  return cert;
}

Result<X509ReqPtr> readRequest(std::string_view pem, std::string_view what) {
  auto bio = readBio(pem);
  if (!bio) return makeError(bio.error());
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio->get(), nullptr, nullptr, nullptr));
  if (!req) {
    return makeError(opensslFailure(ErrorCode::kInvalidArgument,
                                    std::string(what) + " is not a PEM certificate request"));
  }
  return req;
}

Result<EvpPkeyPtr> readPrivateKey(std::string_view pem, std::string_view what) {
  auto bio = readBio(pem);
  if (!bio) return makeError(bio.error());
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, noPassword, nullptr));
  if (!key) {
    return makeError(opensslFailure(ErrorCode::kInvalidArgument,
                                    std::string(what) + " is not an unencrypted PEM private key"));
  }
  return key;
}

Result<std::string> certificatePem(X509* cert) {
  auto bio = writeBio();
  if (!bio) return makeError(bio.error());
  if (PEM_write_bio_X509(bio->get(), cert) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot PEM-encode a certificate"));
  }
  return bioText(bio->get());
}

Result<std::string> requestPem(X509_REQ* req) {
  auto bio = writeBio();
  if (!bio) return makeError(bio.error());
  if (PEM_write_bio_X509_REQ(bio->get(), req) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot PEM-encode a CSR"));
  }
  return bioText(bio->get());
}

Result<std::string> privateKeyPem(EVP_PKEY* key) {
  auto bio = writeBio();
  if (!bio) return makeError(bio.error());
  if (PEM_write_bio_PrivateKey_traditional(bio->get(), key, nullptr, nullptr, 0, nullptr,
                                           nullptr) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot PEM-encode a private key"));
  }
  return bioText(bio->get());
}

Result<EvpPkeyPtr> generateP256Key() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return makeError(opensslFailure(ErrorCode::kInternal, "cannot generate a P-256 key"));
  return key;
}

bool isP256(EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) {
    ERR_clear_error();
    return false;
  }
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) nid = EC_curve_nist2nid(group);
  return nid == NID_X9_62_prime256v1;
}

int64_t toUnixSeconds(TimePoint t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

TimePoint fromUnixSeconds(int64_t seconds) { return TimePoint(std::chrono::seconds(seconds)); }

Result<TimePoint> fromAsn1Time(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return makeError(opensslFailure(ErrorCode::kInvalidArgument, "certificate time is malformed"));
  }
  return fromUnixSeconds(static_cast<int64_t>(timegm(&tm)));
}

Result<void> setValidity(X509* cert, TimePoint notBefore, TimePoint notAfter) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(toUnixSeconds(notBefore))) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(toUnixSeconds(notAfter))) ==
          nullptr) {
    return makeError(
        opensslFailure(ErrorCode::kInvalidArgument, "cannot set certificate validity"));
  }
  return {};
}

Result<void> setSerial(X509* cert, uint64_t serial) {
  if (ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot set certificate serial"));
  }
  return {};
}

Result<X509NamePtr> commonNameOnly(std::string_view commonName) {
  size_t cut = std::min(commonName.size(), kMaxCommonNameBytes);
  // Never split a UTF-8 sequence: back off over continuation bytes.
  while (cut > 0 && cut < commonName.size() &&
         (static_cast<unsigned char>(commonName[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  if (cut == 0) return makeError(ErrorCode::kInvalidArgument, "common name is empty");
  X509NamePtr name(X509_NAME_new());
  if (!name || X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                          reinterpret_cast<const unsigned char*>(commonName.data()),
                                          static_cast<int>(cut), -1, 0) != 1) {
    return makeError(opensslFailure(
        ErrorCode::kInvalidArgument,
        "common name \"" + std::string(commonName.substr(0, cut)) + "\" cannot be encoded"));
  }
  return name;
}

Result<void> addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, std::string("cannot add extension ") +
                                                              OBJ_nid2sn(nid) + "=" + value));
  }
  return {};
}

Result<X509ExtensionPtr> uriSanExtension(const std::string& uri) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  bool ok =
      names && name && text && ASN1_STRING_set(text, uri.data(), static_cast<int>(uri.size())) == 1;
  if (ok) {
    GENERAL_NAME_set0_value(name, GEN_URI, text);  // `name` owns `text` from here
    text = nullptr;
    ok = sk_GENERAL_NAME_push(names.get(), name) > 0;
    if (ok) name = nullptr;  // `names` owns `name` from here
  }
  ASN1_IA5STRING_free(text);
  GENERAL_NAME_free(name);
  if (!ok) return makeError(opensslFailure(ErrorCode::kInternal, "cannot build a URI SAN"));
  X509ExtensionPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get()));
  if (!ext) return makeError(opensslFailure(ErrorCode::kInternal, "cannot encode a URI SAN"));
  return ext;
}

Result<std::string> subjectKeyIdHex(X509* cert) {
  const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(cert);
  ERR_clear_error();
  if (skid == nullptr) {
    return makeError(ErrorCode::kInvalidArgument, "certificate has no subject key identifier");
  }
  return colonHex({ASN1_STRING_get0_data(skid), static_cast<size_t>(ASN1_STRING_length(skid))});
}

Result<std::string> sha1FingerprintHex(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha1(), md, &len) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot hash a certificate"));
  }
  return colonHex({md, len});
}

}  // namespace taskmesh::connect::detail

namespace taskmesh::connect::detail {

std::string formatTime(TimePoint t) {
  time_t secs = static_cast<time_t>(toUnixSeconds(t));
  struct tm tm = {};
  char buf[40] = "?";
  if (gmtime_r(&secs, &tm) != nullptr) strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<void> checkNowAndTtl(TimePoint now, std::chrono::seconds ttl, std::string_view what) {
  if (now == TimePoint{}) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string(what) + ": the current time is not set");
  }
  if (ttl <= std::chrono::seconds::zero() || ttl > kMaxTtl) {
    return makeError(ErrorCode::kInvalidArgument, std::string(what) + ": ttl " +
                                                      std::to_string(ttl.count()) +
                                                      "s is not between 1s and 100 years");
  }
  return {};
}

Result<X509Ptr> newCertificate(const X509_NAME* subject, const X509_NAME* issuer,
                               EVP_PKEY* publicKey, uint64_t serial, TimePoint notBefore,
                               TimePoint notAfter) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_subject_name(cert.get(), subject) != 1 ||
      X509_set_issuer_name(cert.get(), issuer) != 1 ||
      X509_set_pubkey(cert.get(), publicKey) != 1) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot start a certificate"));
  }
  if (auto ok = setSerial(cert.get(), serial); !ok) return makeError(ok.error());
  if (auto ok = setValidity(cert.get(), notBefore, notAfter); !ok) return makeError(ok.error());
  return cert;
}

Result<void> signCertificate(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return makeError(opensslFailure(ErrorCode::kInternal, "cannot sign a certificate"));
  }
  return {};
}

Result<Signer> loadSigner(std::string_view certPem, std::string_view keyPem,
                          std::string_view what) {
  auto cert = readCertificate(certPem, std::string(what) + " certificate");
  if (!cert) return makeError(cert.error());
  auto key = readPrivateKey(keyPem, std::string(what) + " private key");
  if (!key) return makeError(key.error());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return makeError(ErrorCode::kInvalidArgument,
                     std::string(what) + " private key does not match its certificate");
  }
  if (X509_check_ca(cert->get()) == 0) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string(what) + " certificate is not a CA certificate");
  }
  return Signer{std::move(*cert), std::move(*key)};
}

Result<std::string> singleUriSan(const GENERAL_NAMES* names, std::string_view what) {
  const ASN1_IA5STRING* found = nullptr;
  int uris = 0;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    ++uris;
    found = name->d.uniformResourceIdentifier;
  }
  if (uris == 0) {
    return makeError(ErrorCode::kInvalidArgument, std::string(what) + " has no SPIFFE URI SAN");
  }
  if (uris > 1) {
    return makeError(ErrorCode::kInvalidArgument, std::string(what) + " has " +
                                                      std::to_string(uris) +
                                                      " URI SANs; a SPIFFE ID needs exactly one");
  }
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(found)),
                     static_cast<size_t>(ASN1_STRING_length(found)));
}

}  // namespace taskmesh::connect::detail
