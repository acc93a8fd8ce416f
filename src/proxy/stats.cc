#include "proxy/stats.h"

#include <string_view>

namespace taskmesh::proxy {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

// One metric family per counter; the TLS reasons and the denial reasons share a family each,
// told apart by a "reason" label.
struct Series {
  Counter counter;
  const Family* family;
  const char* reason;  // nullptr: no reason label
};

constexpr Family kAccepted{"taskmesh_proxy_downstream_cx_total", "counter",
                           "Downstream connections accepted."};
constexpr Family kActive{"taskmesh_proxy_downstream_cx_active", "gauge",
                         "Downstream connections open."};
constexpr Family kBytesIn{"taskmesh_proxy_downstream_bytes_received_total", "counter",
                          "Bytes received from downstream."};
constexpr Family kBytesOut{"taskmesh_proxy_downstream_bytes_sent_total", "counter",
                           "Bytes sent to downstream."};
constexpr Family kRefused{"taskmesh_proxy_downstream_cx_refused_total", "counter",
                          "Connections closed at once because the proxy was draining."};
constexpr Family kTls{"taskmesh_proxy_tls_handshake_failures_total", "counter",
                      "TLS handshakes that failed, by reason."};
constexpr Family kResumed{"taskmesh_proxy_tls_sessions_resumed_total", "counter",
                          "TLS handshakes that resumed a session from a ticket."};
constexpr Family kDenied{"taskmesh_proxy_denied_total", "counter",
                         "Connections denied by intentions, by reason."};
constexpr Family kConnect{"taskmesh_proxy_upstream_connect_failures_total", "counter",
                          "Failed attempts to reach the local app or an upstream endpoint."};
constexpr Family kFailed{"taskmesh_proxy_upstream_cx_failed_total", "counter",
                         "Downstream connections closed because every attempt failed."};
constexpr Family kNoEndpoints{"taskmesh_proxy_upstream_no_endpoints_total", "counter",
                              "Downstream connections closed because there was no endpoint."};
constexpr Family kEjections{"taskmesh_proxy_endpoint_ejections_total", "counter",
                            "Endpoints ejected after consecutive failures."};

constexpr Series kSeries[] = {
    {Counter::kAccepted, &kAccepted, nullptr},
    {Counter::kActive, &kActive, nullptr},
    {Counter::kBytesIn, &kBytesIn, nullptr},
    {Counter::kBytesOut, &kBytesOut, nullptr},
    {Counter::kDraining, &kRefused, nullptr},
    {Counter::kTlsTimeout, &kTls, "timeout"},
    {Counter::kTlsProtocol, &kTls, "protocol"},
    {Counter::kTlsNoPeerCert, &kTls, "no_peer_certificate"},
    {Counter::kTlsUntrusted, &kTls, "untrusted"},
    {Counter::kTlsExpired, &kTls, "expired"},
    {Counter::kTlsTrustDomain, &kTls, "trust_domain"},
    {Counter::kTlsSpiffeId, &kTls, "spiffe_id"},
    {Counter::kTlsResumed, &kResumed, nullptr},
    {Counter::kDeniedIntention, &kDenied, "intention"},
    {Counter::kDeniedDefault, &kDenied, "default_deny"},
    {Counter::kConnectFailures, &kConnect, nullptr},
    {Counter::kUpstreamFailed, &kFailed, nullptr},
    {Counter::kNoEndpoints, &kNoEndpoints, nullptr},
    {Counter::kEjections, &kEjections, nullptr},
};

void header(std::string& out, const Family& f) {
  out += "# HELP ";
  out += f.name;
  out += ' ';
  out += f.help;
  out += "\n# TYPE ";
  out += f.name;
  out += ' ';
  out += f.type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

const char* counterLabel(Counter c) {
  for (const Series& s : kSeries) {
    if (s.counter == c) return s.reason ? s.reason : s.family->name;
  }
  return "unknown";
}

ListenerStats::ListenerStats(std::string name, int workers)
    : name_(std::move(name)), workers_(workers), slots_(new CounterSlot[workers]) {}

uint64_t ListenerStats::sum(Counter c) const {
  uint64_t total = 0;
  for (int w = 0; w < workers_; ++w) {
    total += slots_[w].value[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }
  return total;
}

ListenerStats* Stats::listener(const std::string& name) {
  for (auto& l : listeners_) {
    if (l.name() == name) return &l;
  }
  return &listeners_.emplace_back(name, workers_);
}

uint64_t Stats::activeConnections() const {
  uint64_t total = 0;
  for (const auto& l : listeners_) total += l.sum(Counter::kActive);
  return total;
}

std::string escapeLabel(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Stats::prometheus() const {
  std::string out;
  out.reserve(4096);
  const Family* previous = nullptr;
  for (const Series& s : kSeries) {
    if (s.family != previous) header(out, *s.family);
    previous = s.family;
    for (const auto& l : listeners_) {
      std::string labels = "listener=\"" + escapeLabel(l.name()) + "\"";
      if (s.reason) labels += std::string(",reason=\"") + s.reason + "\"";
      sample(out, s.family->name, labels, l.sum(s.counter));
    }
  }
  const Family globals[] = {
      {"taskmesh_proxy_config_updates_total", "counter", "Snapshots applied."},
      {"taskmesh_proxy_config_errors_total", "counter",
       "Failed polls of the agent, rejected snapshots and failed listener binds."},
      {"taskmesh_proxy_snapshot_index", "gauge", "X-Consul-Index of the applied snapshot."},
      {"taskmesh_proxy_ready", "gauge", "1 when a snapshot is applied and every listener bound."},
      {"taskmesh_proxy_workers", "gauge", "Worker threads."},
  };
  const uint64_t values[] = {
      configUpdates.load(std::memory_order_relaxed), configErrors.load(std::memory_order_relaxed),
      snapshotIndex.load(std::memory_order_relaxed),
      ready.load(std::memory_order_relaxed) ? 1u : 0u, static_cast<uint64_t>(workers_)};
  for (size_t i = 0; i < std::size(globals); ++i) {
    header(out, globals[i]);
    sample(out, globals[i].name, "", values[i]);
  }
  return out;
}

}  // namespace taskmesh::proxy
