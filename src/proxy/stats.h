#pragma once
// The proxy's counters and their Prometheus text form (/stats).
//
// Data-path counters are per listener and per worker: each worker writes only its own
// cache-line-aligned slot (a relaxed load and store, no read-modify-write), and /stats sums the
// slots with relaxed loads. ListenerStats objects are created by the main thread and live as
// long as the Stats that made them, so workers may keep raw pointers to them.
//
// Threads: listener() and prometheus() on the main thread; add() from the one worker that owns
// the slot; every read from any thread.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace taskmesh::proxy {

enum class Counter : uint8_t {
  kAccepted,  // downstream connections accepted
  kActive,    // gauge: downstream connections open
  kBytesIn,   // bytes received from downstream
  kBytesOut,  // bytes sent to downstream
  kDraining,  // connections refused because the proxy is draining or unconfigured
  // TLS handshake failures, by reason (public: the downstream's; upstream: the endpoint's).
  kTlsTimeout,
  kTlsProtocol,      // not TLS, malformed, version or cipher mismatch, reset mid-handshake
  kTlsNoPeerCert,    // the client sent no certificate
  kTlsUntrusted,     // the chain does not verify against the roots (or wrong key usage)
  kTlsExpired,       // a certificate in the chain is expired or not yet valid
  kTlsTrustDomain,   // the leaf's SPIFFE ID is missing or in another trust domain
  kTlsSpiffeId,      // the server's SPIFFE ID is not the upstream's
  kTlsResumed,       // handshakes that resumed a session (no certificates exchanged)
  kDeniedIntention,  // a deny intention matched
  kDeniedDefault,    // no intention matched and the default is deny
  kConnectFailures,  // failed attempts to reach the local app / an upstream endpoint
  kUpstreamFailed,   // downstream connections closed because no attempt succeeded
  kNoEndpoints,      // downstream connections closed because the upstream had no endpoints
  kEjections,        // endpoints ejected by passive health checking
  kCount
};

// One worker's counters for one listener.
struct alignas(64) CounterSlot {
  std::atomic<uint64_t> value[static_cast<size_t>(Counter::kCount)] = {};

  // Only the owning worker writes its slot: no read-modify-write needed.
  void add(Counter c, uint64_t n = 1) {
    auto& v = value[static_cast<size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(Counter c, uint64_t n = 1) { add(c, ~n + 1); }
};

class ListenerStats {
 public:
  ListenerStats(std::string name, int workers);
  const std::string& name() const { return name_; }
  CounterSlot& slot(int worker) { return slots_[worker]; }
  // The sum over workers (a gauge's slots may be negative on their own).
  uint64_t sum(Counter c) const;

 private:
  std::string name_;
  int workers_;
  std::unique_ptr<CounterSlot[]> slots_;
};

class Stats {
 public:
  explicit Stats(int workers) : workers_(workers) {}

  // The stats of the listener named `name` ("public", "upstream:api"), created on first use.
  // Main thread only. The pointer stays valid for the life of this Stats.
  ListenerStats* listener(const std::string& name);

  // Process-wide values, written by the main thread.
  std::atomic<uint64_t> configUpdates{0};  // snapshots applied
  std::atomic<uint64_t> configErrors{0};   // failed polls, bad snapshots, failed binds
  std::atomic<uint64_t> snapshotIndex{0};
  std::atomic<bool> ready{false};

  // Active downstream connections over every listener.
  uint64_t activeConnections() const;

  // Prometheus text exposition format 0.0.4. Main thread.
  std::string prometheus() const;

 private:
  int workers_;
  std::deque<ListenerStats> listeners_;  // stable addresses
};

// The counter's name in logs: the reason label for reasons ("expired"), else the metric name.
const char* counterLabel(Counter c);

// Escapes a Prometheus label value (backslash, double quote, line feed).
std::string escapeLabel(const std::string& value);

}  // namespace taskmesh::proxy
