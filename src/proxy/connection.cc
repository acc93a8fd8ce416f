#include "proxy/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "connect/verify.h"
#include "proxy/worker.h"

namespace taskmesh::proxy {
namespace {

using boost::system::error_code;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("proxy");
  return l;
}

// Rounds of read+write one pump does before yielding to the worker's other connections.
constexpr int kPumpRounds = 16;

error_code errnoCode(int e) { return error_code(e, boost::system::system_category()); }

}  // namespace

// ---- Side -------------------------------------------------------------------------------------

IoResult Side::read(char* data, size_t size) {
  return ssl ? tlsRead(ssl.get(), data, size) : plainRead(fd, data, size);
}

IoResult Side::write(const char* data, size_t size) {
  return ssl ? tlsWrite(ssl.get(), data, size) : plainWrite(fd, data, size);
}

IoResult Side::shutdownWrite() {
  return ssl ? tlsShutdownWrite(ssl.get()) : plainShutdownWrite(fd);
}

bool Side::startTls(SSL_CTX* ctx, bool server) {
  transport.fd = fd;
  ssl = newSsl(ctx, &transport, server);
  return ssl != nullptr;
}

void Side::closeFd() {
  ssl.reset();
  if (fd >= 0) ::close(fd);
  fd = -1;
  canRead = canWrite = connecting = peerClosed = false;
}

// ---- Connection -------------------------------------------------------------------------------

Connection::Connection(Worker& worker, CounterSlot& counters,
                       std::shared_ptr<const Runtime> runtime, int downstream)
    : worker_(worker), counters_(counters), runtime_(std::move(runtime)), timer_(worker.io()) {
  down_.owner = this;
  up_.owner = this;
  down_.fd = downstream;
  // Optimistic: a client usually sends at once (the ClientHello is often already queued).
  down_.canRead = down_.canWrite = true;
  counters_.add(Counter::kAccepted);
  counters_.add(Counter::kActive);
  if (!worker_.watch(down_.fd, &down_)) close();
}

Connection::~Connection() {
  counters_.sub(Counter::kActive);
  if (buffers_) worker_.releaseBuffers(buffers_);
  down_.closeFd();
  up_.closeFd();
}

boost::asio::io_context& Connection::io() { return worker_.io(); }

std::chrono::milliseconds Connection::handshakeTimeout() const {
  return worker_.handshakeTimeout();
}

void Connection::launch() {
  if (!closed_) start();
  destroyIfDone();
}

void Connection::abort() {
  if (closed_) return;
  close();
  destroyIfDone();
}

void Connection::destroyIfDone() {
  if (closed_ && pending_ == 0) worker_.release(this);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  if (resolver_) resolver_->cancel();
  down_.closeFd();
  up_.closeFd();
}

void Connection::onEvents(Side& side, uint32_t events) {
  if (closed_) return;  // a completion from before close, in the same epoll batch
  bool failed = (events & (EPOLLERR | EPOLLHUP)) != 0;
  bool newly = false;
  if ((events & (EPOLLIN | EPOLLRDHUP)) || failed) {
    newly |= !side.canRead;
    side.canRead = true;
  }
  // The peer's FIN (or an error) raises one edge only: remember it, or a short read that
  // follows would be taken to mean "nothing until the next edge" and the EOF never read.
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.peerClosed = true;
  if ((events & EPOLLOUT) || failed) {
    newly |= !side.canWrite;
    side.canWrite = true;
  }
  if (side.connecting) {
    if (side.canWrite) finishConnect();
  } else if (newly) {
    if (piping_) {
      runPumps();
    } else {
      onReady();
    }
  }
  destroyIfDone();
}

template <typename Fn>
void Connection::later(Fn fn) {
  ++pending_;
  boost::asio::post(io(), [this, gen = ioGen_, fn = std::move(fn)] {
    --pending_;
    if (!closed_ && gen == ioGen_) fn();
    destroyIfDone();
  });
}

void Connection::dial(const std::optional<tcp::endpoint>& ip, const std::string& host, int port) {
  if (ip) return connectTo(*ip);
  if (!resolver_) resolver_ = std::make_unique<tcp::resolver>(io());
  ++pending_;
  resolver_->async_resolve(
      host, std::to_string(port),
      [this, gen = ioGen_](const error_code& e, const tcp::resolver::results_type& results) {
        onResolved(gen, e, results);
      });
}

void Connection::onResolved(uint32_t gen, const error_code& ec,
                            const tcp::resolver::results_type& results) {
  --pending_;
  if (!closed_ && gen == ioGen_) {
    if (ec || results.empty()) {
      onConnected(ec ? ec : boost::asio::error::host_not_found);
    } else {
      connectTo(results.begin()->endpoint());
    }
  }
  destroyIfDone();
}

void Connection::connectTo(const tcp::endpoint& endpoint) {
  int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error_code ec = errnoCode(errno);
    return later([this, ec] { onConnected(ec); });
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  up_.fd = fd;
  up_.canRead = up_.canWrite = false;
  up_.connecting = true;
  if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 &&
      errno != EINPROGRESS) {
    error_code ec = errnoCode(errno);
    up_.closeFd();
    return later([this, ec] { onConnected(ec); });
  }
  // Connected or in progress: epoll reports writability when it is done (at once if it is).
  if (!worker_.watch(fd, &up_)) {
    error_code ec = errnoCode(errno);
    up_.closeFd();
    later([this, ec] { onConnected(ec); });
  }
}

void Connection::finishConnect() {
  // The event may be stale: from an abandoned attempt's socket earlier in the same epoll batch
  // (its Side is reused). Only a socket that is writable now has finished connecting.
  pollfd p{up_.fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) != 1) {
    up_.canWrite = false;
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(up_.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  up_.connecting = false;
  onConnected(errnoCode(err));
}

void Connection::abandonUpstream() {
  ++ioGen_;
  if (resolver_) resolver_->cancel();
  up_.closeFd();
}

void Connection::armTimer(std::chrono::milliseconds timeout) {
  ++timerGen_;
  timer_.expires_after(timeout);  // cancels a pending wait (its completion is ignored)
  ++pending_;
  timer_.async_wait([this, gen = timerGen_](const error_code& ec) { onTimer(gen, ec); });
}

void Connection::cancelTimer() {
  ++timerGen_;
  timer_.cancel();
}

void Connection::onTimer(uint32_t gen, const error_code& ec) {
  --pending_;
  if (!closed_ && gen == timerGen_ && !ec) onTimeout();
  destroyIfDone();
}

bool Connection::wantMore(Side& side, const IoResult& r) {
  if (r.status == IoStatus::kWantRead) {
    side.canRead = false;
    return true;
  }
  if (r.status == IoStatus::kWantWrite) {
    side.canWrite = false;
    return true;
  }
  return false;
}

void Connection::startPipe() {
  buffers_ = worker_.acquireBuffers();
  pumps_[0] = Pump{.from = &down_, .to = &up_, .buffer = buffers_, .bytes = Counter::kBytesIn};
  pumps_[1] = Pump{.from = &up_,
                   .to = &down_,
                   .buffer = buffers_ + kPumpBufferBytes,
                   .bytes = Counter::kBytesOut};
  piping_ = true;
  runPumps();
}

void Connection::runPumps() {
  bool busy = runPump(pumps_[0]);
  if (closed_) return;
  busy |= runPump(pumps_[1]);
  if (closed_ || !busy || resumePosted_) return;
  // A pump used its turn with more to do: let the worker's other connections run first.
  resumePosted_ = true;
  ++pending_;
  boost::asio::post(io(), [this] {
    --pending_;
    resumePosted_ = false;
    if (!closed_) runPumps();
    destroyIfDone();
  });
}

bool Connection::runPump(Pump& p) {
  for (int round = 0; round < kPumpRounds; ++round) {
    if (p.done) return false;
    if (p.begin < p.end) {
      if (!p.to->canWrite) return false;
      IoResult r = p.to->write(p.buffer + p.begin, p.end - p.begin);
      if (r.status == IoStatus::kOk) {
        p.begin += static_cast<uint32_t>(r.bytes);
        if (p.begin == p.end) p.begin = p.end = 0;
        continue;
      }
      if (!wantMore(*p.to, r)) close();  // the destination is gone
      return false;
    }
    if (p.eof) {
      if (!p.to->canWrite) return false;
      IoResult r = p.to->shutdownWrite();
      if (wantMore(*p.to, r)) return false;
      p.done = true;
      if (pumps_[0].done && pumps_[1].done) close();
      return false;
    }
    if (!p.from->canRead) return false;
    IoResult r = p.from->read(p.buffer, kPumpBufferBytes);
    switch (r.status) {
      case IoStatus::kOk:
        p.end = static_cast<uint32_t>(r.bytes);
        if (r.drained && !p.from->peerClosed) p.from->canRead = false;
        counters_.add(p.bytes, r.bytes);
        continue;
      case IoStatus::kWantRead:
      case IoStatus::kWantWrite:
        wantMore(*p.from, r);
        return false;
      case IoStatus::kEof:
        p.eof = true;
        continue;
      case IoStatus::kError:
        close();
        return false;
    }
  }
  return true;
}

Counter Connection::classifyHandshakeFailure(SSL* ssl, const IoResult& result, bool server) const {
  if (peerCheck_.refusal == PeerRefusal::kTrustDomain) return Counter::kTlsTrustDomain;
  if (peerCheck_.refusal == PeerRefusal::kSpiffeId) return Counter::kTlsSpiffeId;
  long verify = SSL_get_verify_result(ssl);
  if (verify == X509_V_ERR_CERT_HAS_EXPIRED || verify == X509_V_ERR_CERT_NOT_YET_VALID) {
    return Counter::kTlsExpired;
  }
  if (verify != X509_V_OK) return Counter::kTlsUntrusted;
  if (server && ERR_GET_REASON(result.sslError) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    return Counter::kTlsNoPeerCert;
  }
  return Counter::kTlsProtocol;
}

// ---- PublicConnection -------------------------------------------------------------------------

// The local app is dialled before the TLS handshake starts. When the app is gone (its task is
// stopping, its process died) the connection closes before this proxy has sent a byte of
// TLS, so the calling sidecar sees a failed handshake and retries on another endpoint: no
// request is lost to an app that has exited while its endpoint is still in the catalog. The
// price: every accepted connection, also one that then fails the handshake or the
// intentions, opens a connection to the app, which never receives a byte of it.
void PublicConnection::start() {
  phase_ = Phase::kConnect;
  const auto& s = runtime_->snapshot;
  armTimer(std::chrono::milliseconds(s.localConnectTimeoutMs));
  dial(runtime_->localAppIp, s.localAppAddress, s.localAppPort);
}

void PublicConnection::onReady() {
  if (phase_ == Phase::kHandshake) handshake();
}

void PublicConnection::onConnected(const boost::system::error_code& ec) {
  if (ec) {
    counters_.add(Counter::kConnectFailures);
    logger()->debug("local app connect failed error=\"{}\"", ec.message());
    return close();
  }
  cancelTimer();
  if (!down_.startTls(runtime_->serverCtx.get(), true)) {
    ERR_clear_error();
    counters_.add(Counter::kTlsProtocol);
    return close();
  }
  attachPeerCheck(down_.ssl.get(), &peerCheck_);
  phase_ = Phase::kHandshake;
  armTimer(handshakeTimeout());
  handshake();
}

void PublicConnection::handshake() {
  IoResult r = tlsHandshake(down_.ssl.get());
  if (wantMore(down_, r)) return;
  if (r.status != IoStatus::kOk) {
    Counter reason = classifyHandshakeFailure(down_.ssl.get(), r, true);
    counters_.add(reason);
    logger()->debug("public handshake failed reason={}", counterLabel(reason));
    return close();
  }
  cancelTimer();
  if (SSL_session_reused(down_.ssl.get())) {
    if (!checkResumedPeer(down_.ssl.get())) {
      counters_.add(Counter::kTlsExpired);
      return close();
    }
    counters_.add(Counter::kTlsResumed);
  }
  auto id = connect::serviceIdOf(SSL_get0_peer_certificate(down_.ssl.get()));
  if (!id) {  // the verify callback accepted only service IDs; be safe anyway
    counters_.add(Counter::kTlsTrustDomain);
    return close();
  }
  const Verdict& verdict = runtime_->authorize(id->service);
  if (!verdict.allowed) {
    counters_.add(verdict.matched ? Counter::kDeniedIntention : Counter::kDeniedDefault);
    logger()->debug("connection denied source={} destination={} reason=\"{}\"", id->service,
                    runtime_->snapshot.service, verdict.reason);
    return close();
  }
  phase_ = Phase::kPipe;
  startPipe();
}

void PublicConnection::onTimeout() {
  if (phase_ == Phase::kHandshake) {
    counters_.add(Counter::kTlsTimeout);
  } else if (phase_ == Phase::kConnect) {
    counters_.add(Counter::kConnectFailures);
    logger()->debug("local app connect timed out");
  }
  close();
}

// ---- UpstreamConnection -----------------------------------------------------------------------

UpstreamConnection::UpstreamConnection(Worker& worker, CounterSlot& counters,
                                       std::shared_ptr<const Runtime> runtime, int downstream,
                                       const std::string& listenerName)
    : Connection(worker, counters, std::move(runtime), downstream),
      upstream_(runtime_->upstream(listenerName)) {}

UpstreamConnection::~UpstreamConnection() {
  if (opened_) opened_->connectionClosed();
}

const EndpointRuntime& UpstreamConnection::endpoint() const {
  return upstream_->endpoints[plan_.index[attempt_]];
}

void UpstreamConnection::start() {
  if (upstream_ == nullptr || upstream_->endpoints.empty()) {
    counters_.add(Counter::kNoEndpoints);
    return close();
  }
  size_t cursor = upstream_->cursor.fetch_add(1, std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  const auto& eps = upstream_->endpoints;
  plan_ = planAttempts(eps.size(), cursor, [&](size_t i) { return eps[i].state->ejected(now); });
  attempt_ = 0;
  tryEndpoint();
}

void UpstreamConnection::tryEndpoint() {
  phase_ = Phase::kConnect;
  const EndpointRuntime& ep = endpoint();
  armTimer(std::chrono::milliseconds(upstream_->config->connectTimeoutMs));
  dial(ep.ip, ep.config.address, ep.config.port);
}

void UpstreamConnection::onConnected(const boost::system::error_code& ec) {
  if (ec) return attemptFailed(std::nullopt);
  if (!up_.startTls(runtime_->clientCtx.get(), false)) {
    ERR_clear_error();
    return attemptFailed(Counter::kTlsProtocol);
  }
  peerCheck_ = PeerCheck{.expected = &upstream_->expectedPeer};
  attachPeerCheck(up_.ssl.get(), &peerCheck_);
  if (TicketQueue* tickets = endpoint().ticketsOf(worker_.id()))
    offerTicket(up_.ssl.get(), tickets);
  phase_ = Phase::kHandshake;
  armTimer(handshakeTimeout());
  handshake();
}

void UpstreamConnection::onReady() {
  if (phase_ == Phase::kHandshake) handshake();
}

void UpstreamConnection::handshake() {
  IoResult r = tlsHandshake(up_.ssl.get());
  if (wantMore(up_, r)) return;
  if (r.status != IoStatus::kOk) {
    return attemptFailed(classifyHandshakeFailure(up_.ssl.get(), r, false));
  }
  if (SSL_session_reused(up_.ssl.get())) {
    if (!checkResumedPeer(up_.ssl.get())) return attemptFailed(Counter::kTlsExpired);
    counters_.add(Counter::kTlsResumed);
  }
  cancelTimer();
  EndpointState* state = endpoint().state.get();
  state->recordSuccess();
  state->connectionOpened();
  opened_ = state;
  phase_ = Phase::kPipe;
  startPipe();
}

void UpstreamConnection::attemptFailed(std::optional<Counter> tlsReason) {
  counters_.add(Counter::kConnectFailures);
  if (tlsReason) counters_.add(*tlsReason);
  const EndpointRuntime& ep = endpoint();
  auto now = std::chrono::steady_clock::now();
  if (ep.state->recordFailure(now)) {
    counters_.add(Counter::kEjections);
    logger()->info(
        "endpoint ejected upstream={} endpoint={} for={}ms", upstream_->config->destinationName,
        ep.state->key(),
        std::chrono::duration_cast<std::chrono::milliseconds>(ep.state->ejectedUntil() - now)
            .count());
  }
  logger()->debug("upstream attempt failed upstream={} endpoint={} phase={} reason={}",
                  upstream_->config->destinationName, ep.state->key(),
                  phase_ == Phase::kConnect ? "connect" : "handshake",
                  tlsReason ? counterLabel(*tlsReason) : "connect");
  abandonUpstream();
  cancelTimer();
  if (++attempt_ < plan_.count) return tryEndpoint();
  counters_.add(Counter::kUpstreamFailed);
  close();
}

void UpstreamConnection::onTimeout() {
  if (phase_ == Phase::kConnect) return attemptFailed(std::nullopt);
  if (phase_ == Phase::kHandshake) return attemptFailed(Counter::kTlsTimeout);
}

}  // namespace taskmesh::proxy
