#pragma once
// The proxy snapshot: everything one `taskmesh proxy` needs, as the agent serves it on
// GET /v1/agent/connect/proxy/:proxy-id (blocking: ?index=N&wait=D, X-Consul-Index).
//
// Contract between the agent (producer, src/agent) and the proxy (consumer, src/proxy). The
// JSON names are Consul-style PascalCase. Decoding is strict: the proxy trusts nothing it did
// not validate, so a snapshot that decodes is internally consistent (ports 1..65535, unique
// upstream bind ports, PEMs present).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "connect/intentions.h"

namespace taskmesh::connect {

// One healthy instance of an upstream's sidecar proxy: where to dial with mTLS.
struct UpstreamEndpoint {
  std::string address;    // IPv4/IPv6 literal or host name
  int port = 0;           // its proxy's public listener
  std::string node;       // catalog node, for /clusters and logs
  std::string serviceId;  // the sidecar's service ID
};

struct UpstreamSnapshot {
  std::string destinationName;  // the upstream service (not its sidecar)
  std::string datacenter;       // "" = the local datacenter
  std::string localBindAddress = "127.0.0.1";
  int localBindPort = 0;
  int connectTimeoutMs = 5000;
  std::string spiffeId;  // the SPIFFE ID the upstream's server certificate must carry
  std::vector<UpstreamEndpoint> endpoints;  // healthy only; may be empty
};

struct ProxySnapshot {
  uint64_t index = 0;       // X-Consul-Index it was served with; changes whenever content does
  std::string proxyId;      // "web-1-sidecar-proxy"
  std::string service;      // the destination service this proxy fronts ("web")
  std::string serviceId;    // its instance ID
  std::string datacenter;   // "dc1"
  std::string trustDomain;  // "<cluster-uuid>.consul"

  std::string publicBindAddress = "0.0.0.0";
  int publicPort = 20000;
  std::string localAppAddress = "127.0.0.1";
  int localAppPort = 0;
  int localConnectTimeoutMs = 5000;

  std::vector<UpstreamSnapshot> upstreams;

  std::string leafCertPem;            // leaf first, then any intermediates (cross-signed roots)
  std::string leafKeyPem;             // never logged
  std::string leafValidBefore;        // RFC 3339, for /config_dump
  std::vector<std::string> rootPems;  // every trusted root (active and rotated-out)

  bool defaultAllow = true;  // when no intention matches
  std::vector<Intention>
      intentions;  // those whose destination matches `service`, in evaluation order
};

nlohmann::json toJson(const ProxySnapshot& snapshot);

// Strict decode; errors (kInvalidArgument) name the field path, e.g. "Upstreams[1].LocalBindPort:
// expected an integer 1..65535".
Result<ProxySnapshot> proxySnapshotFromJson(const nlohmann::json& j);

// The JSON form of one intention as Consul serves it (SourceName, DestinationName, Action,
// Precedence, CreateIndex, ...), shared by the server API and the snapshot.
nlohmann::json intentionToJson(const Intention& intention);
// Its strict inverse (the agent reads the servers' /v1/connect/intentions/match with it);
// errors name the field under `path`.
Result<Intention> intentionFromJson(const nlohmann::json& j, const std::string& path);

}  // namespace taskmesh::connect
