#include "connect/ca.h"

#include <openssl/rand.h>

#include <algorithm>

#include "connect/x509_util.h"

namespace taskmesh::connect {
namespace {

using detail::addExtension;

// Extensions of a root for `trustDomain` (validated).
Result<void> addRootExtensions(X509* cert, const std::string& trustDomain) {
  if (auto ok = addExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"); !ok) {
    return ok;
  }
  if (auto ok =
          addExtension(cert, cert, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign");
      !ok) {
    return ok;
  }
  auto san = detail::uriSanExtension(signingUri(trustDomain));
  if (!san) return makeError(san.error());
  if (X509_add_ext(cert, san->get(), -1) != 1) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot add the root's SAN"));
  }
  // No NameConstraints (permitted DNS:<trustDomain>): OpenSSL checks a leaf's CN that looks like
  // a host name against DNS constraints, so a leaf for a service named "web.v2" would not verify.
  if (auto ok = addExtension(cert, cert, NID_subject_key_identifier, "hash"); !ok) return ok;
  return addExtension(cert, cert, NID_authority_key_identifier, "keyid:always");
}

Result<void> checkRootOptions(const RootOptions& opts) {
  if (auto ok = validateTrustDomain(opts.trustDomain); !ok) {
    return makeError(ErrorCode::kInvalidArgument, "root CA: " + ok.error().message);
  }
  if (opts.serial == 0) {
    return makeError(ErrorCode::kInvalidArgument, "root CA: serial must be non-zero");
  }
  return detail::checkNowAndTtl(opts.now, opts.ttl, "root CA");
}

// A random positive serial below 2^63, never zero.
Result<uint64_t> randomSerial() {
  uint64_t serial = 0;
  while (serial == 0) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) {
      return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot draw a serial"));
    }
    serial &= ~(uint64_t{1} << 63);
  }
  return serial;
}

// Copies every extension of `from` except its AuthorityKeyIdentifier onto `to`.
Result<void> copyExtensionsButAkid(X509* from, X509* to) {
  for (int i = 0; i < X509_get_ext_count(from); ++i) {
    X509_EXTENSION* ext = X509_get_ext(from, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_authority_key_identifier) continue;
    if (X509_add_ext(to, ext, -1) != 1) {
      return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot copy an extension"));
    }
  }
  return {};
}

}  // namespace

std::string serialHex(uint64_t serial) {
  unsigned char bytes[8];
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(serial & 0xff);
    serial >>= 8;
  }
  size_t first = 0;
  while (first < 7 && bytes[first] == 0) ++first;
  return detail::colonHex({bytes + first, sizeof bytes - first});
}

Result<RootCa> generateRoot(const RootOptions& opts) {
  if (auto ok = checkRootOptions(opts); !ok) return makeError(ok.error());
  auto key = detail::generateP256Key();
  if (!key) return makeError(key.error());
  std::string commonName =
      opts.commonName.empty() ? "Consul CA " + std::to_string(opts.serial) : opts.commonName;
  auto name = detail::commonNameOnly(commonName);
  if (!name) return makeError(ErrorCode::kInvalidArgument, "root CA: " + name.error().message);
  TimePoint notBefore = detail::fromUnixSeconds(detail::toUnixSeconds(opts.now));
  TimePoint notAfter = notBefore + opts.ttl;
  auto cert = detail::newCertificate(name->get(), name->get(), key->get(), opts.serial, notBefore,
                                     notAfter);
  if (!cert) return makeError(cert.error());
  if (auto ok = addRootExtensions(cert->get(), opts.trustDomain); !ok) return makeError(ok.error());
  if (auto ok = detail::signCertificate(cert->get(), key->get()); !ok) {
    return makeError(ok.error());
  }
  auto id = detail::sha1FingerprintHex(cert->get());
  if (!id) return makeError(id.error());
  auto keyId = detail::subjectKeyIdHex(cert->get());
  if (!keyId) return makeError(keyId.error());
  auto certPem = detail::certificatePem(cert->get());
  if (!certPem) return makeError(certPem.error());
  auto keyPem = detail::privateKeyPem(key->get());
  if (!keyPem) return makeError(keyPem.error());
  return RootCa{.id = std::move(*id),
                .name = std::move(commonName),
                .serialNumber = opts.serial,
                .signingKeyId = std::move(*keyId),
                .notBefore = notBefore,
                .notAfter = notAfter,
                .rootCertPem = std::move(*certPem),
                .privateKeyPem = std::move(*keyPem),
                .intermediateCertPems = {}};
}

Result<std::string> crossSign(const RootCa& oldRoot, const RootCa& newRoot, TimePoint now) {
  if (now == TimePoint{}) {
    return makeError(ErrorCode::kInvalidArgument, "cross-sign: the current time is not set");
  }
  auto signer = detail::loadSigner(oldRoot.rootCertPem, oldRoot.privateKeyPem, "old root");
  if (!signer) return makeError(signer.error());
  auto newCert = detail::readCertificate(newRoot.rootCertPem, "new root certificate");
  if (!newCert) return makeError(newCert.error());
  if (X509_check_ca(newCert->get()) == 0) {
    return makeError(ErrorCode::kInvalidArgument, "new root certificate is not a CA certificate");
  }
  auto oldNotAfter = detail::fromAsn1Time(X509_get0_notAfter(signer->cert.get()));
  auto newNotAfter = detail::fromAsn1Time(X509_get0_notAfter(newCert->get()));
  if (!oldNotAfter) return makeError(oldNotAfter.error());
  if (!newNotAfter) return makeError(newNotAfter.error());
  TimePoint notBefore = detail::fromUnixSeconds(detail::toUnixSeconds(now - kLeafBackdate));
  TimePoint notAfter = std::min(*oldNotAfter, *newNotAfter);
  if (notAfter <= notBefore) {
    return makeError(ErrorCode::kInvalidArgument, "cannot cross-sign: a root expires at " +
                                                      detail::formatTime(notAfter) + ", before " +
                                                      detail::formatTime(notBefore));
  }
  auto serial = randomSerial();
  if (!serial) return makeError(serial.error());
  auto cert = detail::newCertificate(
      X509_get_subject_name(newCert->get()), X509_get_subject_name(signer->cert.get()),
      X509_get0_pubkey(newCert->get()), *serial, notBefore, notAfter);
  if (!cert) return makeError(cert.error());
  if (auto ok = copyExtensionsButAkid(newCert->get(), cert->get()); !ok) {
    return makeError(ok.error());
  }
  if (auto ok = addExtension(cert->get(), signer->cert.get(), NID_authority_key_identifier,
                             "keyid:always");
      !ok) {
    return makeError(ok.error());
  }
  if (auto ok = detail::signCertificate(cert->get(), signer->key.get()); !ok) {
    return makeError(ok.error());
  }
  return detail::certificatePem(cert->get());
}

Result<TimePoint> certNotAfter(std::string_view certPem) {
  auto cert = detail::readCertificate(certPem, "certificate");
  if (!cert) return makeError(cert.error());
  return detail::fromAsn1Time(X509_get0_notAfter(cert->get()));
}

}  // namespace taskmesh::connect
