#pragma once
// What `taskmesh proxy` is told before it has any snapshot: the command-line flags, the
// bootstrap file mesh-init writes (-c), and the environment, resolved into one ProxyConfig.
// Pure: no I/O besides reading the bootstrap file; safe from any thread.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh::proxy {

inline constexpr const char* kDefaultAgentAddr = "127.0.0.1:8500";
inline constexpr const char* kDefaultAdminAddr = "127.0.0.1:19000";
inline constexpr int kMaxConcurrency = 64;

// The flags as given; an empty string means "not given" (so that a bootstrap file value or a
// default can apply).
struct ProxyOptions {
  std::string bootstrapFile;         // -c
  std::string proxyId;               // -proxy-id
  std::string httpAddr;              // -http-addr: HOST:PORT or http://HOST:PORT of the local agent
  std::string token;                 // -token
  std::string adminAddr;             // -admin-addr: IP:PORT
  int concurrency = 1;               // --concurrency: worker threads, 1..kMaxConcurrency
  bool tlsResumption = true;         // -tls-resumption: TLS 1.3 session tickets between sidecars
  std::string drainTimeout = "15s";  // -drain-timeout (Go duration)
  std::string logLevel = "info";     // -log-level
};

// The environment the proxy reads, captured once so that tests can pass their own.
struct ProxyEnvironment {
  std::string consulHttpAddr;   // CONSUL_HTTP_ADDR
  std::string consulHttpToken;  // CONSUL_HTTP_TOKEN; never logged

  static ProxyEnvironment fromProcess();
};

// Everything the proxy needs to start. Invariants after resolveProxyConfig: proxyId is not
// empty, agentHostPort is "host:port" with a valid port, adminAddr is an IP literal and a port,
// 1 <= concurrency <= kMaxConcurrency, drainTimeout > 0.
struct ProxyConfig {
  std::string proxyId;
  std::string agentHostPort;  // "127.0.0.1:8500" ("[::1]:8500" for IPv6)
  std::string token;          // "" = none; never logged
  std::string adminAddr = kDefaultAdminAddr;
  int concurrency = 1;
  bool tlsResumption = true;  // session_tickets.h
  std::chrono::milliseconds drainTimeout{15000};

  // Tunables that are not flags (tests shorten them).
  std::chrono::milliseconds watchWait{std::chrono::minutes(5)};  // ?wait= of the long poll
  std::chrono::milliseconds retryInitial{100};                   // backoff after a failed poll
  std::chrono::milliseconds retryMax{10000};
  std::chrono::milliseconds handshakeTimeout{10000};  // TLS handshake, both directions
};

// Resolves flags, bootstrap file and environment. Precedence: an explicit flag, then the
// bootstrap file, then the environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN), then the default.
// Errors (kInvalidArgument, or kIo for an unreadable file) name the flag or the file and field:
//   "bootstrap file /b.json: proxyId: expected a non-empty string".
Result<ProxyConfig> resolveProxyConfig(const ProxyOptions& options, const ProxyEnvironment& env);

// "host:port" or "http://host:port" (a trailing "/" allowed) → "host:port". `source` names the
// input in errors ("-http-addr", "CONSUL_HTTP_ADDR").
Result<std::string> parseAgentAddress(std::string_view address, std::string_view source);

}  // namespace taskmesh::proxy
