#pragma once
// SPIFFE identities as Consul Connect uses them. A cluster's trust domain is
// "<cluster-uuid>.consul"; a service's identity is
// "spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<service>" and the signing CA's
// is "spiffe://<trust-domain>". Pure functions, safe from any thread.

#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh::connect {

// SPIFFE IDs are at most 2048 bytes (SPIFFE ID spec §2.3).
inline constexpr size_t kMaxSpiffeIdBytes = 2048;

struct ServiceId {
  std::string trustDomain;  // lower case, e.g. "11111111-2222-3333-4444-555555555555.consul"
  std::string ns = "default";
  std::string datacenter;
  std::string service;

  // "spiffe://<trustDomain>/ns/<ns>/dc/<datacenter>/svc/<service>"; no validation (a value
  // from parseServiceUri() round-trips exactly).
  std::string uri() const;

  bool operator==(const ServiceId&) const = default;
};

// "<clusterId>.consul", lower-cased.
std::string trustDomainFor(std::string_view clusterId);

// "spiffe://<trustDomain>".
std::string signingUri(std::string_view trustDomain);

// A trust domain is a non-empty DNS-like name: lower-case letters, digits, '.', '-', '_', at most
// 255 bytes. The error names what is wrong.
Result<void> validateTrustDomain(std::string_view trustDomain);

// Strict parse of a service SPIFFE ID: scheme "spiffe", a valid trust domain as host (no port,
// user info, query or fragment), path exactly /ns/<ns>/dc/<dc>/svc/<service> with every segment
// non-empty, not "." or "..", and made of [A-Za-z0-9._-]. The error names the problem.
Result<ServiceId> parseServiceUri(std::string_view uri);

}  // namespace taskmesh::connect
