#pragma once
// TLS 1.3 session resumption between sidecars: what each side keeps and why it stays safe.
//
// Server side (the public listener): the Runtime's server SSL_CTX issues stateful tickets —
// references into that SSL_CTX's own session cache (at most kServerSessionCache sessions, the
// oldest evicted first; OpenSSL drops a TLS 1.3 session from it once it is resumed). A ticket
// therefore resumes only under the snapshot that issued it — the same leaf, roots and
// intentions; any new snapshot means a new cache and a full handshake. Stateful rather than
// stateless because a stateless ticket carries the client certificate, which OpenSSL 3.0
// encodes, encrypts, decrypts and parses again on every resumption (measured: 15 % fewer
// resumed and full handshakes per second). A resumed connection is still authorised per
// connection, from the SPIFFE ID of the client certificate kept with the session, and refused
// if that certificate has expired since (checkResumedPeer).
//
// Client side (upstream listeners): tickets are kept per upstream endpoint in a TicketQueue
// owned by the Runtime, one queue per endpoint and worker. Only the worker's thread touches its
// queues, so there is no lock; a new Runtime (new roots, leaf or endpoints) starts with empty
// queues, so a session is only resumed under the roots and the expected SPIFFE ID that
// verified its server. Each ticket is used once (RFC 8446 §C.4): a connection takes the newest,
// and the server's answer to a resumption brings a fresh one.
//
// Threads: a TicketQueue is used by one worker thread; the ex-data glue runs inside OpenSSL
// calls made on that thread.

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <vector>

namespace taskmesh::proxy {

// How long a ticket may be used after it was issued (the server's lifetime hint; OpenSSL
// refuses older ones). Short, because a resumption skips the chain check against the roots.
inline constexpr std::chrono::seconds kTicketLifetime{600};
// Tickets kept per endpoint and worker: enough for a burst of parallel new connections.
inline constexpr size_t kTicketsPerEndpoint = 4;
// Sessions a public listener keeps for resumption (each holds the client's certificate, about
// 2 KB): one per ticket its clients hold, so room for 128 client workers' queues.
inline constexpr size_t kServerSessionCache = 512;

class TicketQueue {
 public:
  TicketQueue() = default;
  ~TicketQueue();
  TicketQueue(const TicketQueue&) = delete;
  TicketQueue& operator=(const TicketQueue&) = delete;

  // Takes ownership of `session`; beyond kTicketsPerEndpoint the oldest is freed.
  void push(SSL_SESSION* session);
  // The newest ticket, owned by the caller (SSL_SESSION_free), or null when there is none.
  SSL_SESSION* pop();
  size_t size() const { return sessions_.size(); }

 private:
  // Oldest first; at most kTicketsPerEndpoint. A vector, not a deque: one exists per endpoint
  // and worker, and a deque allocates a 512-byte block for its first element.
  std::vector<SSL_SESSION*> sessions_;
};

// Server context: issue stateful tickets (kTicketLifetime, kServerSessionCache), and give the
// sessions the ID context OpenSSL requires before it resumes one whose client presented a
// certificate.
void enableServerTickets(SSL_CTX* ctx);
// Client context: hand every ticket received on a connection to that connection's TicketQueue
// (see offerTicket); connections without one drop their tickets.
void enableClientTickets(SSL_CTX* ctx);
// Client connection, before its handshake: offers the newest ticket of `queue` (if any) and
// routes the tickets this connection receives into `queue`, which must outlive `ssl`.
void offerTicket(SSL* ssl, TicketQueue* queue);

// After a successful handshake that resumed a session: false when the peer's certificate (from
// the ticket) has expired since the full handshake, or is missing.
bool checkResumedPeer(SSL* ssl);

}  // namespace taskmesh::proxy
