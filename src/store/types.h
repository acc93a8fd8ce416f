#pragma once
// Rows of the catalog and KV tables. Field names follow Consul's API objects so that the
// mapping in src/api is one-to-one. Every row carries CreateIndex/ModifyIndex, which are Raft
// log indexes assigned by StateStore::apply.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace taskmesh::store {

using Json = nlohmann::json;
using StringMap = std::map<std::string, std::string>;

inline constexpr const char* kPassing = "passing";
inline constexpr const char* kWarning = "warning";
inline constexpr const char* kCritical = "critical";

struct Node {
  std::string id;  // optional UUID
  std::string name;
  std::string address;
  std::string datacenter;
  StringMap taggedAddresses;
  StringMap meta;
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
  bool operator==(const Node&) const = default;
};

struct ServiceAddress {
  std::string address;
  int port = 0;
  bool operator==(const ServiceAddress&) const = default;
};

struct Weights {
  int passing = 1;
  int warning = 1;
  bool operator==(const Weights&) const = default;
};

struct Service {
  std::string id;
  std::string service;  // the service name
  std::string kind;     // "" or "connect-proxy", ...
  std::vector<std::string> tags;
  std::string address;
  int port = 0;
  StringMap meta;
  std::map<std::string, ServiceAddress> taggedAddresses;
  Weights weights;
  bool enableTagOverride = false;
  Json proxy;    // Consul's Proxy object, null when absent
  Json connect;  // Consul's Connect object, null when absent
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
  bool operator==(const Service&) const = default;
};

struct Check {
  std::string node;
  std::string checkId;
  std::string name;
  std::string status = kCritical;
  std::string notes;
  std::string output;
  std::string serviceId;    // empty for a node-level check
  std::string serviceName;  // filled from the service row at registration
  std::string type;
  std::string interval;
  std::string timeout;
  Json definition;  // Consul's HealthCheckDefinition, null when absent
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
  bool operator==(const Check&) const = default;
};

struct KVEntry {
  std::string key;
  std::string value;  // raw bytes
  uint64_t flags = 0;
  uint64_t lockIndex = 0;
  std::string session;
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
};

// One Connect CA root (reference/consul-http-api.md §13.1). The private key is replicated so
// that whichever server leads can sign; it never leaves the servers' API except through the
// leaves it signs. Times are Unix seconds, so apply() never reads a clock.
struct CaRoot {
  std::string id;    // colon hex SHA-1 of the certificate
  std::string name;  // "Consul CA Root Cert"
  uint64_t serialNumber = 0;
  std::string signingKeyId;  // colon hex subject key identifier
  int64_t notBefore = 0;
  int64_t notAfter = 0;
  std::string rootCertPem;
  std::string privateKeyPem;
  std::vector<std::string> intermediateCertPems;  // the cross-signed form of this root, if any
  bool active = false;
  int64_t rotatedOutAt = 0;  // when it stopped being active (0 while active)
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
  bool operator==(const CaRoot&) const = default;
};

// GET/PUT /v1/connect/ca/configuration, provider "consul". Durations in Consul's form ("72h").
struct CaConfig {
  std::string provider = "consul";
  std::string leafCertTtl = "72h";
  std::string rotationPeriod = "2160h";
  std::string intermediateCertTtl = "8760h";
  std::string rootCertTtl = "87600h";
  uint64_t createIndex = 0;
  uint64_t modifyIndex = 0;
  bool operator==(const CaConfig&) const = default;
};

// Returns true when a and b are equal apart from their Raft indexes.
template <typename T>
bool sameContent(const T& a, T b) {
  b.createIndex = a.createIndex;
  b.modifyIndex = a.modifyIndex;
  return a == b;
}

}  // namespace taskmesh::store
