#pragma once
// The Runtime: everything a connection needs from one snapshot, built once on the main thread
// and then shared read-only by every worker (shared_ptr<const Runtime>). A connection keeps the
// Runtime it started with until it closes, so a new snapshot never disturbs established
// connections; new connections use the newest Runtime.
//
// TLS: both contexts are TLS 1.3 only, present the snapshot's leaf (with its intermediates) and
// trust exactly the snapshot's roots. The server context requires a client certificate; its
// verify callback also requires the leaf's SPIFFE ID to be a service in the snapshot's trust
// domain. The client context additionally requires the server's SPIFFE ID to equal the
// upstream's (set per connection with setExpectedPeer). Unless BuildOptions::tlsResumption
// is off, both resume TLS 1.3 sessions; session_tickets.h says why that stays within one
// snapshot's roots and identities.

#include <openssl/ssl.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "connect/proxy_config.h"
#include "connect/spiffe.h"
#include "connect/verify.h"
#include "net/asio.h"
#include "proxy/endpoints.h"
#include "proxy/session_tickets.h"

#include <boost/asio/ip/tcp.hpp>

namespace taskmesh::proxy {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Why a peer's certificate was refused inside the handshake (beyond OpenSSL's own chain
// checks). Set on the SSL object with attachPeerCheck; read after a failed handshake.
enum class PeerRefusal { kNone, kTrustDomain, kSpiffeId };
struct PeerCheck {
  const connect::ServiceId* expected = nullptr;  // client side: the upstream's identity
  PeerRefusal refusal = PeerRefusal::kNone;
};
// Associates `check` (which must outlive `ssl`'s handshake) with `ssl`.
void attachPeerCheck(SSL* ssl, PeerCheck* check);

struct EndpointRuntime {
  connect::UpstreamEndpoint config;
  std::optional<boost::asio::ip::tcp::endpoint> ip;  // set when config.address is an IP literal
  std::shared_ptr<EndpointState> state;
  // Session tickets from this endpoint, one queue per worker (indexed by Worker::id()); each
  // worker touches only its own, though the Runtime is shared const. Null: resumption is off.
  std::unique_ptr<TicketQueue[]> tickets;
  TicketQueue* ticketsOf(int worker) const { return tickets ? &tickets[worker] : nullptr; }
};

struct UpstreamRuntime {
  UpstreamRuntime() = default;
  UpstreamRuntime(UpstreamRuntime&& other) noexcept
      : listenerName(std::move(other.listenerName)),
        config(other.config),
        expectedPeer(std::move(other.expectedPeer)),
        endpoints(std::move(other.endpoints)) {}

  std::string listenerName;  // "upstream:api" ("upstream:api?dc=dc2" for another datacenter)
  const connect::UpstreamSnapshot* config = nullptr;  // into Runtime::snapshot
  connect::ServiceId expectedPeer;                    // parsed config->spiffeId
  std::vector<EndpointRuntime> endpoints;
  // Round-robin cursor, shared by the workers (relaxed; exactness does not matter).
  mutable std::atomic<size_t> cursor{0};
};

// An intention decision precomputed per source service name.
struct Verdict {
  bool allowed = true;
  bool matched = false;  // an intention decided (else the default policy)
  std::string reason;
};

struct Runtime {
  connect::ProxySnapshot snapshot;
  SslCtxPtr serverCtx;
  SslCtxPtr clientCtx;
  std::vector<UpstreamRuntime> upstreams;  // in snapshot order
  // The local app's address when snapshot.localAppAddress is an IP literal (else resolved
  // per connection).
  std::optional<boost::asio::ip::tcp::endpoint> localAppIp;

  // Intentions whose destination is this service, decided per exact source name; any other
  // source gets `otherSources` (the wildcard intentions or the default policy).
  std::unordered_map<std::string, Verdict> verdicts;
  Verdict otherSources;

  const Verdict& authorize(const std::string& sourceService) const;
  const UpstreamRuntime* upstream(const std::string& listenerName) const;
};

inline constexpr const char* kPublicListener = "public";
std::string upstreamListenerName(const connect::UpstreamSnapshot& upstream);

// The main thread's map of endpoint states, so that ejections and counts survive snapshots.
// Entries no Runtime uses any more are dropped by prune(). Main thread only.
class EndpointRegistry {
 public:
  std::shared_ptr<EndpointState> get(const std::string& listenerName, const std::string& key);
  void prune();

 private:
  std::map<std::pair<std::string, std::string>, std::weak_ptr<EndpointState>> states_;
};

struct BuildOptions {
  int workers = 1;            // the proxy's --concurrency: one TicketQueue per endpoint each
  bool tlsResumption = true;  // issue (public listener) and use (upstreams) session tickets
};

// Builds the Runtime for `snapshot`. Errors (kInvalidArgument) name what is wrong: the leaf or
// key does not parse, they do not match, the leaf's SPIFFE ID is not this proxy's service in the
// snapshot's trust domain, it does not chain to the roots or is expired (checked at `now`), a
// root is not a CA, an upstream's SpiffeID does not parse.
Result<std::shared_ptr<const Runtime>> buildRuntime(connect::ProxySnapshot snapshot,
                                                    EndpointRegistry& registry,
                                                    connect::TimePoint now,
                                                    const BuildOptions& options = {});

}  // namespace taskmesh::proxy
