#pragma once
// Private helpers of the connect module (not for other modules): PEM and DER conversion, keys,
// time conversion, X.509 extensions, and turning OpenSSL's thread-local error queue into
// messages. Safe from any thread; every helper leaves the calling thread's error queue empty.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "connect/openssl_ptr.h"

namespace taskmesh::connect::detail {

using TimePoint = std::chrono::system_clock::time_point;

// The oldest error on this thread's OpenSSL queue as text ("" when empty); clears the queue.
std::string takeOpensslError();

// An error with `what` followed by OpenSSL's reason, if it gave one; clears the queue.
Error opensslFailure(ErrorCode code, std::string what);

// Lower-case hex bytes joined by ':' ("c7:bd:0a").
std::string colonHex(std::span<const unsigned char> bytes);

// A read-only memory BIO over `data` (which must outlive it).
Result<BioPtr> readBio(std::string_view data);

// The first certificate / request / private key in `pem`; `what` names it in the error.
Result<X509Ptr> readCertificate(std::string_view pem, std::string_view what);
Result<X509ReqPtr> readRequest(std::string_view pem, std::string_view what);
Result<EvpPkeyPtr> readPrivateKey(std::string_view pem, std::string_view what);

// PEM text ending in a newline. Private keys are written in SEC 1 form ("EC PRIVATE KEY"), as
// Consul writes them.
Result<std::string> certificatePem(X509* cert);
Result<std::string> requestPem(X509_REQ* req);
Result<std::string> privateKeyPem(EVP_PKEY* key);

// A fresh ECDSA P-256 key.
Result<EvpPkeyPtr> generateP256Key();

// Whether `key` is an EC key on the P-256 (prime256v1) curve.
bool isP256(EVP_PKEY* key);

// Whole seconds since the epoch (floor) and back.
int64_t toUnixSeconds(TimePoint t);
TimePoint fromUnixSeconds(int64_t seconds);

// Converts an ASN1_TIME (UTCTime or GeneralizedTime) to a time point.
Result<TimePoint> fromAsn1Time(const ASN1_TIME* t);

// Sets the certificate's validity to [notBefore, notAfter] (whole seconds).
Result<void> setValidity(X509* cert, TimePoint notBefore, TimePoint notAfter);

// Sets a positive serial number. `serial` is non-zero (checked by callers).
Result<void> setSerial(X509* cert, uint64_t serial);

// A name with the single entry CN=`commonName`, cut to X.509's 64-byte upper bound.
Result<X509NamePtr> commonNameOnly(std::string_view commonName);

// Adds an extension given in OpenSSL's config syntax ("critical,CA:TRUE", "hash",
// "keyid:always"), resolved against `issuer` and `subject` (either may be the cert itself).
Result<void> addExtension(X509* cert, X509* issuer, int nid, const char* value);

// A subjectAltName extension holding the single URI `uri`.
Result<X509ExtensionPtr> uriSanExtension(const std::string& uri);

// The subjectKeyIdentifier of `cert` as colon hex; an error if it has none.
Result<std::string> subjectKeyIdHex(X509* cert);

// Colon hex of SHA-1 over the certificate's DER encoding.
Result<std::string> sha1FingerprintHex(X509* cert);

// "2026-01-02T03:04:05Z" (UTC, whole seconds), for messages.
std::string formatTime(TimePoint t);

// Checks the inputs of a new certificate's validity: `now` is set (not the epoch) and
// 0 < ttl <= kMaxTtl. `what` prefixes the error ("root CA", "leaf").
inline constexpr std::chrono::seconds kMaxTtl = std::chrono::hours(24 * 365 * 100);
Result<void> checkNowAndTtl(TimePoint now, std::chrono::seconds ttl, std::string_view what);

// A v3 certificate with the given names (copied), public key (shared), serial and validity, and
// no extensions yet.
Result<X509Ptr> newCertificate(const X509_NAME* subject, const X509_NAME* issuer,
                               EVP_PKEY* publicKey, uint64_t serial, TimePoint notBefore,
                               TimePoint notAfter);

// Signs `cert` with `key` using SHA-256 (ecdsa-with-SHA256 for EC keys).
Result<void> signCertificate(X509* cert, EVP_PKEY* key);

// A CA certificate and its private key, checked to belong together.
struct Signer {
  X509Ptr cert;
  EvpPkeyPtr key;
};
Result<Signer> loadSigner(std::string_view certPem, std::string_view keyPem, std::string_view what);

// The one URI among `names` (which may be null); `what` names the holder in errors
// ("<what> has no SPIFFE URI SAN", "<what> has 2 URI SANs; a SPIFFE ID needs exactly one").
Result<std::string> singleUriSan(const GENERAL_NAMES* names, std::string_view what);

}  // namespace taskmesh::connect::detail
