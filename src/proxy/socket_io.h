#pragma once
// Non-blocking reads and writes on a connected socket, plain or TLS, that report "would block"
// instead of waiting: the connection code waits for readiness on the socket (async_wait) and
// calls again. OpenSSL reads and writes the descriptor itself through a small BIO (recv/send
// with MSG_NOSIGNAL, so a closed peer never raises SIGPIPE): no intermediate buffers.
//
// Threads: a socket and its SSL belong to one worker; none of this is shared.

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>

namespace taskmesh::proxy {

enum class IoStatus {
  kOk,         // `bytes` moved (or the operation completed)
  kWantRead,   // wait until the socket is readable, then call again
  kWantWrite,  // wait until the socket is writable, then call again
  kEof,        // the peer closed its sending side (TCP FIN or TLS close_notify)
  kError,      // the connection is unusable
};

struct IoResult {
  IoStatus status;
  size_t bytes = 0;
  unsigned long sslError = 0;  // kError from TLS: OpenSSL's first queued error code
  // A read's kOk: the socket had no more bytes after it (a short read; for TLS, OpenSSL holds
  // none either), so the next read would only say "would block": wait for readability.
  bool drained = false;
};

IoResult plainRead(int fd, char* data, size_t size);
IoResult plainWrite(int fd, const char* data, size_t size);
IoResult plainShutdownWrite(int fd);

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// What the BIO of one SSL reads and writes: the socket, and whether its last read came back
// short (the kernel's receive queue was empty afterwards).
struct TlsTransport {
  int fd = -1;
  bool drained = false;
};

// A new SSL for `ctx` over `transport` (which must outlive the SSL; its fd stays open while
// the SSL is used).
SslPtr newSsl(SSL_CTX* ctx, TlsTransport* transport, bool server);

IoResult tlsHandshake(SSL* ssl);
IoResult tlsRead(SSL* ssl, char* data, size_t size);
IoResult tlsWrite(SSL* ssl, const char* data, size_t size);
// Sends close_notify (our half-close); reading may continue afterwards.
IoResult tlsShutdownWrite(SSL* ssl);

}  // namespace taskmesh::proxy
