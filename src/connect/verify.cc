#include "connect/verify.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "connect/x509_util.h"

namespace taskmesh::connect {
namespace {

bool isUntrustedIssuer(int x509Error) {
  switch (x509Error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return true;
    default:
      return false;
  }
}

// " (valid <notBefore> to <notAfter>)" for `cert`, or "" if its times do not parse.
std::string validitySuffix(X509* cert) {
  if (cert == nullptr) return "";
  auto notBefore = detail::fromAsn1Time(X509_get0_notBefore(cert));
  auto notAfter = detail::fromAsn1Time(X509_get0_notAfter(cert));
  if (!notBefore || !notAfter) return "";
  return " (valid " + detail::formatTime(*notBefore) + " to " + detail::formatTime(*notAfter) + ")";
}

Result<void> checkLeafUsage(X509* leaf) {
  if (X509_check_ca(leaf) != 0) {
    return makeError(ErrorCode::kInvalidArgument, "certificate is a CA certificate, not a leaf");
  }
  uint32_t flags = X509_get_extension_flags(leaf);
  uint32_t usage = X509_get_extended_key_usage(leaf);
  constexpr uint32_t kNeeded = XKU_SSL_CLIENT | XKU_SSL_SERVER;
  if ((flags & EXFLAG_XKUSAGE) == 0 || (usage & kNeeded) != kNeeded) {
    return makeError(ErrorCode::kInvalidArgument,
                     "certificate extended key usage lacks clientAuth and serverAuth");
  }
  return {};
}

}  // namespace

Result<std::vector<X509Ptr>> parseCertificates(std::string_view pem) {
  if (pem.size() > kMaxBundleBytes) {
    return makeError(ErrorCode::kTooLarge, "PEM bundle is " + std::to_string(pem.size()) +
                                               " bytes; the limit is " +
                                               std::to_string(kMaxBundleBytes));
  }
  auto bio = detail::readBio(pem);
  if (!bio) return makeError(bio.error());
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
    if (!cert) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the bundle
        break;
      }
      return makeError(detail::opensslFailure(
          ErrorCode::kInvalidArgument,
          "certificate " + std::to_string(certs.size() + 1) + " of the PEM bundle does not parse"));
    }
    if (certs.size() == kMaxBundleCerts) {
      return makeError(ErrorCode::kTooLarge, "PEM bundle has more than " +
                                                 std::to_string(kMaxBundleCerts) + " certificates");
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "PEM bundle holds no certificate");
  }
  return certs;
}

Result<ServiceId> serviceIdOf(X509* cert) {
  if (cert == nullptr) return makeError(ErrorCode::kInvalidArgument, "no certificate");
  int critical = 0;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
  ERR_clear_error();
  if (!names && critical == -2) {
    return makeError(ErrorCode::kInvalidArgument,
                     "certificate has several subjectAltName extensions");
  }
  auto uri = detail::singleUriSan(names.get(), "certificate");
  if (!uri) return makeError(uri.error());
  auto id = parseServiceUri(*uri);
  if (!id) {
    return makeError(ErrorCode::kInvalidArgument,
                     "certificate URI SAN is not a service SPIFFE ID: " + id.error().message);
  }
  return id;
}

Result<X509StorePtr> makeTrustStore(const std::vector<X509Ptr>& roots) {
  if (roots.empty()) return makeError(ErrorCode::kInvalidArgument, "no trusted roots");
  X509StorePtr store(X509_STORE_new());
  if (!store) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot allocate a store"));
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    if (X509_check_ca(roots[i].get()) == 0) {
      return makeError(ErrorCode::kInvalidArgument,
                       "trusted root " + std::to_string(i + 1) + " is not a CA certificate");
    }
    if (X509_STORE_add_cert(store.get(), roots[i].get()) != 1) {
      return makeError(detail::opensslFailure(ErrorCode::kInternal,
                                              "cannot add trusted root " + std::to_string(i + 1)));
    }
  }
  return store;
}

std::string verifyErrorMessage(int x509Error, int depth) {
  std::string subject =
      depth <= 0 ? "certificate" : "CA certificate at chain depth " + std::to_string(depth);
  std::string reason = X509_verify_cert_error_string(x509Error);
  switch (x509Error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return subject + " has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return subject + " is not yet valid";
    default:
      break;
  }
  if (isUntrustedIssuer(x509Error)) {
    return "certificate is not signed by a trusted root (" + reason + " at depth " +
           std::to_string(depth) + ")";
  }
  return "certificate chain does not verify (" + reason + " at depth " + std::to_string(depth) +
         ")";
}

Result<void> verifyChain(X509_STORE* store, X509* leaf, const std::vector<X509Ptr>& intermediates,
                         TimePoint now) {
  X509StackPtr untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!untrusted || !ctx) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot allocate a verifier"));
  }
  for (const X509Ptr& cert : intermediates) {
    if (sk_X509_push(untrusted.get(), cert.get()) <= 0) {
      return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot list intermediates"));
    }
    X509_up_ref(cert.get());  // the stack's reference, released by X509StackDeleter
  }
  if (X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted.get()) != 1) {
    return makeError(detail::opensslFailure(ErrorCode::kInternal, "cannot start verification"));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(detail::toUnixSeconds(now)));
  if (X509_verify_cert(ctx.get()) == 1) return {};
  int error = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  ERR_clear_error();
  std::string message = verifyErrorMessage(error, depth);
  if (error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID) {
    message += validitySuffix(X509_STORE_CTX_get_current_cert(ctx.get())) + " at " +
               detail::formatTime(now);
  }
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

Result<ServiceId> checkLeafIdentity(X509* leaf, const VerifyOptions& opts) {
  if (auto ok = checkLeafUsage(leaf); !ok) return makeError(ok.error());
  auto id = serviceIdOf(leaf);
  if (!id) return id;
  if (id->trustDomain != opts.trustDomain) {
    return makeError(ErrorCode::kInvalidArgument, "certificate SPIFFE ID trust domain " +
                                                      id->trustDomain + " does not match " +
                                                      opts.trustDomain);
  }
  if (opts.expectedService && id->service != *opts.expectedService) {
    return makeError(
        ErrorCode::kInvalidArgument,
        "certificate service " + id->service + " is not the expected " + *opts.expectedService);
  }
  return id;
}

Result<ServiceId> verifyLeaf(std::string_view chainPem, std::string_view rootsPem,
                             const VerifyOptions& opts) {
  if (auto ok = validateTrustDomain(opts.trustDomain); !ok) {
    return makeError(ErrorCode::kInvalidArgument, "verify: " + ok.error().message);
  }
  if (opts.now == TimePoint{}) {
    return makeError(ErrorCode::kInvalidArgument, "verify: the current time is not set");
  }
  auto chain = parseCertificates(chainPem);
  if (!chain) {
    return makeError(chain.error().code, "certificate chain: " + chain.error().message);
  }
  auto roots = parseCertificates(rootsPem);
  if (!roots) return makeError(roots.error().code, "trusted roots: " + roots.error().message);
  auto store = makeTrustStore(*roots);
  if (!store) return makeError(store.error());
  X509Ptr leaf = std::move(chain->front());
  chain->erase(chain->begin());
  if (auto ok = verifyChain(store->get(), leaf.get(), *chain, opts.now); !ok) {
    return makeError(ok.error());
  }
  return checkLeafIdentity(leaf.get(), opts);
}

}  // namespace taskmesh::connect
