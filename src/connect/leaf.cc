// Leaf certificates: CSRs for a service identity and signing them with a Connect CA (ca.h).

#include <openssl/err.h>

#include "connect/ca.h"
#include "connect/x509_util.h"

namespace taskmesh::connect {
namespace {

using detail::addExtension;

struct CheckedCsr {
  X509ReqPtr req;
  ServiceId id;
};

// The URI SAN of a CSR, which must carry exactly one.
Result<std::string> csrUri(X509_REQ* req) {
  X509ExtensionStackPtr exts(X509_REQ_get_extensions(req));
  GeneralNamesPtr names;
  if (exts) {
    names.reset(static_cast<GENERAL_NAMES*>(
        X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
  }
  ERR_clear_error();
  return detail::singleUriSan(names.get(), "CSR");
}

// Parses and checks a CSR from a client (untrusted input).
Result<CheckedCsr> checkCsr(std::string_view pem, const std::string& trustDomain) {
  if (pem.size() > kMaxCsrPemBytes) {
    return makeError(ErrorCode::kTooLarge, "CSR PEM is " + std::to_string(pem.size()) +
                                               " bytes; the limit is " +
                                               std::to_string(kMaxCsrPemBytes));
  }
  auto req = detail::readRequest(pem, "CSR");
  if (!req) return makeError(req.error());
  EVP_PKEY* key = X509_REQ_get0_pubkey(req->get());
  if (key == nullptr) {
    return makeError(
        detail::opensslFailure(ErrorCode::kInvalidArgument, "CSR public key does not parse"));
  }
  if (X509_REQ_verify(req->get(), key) != 1) {
    ERR_clear_error();
    return makeError(ErrorCode::kInvalidArgument, "CSR signature is invalid");
  }
  if (!detail::isP256(key)) {
    return makeError(ErrorCode::kInvalidArgument, "CSR key is not an EC P-256 key");
  }
  auto uri = csrUri(req->get());
  if (!uri) return makeError(uri.error());
  auto id = parseServiceUri(*uri);
  if (!id) return makeError(ErrorCode::kInvalidArgument, "CSR " + id.error().message);
  if (id->trustDomain != trustDomain) {
    return makeError(ErrorCode::kInvalidArgument, "CSR SPIFFE ID trust domain " + id->trustDomain +
                                                      " is not this cluster's " + trustDomain);
  }
  return CheckedCsr{std::move(*req), std::move(*id)};
}

Result<void> checkSignOptions(const SignOptions& opts) {
  if (auto ok = validateTrustDomain(opts.trustDomain); !ok) {
    return makeError(ErrorCode::kInvalidArgument, "leaf: " + ok.error().message);
  }
  if (opts.serial == 0) {
    return makeError(ErrorCode::kInvalidArgument, "leaf: serial must be non-zero");
  }
  return detail::checkNowAndTtl(opts.now, opts.ttl, "leaf");
}

Result<void> addLeafExtensions(X509* leaf, X509* issuer, const std::string& uri) {
  struct Ext {
    int nid;
    const char* value;
  };
  static constexpr Ext kBefore[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyEncipherment,dataEncipherment,keyAgreement"},
      {NID_ext_key_usage, "clientAuth,serverAuth"},
  };
  for (const Ext& ext : kBefore) {
    if (auto ok = addExtension(leaf, issuer, ext.nid, ext.value); !ok) return ok;
  }
  auto san = detail::uriSanExtension(uri);
  if (!san) return makeError(san.error());
  if (X509_add_ext(leaf, san->get(), -1) != 1) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot add the leaf's SAN"));
  }
  if (auto ok = addExtension(leaf, issuer, NID_subject_key_identifier, "hash"); !ok) return ok;
  return addExtension(leaf, issuer, NID_authority_key_identifier, "keyid:always");
}

}  // namespace

Result<LeafRequest> makeLeafRequest(const ServiceId& id) {
  std::string uri = id.uri();
  if (auto parsed = parseServiceUri(uri); !parsed) {
    return makeError(ErrorCode::kInvalidArgument, "leaf request: " + parsed.error().message);
  }
  auto key = detail::generateP256Key();
  if (!key) return makeError(key.error());
  auto name = detail::commonNameOnly(id.service);
  if (!name) return makeError(name.error());
  auto san = detail::uriSanExtension(uri);
  if (!san) return makeError(san.error());
  X509ReqPtr req(X509_REQ_new());
  X509ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  if (!req || !exts || sk_X509_EXTENSION_push(exts.get(), san->get()) <= 0) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot start a CSR"));
  }
  san->release();  // owned by `exts` now
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name->get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot build the CSR"));
  }
  auto keyPem = detail::privateKeyPem(key->get());
  if (!keyPem) return makeError(keyPem.error());
  auto csrPem = detail::requestPem(req.get());
  if (!csrPem) return makeError(csrPem.error());
  return LeafRequest{std::move(*keyPem), std::move(*csrPem)};
}

Result<SignedLeaf> signLeaf(const RootCa& signer, std::string_view csrPem,
                            const SignOptions& opts) {
  if (auto ok = checkSignOptions(opts); !ok) return makeError(ok.error());
  auto csr = checkCsr(csrPem, opts.trustDomain);
  if (!csr) return makeError(csr.error());
  auto ca = detail::loadSigner(signer.rootCertPem, signer.privateKeyPem, "signing CA");
  if (!ca) return makeError(ca.error());
  auto caNotAfter = detail::fromAsn1Time(X509_get0_notAfter(ca->cert.get()));
  if (!caNotAfter) return makeError(caNotAfter.error());
  if (opts.now >= *caNotAfter) {
    return makeError(ErrorCode::kInvalidArgument,
                     "signing CA expired at " + detail::formatTime(*caNotAfter));
  }
  auto name = detail::commonNameOnly(csr->id.service);
  if (!name) return makeError(name.error());
  TimePoint notBefore = detail::fromUnixSeconds(detail::toUnixSeconds(opts.now - kLeafBackdate));
  TimePoint notAfter = notBefore + opts.ttl;
  auto leaf = detail::newCertificate(name->get(), X509_get_subject_name(ca->cert.get()),
                                     X509_REQ_get0_pubkey(csr->req.get()), opts.serial, notBefore,
                                     notAfter);
  if (!leaf) return makeError(leaf.error());
  if (auto ok = addLeafExtensions(leaf->get(), ca->cert.get(), csr->id.uri()); !ok) {
    return makeError(ok.error());
  }
  if (auto ok = detail::signCertificate(leaf->get(), ca->key.get()); !ok) {
    return makeError(ok.error());
  }
  auto pem = detail::certificatePem(leaf->get());
  if (!pem) return makeError(pem.error());
  for (const std::string& intermediate : signer.intermediateCertPems) {
    *pem += intermediate;
    if (!intermediate.empty() && intermediate.back() != '\n') *pem += '\n';
  }
  return SignedLeaf{.certPem = std::move(*pem),
                    .serialHex = serialHex(opts.serial),
                    .service = std::move(csr->id),
                    .validAfter = notBefore,
                    .validBefore = notAfter};
}

}  // namespace taskmesh::connect
