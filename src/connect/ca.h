#pragma once
// The built-in Connect CA: root certificates, cross-signing for root rotation, leaf CSRs and
// leaf signing, as Consul's built-in provider does them. All keys are ECDSA P-256 and all
// signatures ecdsa-with-SHA256. Pure functions of their arguments (plus fresh randomness for keys
// and cross-signed serials): no clock, no global state, safe from any thread.
//
// Certificates, keys and CSRs travel as PEM text, the form Consul's API and the state store hold.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "connect/spiffe.h"

namespace taskmesh::connect {

using TimePoint = std::chrono::system_clock::time_point;

inline constexpr std::chrono::seconds kDefaultRootTtl = std::chrono::hours(87600);  // 10 years
inline constexpr std::chrono::seconds kDefaultLeafTtl = std::chrono::hours(72);
// Leaves are back-dated by this much to tolerate clock skew between agents.
inline constexpr std::chrono::seconds kLeafBackdate = std::chrono::minutes(1);
inline constexpr size_t kMaxCsrPemBytes = 16 * 1024;

// Consul's hex form of a serial number: the big-endian bytes without leading zero bytes, as
// lower-case hex joined by ':' (8 → "08", 0x1234 → "12:34"; 0 → "00").
std::string serialHex(uint64_t serial);

struct RootOptions {
  std::string trustDomain;  // "<cluster-uuid>.consul"; validated
  std::string commonName;   // empty → "Consul CA <serial>"
  uint64_t serial = 1;      // non-zero
  TimePoint now;            // required; NotBefore = now (whole seconds)
  std::chrono::seconds ttl = kDefaultRootTtl;
};

struct RootCa {
  std::string id;    // colon hex of SHA-1 over the root certificate's DER
  std::string name;  // the certificate's common name
  uint64_t serialNumber = 0;
  std::string signingKeyId;  // colon hex of the subject key identifier
  TimePoint notBefore, notAfter;
  std::string rootCertPem;
  std::string privateKeyPem;  // SEC 1 "EC PRIVATE KEY"
  // Certificates shipped after every leaf this CA signs (a cross-signed cert during rotation).
  std::vector<std::string> intermediateCertPems;
};

// A new P-256 key and a self-signed root for it: CA:TRUE (critical), KeyUsage DigitalSignature+
// CertSign+CRLSign (critical), SAN URI spiffe://<trustDomain>, subject and authority key
// identifiers. No NameConstraints: OpenSSL would check a dotted leaf CN ("web.v2") against them.
Result<RootCa> generateRoot(const RootOptions& opts);

// A certificate with newRoot's subject, public key and extensions, issued and signed by oldRoot
// (AuthorityKeyIdentifier = oldRoot's key id, a random serial), valid from now − 1 minute until
// the earlier of the two roots' NotAfter. Leaves signed by newRoot and shipped with this cert as
// an intermediate verify against a trust store holding only oldRoot. PEM text.
Result<std::string> crossSign(const RootCa& oldRoot, const RootCa& newRoot, TimePoint now);

struct LeafRequest {
  std::string privateKeyPem;  // SEC 1 "EC PRIVATE KEY"
  std::string csrPem;
};

// A fresh P-256 key and a CSR signed with it: CN=<service>, SAN URI=id.uri(). The id must be a
// valid service ID (parseServiceUri(id.uri()) succeeds); the error says why not.
Result<LeafRequest> makeLeafRequest(const ServiceId& id);

struct SignOptions {
  std::string trustDomain;  // this cluster's; the CSR's SPIFFE ID must be in it
  uint64_t serial = 0;      // non-zero
  TimePoint now;            // required
  std::chrono::seconds ttl = kDefaultLeafTtl;
};

struct SignedLeaf {
  std::string certPem;  // the leaf, then signer.intermediateCertPems in order
  std::string serialHex;
  ServiceId service;
  TimePoint validAfter, validBefore;  // NotBefore = now − 1 minute, NotAfter = NotBefore + ttl
};

// Signs a leaf for the service named by the CSR. Checks, each with its own message: the PEM is at
// most kMaxCsrPemBytes, parses, its signature verifies ("CSR signature is invalid"), its key is EC
// P-256, it has exactly one URI SAN, which parses as a service SPIFFE ID whose trust domain is
// opts.trustDomain ("CSR SPIFFE ID trust domain X is not this cluster's Y"). The leaf: CN=service,
// issuer = the signer's subject, KeyUsage DigitalSignature+KeyEncipherment+DataEncipherment+
// KeyAgreement (critical), ExtKeyUsage clientAuth+serverAuth, CA:FALSE (critical), SAN URI = the
// SPIFFE ID, subject and authority key identifiers. Non-URI SANs of the CSR are not copied.
Result<SignedLeaf> signLeaf(const RootCa& signer, std::string_view csrPem, const SignOptions& opts);

// NotAfter of the first certificate in `certPem`.
Result<TimePoint> certNotAfter(std::string_view certPem);

}  // namespace taskmesh::connect
