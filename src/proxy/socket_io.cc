#include "proxy/socket_io.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>

namespace taskmesh::proxy {
namespace {

bool wouldBlock(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

TlsTransport* transportOf(BIO* bio) { return static_cast<TlsTransport*>(BIO_get_data(bio)); }

int bioWrite(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(transportOf(bio)->fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && wouldBlock(errno)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int bioRead(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  TlsTransport* t = transportOf(bio);
  ssize_t n = ::recv(t->fd, data, static_cast<size_t>(size), 0);
  t->drained = n > 0 && n < static_cast<ssize_t>(size);
  if (n < 0 && wouldBlock(errno)) BIO_set_retry_read(bio);
  // OpenSSL asks BIO_eof() to tell a clean TCP close from an error (as the socket BIO does).
  if (n == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
  return static_cast<int>(n);
}

int bioPuts(BIO* bio, const char* text) {
  return bioWrite(bio, text, static_cast<int>(std::char_traits<char>::length(text)));
}

long bioCtrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // writes go straight to the socket: nothing to flush
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "taskmesh socket");
    BIO_meth_set_write(m, bioWrite);
    BIO_meth_set_read(m, bioRead);
    BIO_meth_set_puts(m, bioPuts);
    BIO_meth_set_ctrl(m, bioCtrl);
    BIO_meth_set_create(m, bioCreate);
    return m;
  }();
  return method;
}

// Maps SSL_get_error after a call that returned `ret` <= 0.
IoResult sslResult(SSL* ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return {IoStatus::kWantRead};
    case SSL_ERROR_WANT_WRITE:
      return {IoStatus::kWantWrite};
    case SSL_ERROR_ZERO_RETURN:
      return {IoStatus::kEof};
    default: {
      // Keep the reason for the caller, and leave the queue empty for the next connection on
      // this thread.
      unsigned long first = ERR_peek_error();
      ERR_clear_error();
      return {IoStatus::kError, 0, first};
    }
  }
}

IoResult fromErrno(ssize_t n) {
  if (n >= 0) return {IoStatus::kOk, static_cast<size_t>(n)};
  return {wouldBlock(errno) ? IoStatus::kWantRead : IoStatus::kError};
}

}  // namespace

IoResult plainRead(int fd, char* data, size_t size) {
  ssize_t n = ::recv(fd, data, size, 0);
  if (n == 0) return {IoStatus::kEof};
  IoResult r = fromErrno(n);
  // A short read emptied the kernel's queue: the next read would only say "would block".
  r.drained = r.status == IoStatus::kOk && r.bytes < size;
  return r;
}

IoResult plainWrite(int fd, const char* data, size_t size) {
  ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
  if (n < 0 && wouldBlock(errno)) return {IoStatus::kWantWrite};
  return fromErrno(n);
}

IoResult plainShutdownWrite(int fd) {
  if (::shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) return {IoStatus::kError};
  return {IoStatus::kOk};
}

SslPtr newSsl(SSL_CTX* ctx, TlsTransport* transport, bool server) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return nullptr;
  BIO* bio = BIO_new(socketMethod());
  if (!bio) return nullptr;
  BIO_set_data(bio, transport);
  SSL_set_bio(ssl.get(), bio, bio);  // one reference, owned by the SSL
  if (server) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  return ssl;
}

IoResult tlsHandshake(SSL* ssl) {
  int ret = SSL_do_handshake(ssl);
  if (ret == 1) return {IoStatus::kOk};
  IoResult r = sslResult(ssl, ret);
  return r.status == IoStatus::kEof ? IoResult{IoStatus::kError} : r;
}

IoResult tlsRead(SSL* ssl, char* data, size_t size) {
  auto* transport = transportOf(SSL_get_rbio(ssl));
  transport->drained = false;
  int ret = SSL_read(ssl, data, static_cast<int>(std::min<size_t>(size, INT_MAX)));
  if (ret > 0) {
    bool drained = transport->drained && SSL_has_pending(ssl) == 0;
    return {IoStatus::kOk, static_cast<size_t>(ret), 0, drained};
  }
  return sslResult(ssl, ret);
}

IoResult tlsWrite(SSL* ssl, const char* data, size_t size) {
  int ret = SSL_write(ssl, data, static_cast<int>(std::min<size_t>(size, INT_MAX)));
  if (ret > 0) return {IoStatus::kOk, static_cast<size_t>(ret)};
  IoResult r = sslResult(ssl, ret);
  return r.status == IoStatus::kEof ? IoResult{IoStatus::kError} : r;
}

IoResult tlsShutdownWrite(SSL* ssl) {
  int ret = SSL_shutdown(ssl);
  if (ret >= 0) return {IoStatus::kOk};  // 0: sent, the peer's not yet received; fine for us
  IoResult r = sslResult(ssl, ret);
  return r.status == IoStatus::kEof ? IoResult{IoStatus::kOk} : r;
}

}  // namespace taskmesh::proxy
