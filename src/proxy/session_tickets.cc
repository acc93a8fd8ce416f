#include "proxy/session_tickets.h"

#include <openssl/x509.h>

namespace taskmesh::proxy {
namespace {

// The TicketQueue of a client connection, on its SSL.
int queueIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL calls this for each NewSessionTicket the server sends (after the handshake, from
// inside SSL_read on the worker's thread). Returning 1 keeps the reference we were given.
int onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* queue = static_cast<TicketQueue*>(SSL_get_ex_data(ssl, queueIndex()));
  if (queue == nullptr || !SSL_SESSION_is_resumable(session)) return 0;
  queue->push(session);
  return 1;
}

constexpr unsigned char kSessionIdContext[] = "taskmesh-public";

}  // namespace

TicketQueue::~TicketQueue() {
  for (auto* s : sessions_) SSL_SESSION_free(s);
}

void TicketQueue::push(SSL_SESSION* session) {
  if (sessions_.size() == kTicketsPerEndpoint) {
    SSL_SESSION_free(sessions_.front());
    sessions_.erase(sessions_.begin());
  }
  sessions_.push_back(session);
}

SSL_SESSION* TicketQueue::pop() {
  if (sessions_.empty()) return nullptr;
  SSL_SESSION* s = sessions_.back();
  sessions_.pop_back();
  return s;
}

void enableServerTickets(SSL_CTX* ctx) {
  // With TLS 1.3, SSL_OP_NO_TICKET means stateful tickets: references into this cache.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(kServerSessionCache));
  SSL_CTX_set_num_tickets(ctx, 2);  // after a full handshake; one after each resumption
  SSL_CTX_set_timeout(ctx, static_cast<long>(kTicketLifetime.count()));
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
}

void enableClientTickets(SSL_CTX* ctx) {
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, onNewSession);
}

void offerTicket(SSL* ssl, TicketQueue* queue) {
  SSL_set_ex_data(ssl, queueIndex(), queue);
  if (SSL_SESSION* ticket = queue->pop()) {
    SSL_set_session(ssl, ticket);  // takes its own reference
    SSL_SESSION_free(ticket);
  }
}

bool checkResumedPeer(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  return peer != nullptr && X509_cmp_current_time(X509_get0_notAfter(peer)) > 0;
}

}  // namespace taskmesh::proxy
