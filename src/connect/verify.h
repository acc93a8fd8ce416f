#pragma once
// Verification of Connect leaf certificates: the chain to a trusted root, validity at a given
// time, usage, and the SPIFFE identity. verifyLeaf() is the whole check (the agent's authorize
// endpoint, tests); the proxy runs the same checks inside the TLS handshake with OpenSSL's
// X509_STORE, so the building blocks are exposed too. Pure functions, safe from any thread.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "connect/openssl_ptr.h"
#include "connect/spiffe.h"

namespace taskmesh::connect {

using TimePoint = std::chrono::system_clock::time_point;

inline constexpr size_t kMaxBundleCerts = 64;
inline constexpr size_t kMaxBundleBytes = 1024 * 1024;

// Every certificate of a PEM bundle, in order (other PEM blocks are skipped). Errors: over
// kMaxBundleBytes or kMaxBundleCerts (kTooLarge), no certificate, or a certificate block that
// does not parse.
Result<std::vector<X509Ptr>> parseCertificates(std::string_view pem);

// The single URI SAN of `cert` parsed as a service SPIFFE ID. Errors: "no SPIFFE URI SAN",
// several URI SANs, or a URI that is not a service ID (such as a CA's "spiffe://<td>").
Result<ServiceId> serviceIdOf(X509* cert);

struct VerifyOptions {
  std::string trustDomain;                     // the leaf's SPIFFE ID must be in it
  std::optional<std::string> expectedService;  // when set, the leaf's service must equal it
  TimePoint now;                               // the verification time (required)
};

// A trust store holding `roots` (each must be a CA certificate). The store takes its own
// references; `roots` stays owned by the caller.
Result<X509StorePtr> makeTrustStore(const std::vector<X509Ptr>& roots);

// Verifies that `leaf` chains through `intermediates` (untrusted, any order) to a root in
// `store`, every certificate valid at `now`. The error message comes from verifyErrorMessage().
Result<void> verifyChain(X509_STORE* store, X509* leaf, const std::vector<X509Ptr>& intermediates,
                         TimePoint now);

// Our message for an X509_V_ERR_* code at chain depth `depth` (0 = the leaf): "certificate has
// expired", "certificate is not yet valid", "certificate is not signed by a trusted root (...)",
// or OpenSSL's text for the rest. For the proxy's verify callback.
std::string verifyErrorMessage(int x509Error, int depth);

// The checks on the leaf itself after its chain verified: it is not a CA, its ExtKeyUsage has
// both clientAuth and serverAuth, its SPIFFE ID is a service in opts.trustDomain ("trust domain X
// does not match Y") and, if given, the expected service ("service X is not the expected Y").
Result<ServiceId> checkLeafIdentity(X509* leaf, const VerifyOptions& opts);

// chainPem: the leaf first, then intermediates; rootsPem: the trusted roots. verifyChain() then
// checkLeafIdentity().
Result<ServiceId> verifyLeaf(std::string_view chainPem, std::string_view rootsPem,
                             const VerifyOptions& opts);

}  // namespace taskmesh::connect
