#pragma once
// One proxied connection: a downstream socket (accepted) and an upstream socket (dialled),
// one of them TLS, and two pumps moving bytes between them.
//
// PublicConnection:   mTLS from another proxy → intentions → plain TCP to the local app.
// UpstreamConnection: plain TCP from the app → endpoint choice → mTLS to a peer proxy.
//
// I/O model (the one HAProxy and nginx use): both sockets are registered once, edge-triggered
// for read and write, in the worker's epoll set; each side remembers whether it may be read or
// written, and forgets it when a call says "would block" or a read comes back short (the
// kernel's queue is then empty, and new data will raise a new edge). So a message costs one
// recv and one send: no speculative reads that fail, no epoll_ctl per wait. OpenSSL reads and
// writes the descriptor itself (socket_io.h): no intermediate copies.
//
// Data path: each pump reads into its own 16 KiB buffer and writes it all before reading
// again; when its source reports EOF it half-closes its destination (shutdown(SHUT_WR) or TLS
// close_notify). The connection closes when both directions ended, or at once on an error.
//
// Ownership and threads: a Connection lives on one worker, which owns it through an intrusive
// list; everything runs on that worker's thread. Asio is used for the timer, the resolver and
// posts; their handlers capture a raw `this` and a generation number (completions of abandoned
// attempts are ignored). The object deletes itself (Worker::release) once closed with no
// completion pending.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/asio.h"
#include "proxy/endpoints.h"
#include "proxy/runtime.h"
#include "proxy/socket_io.h"
#include "proxy/stats.h"

namespace taskmesh::proxy {

class Worker;
class Connection;

inline constexpr size_t kPumpBufferBytes = 16 * 1024;

// One socket of a connection, as the worker's epoll set knows it (epoll_event.data.ptr).
struct Side {
  Connection* owner = nullptr;
  int fd = -1;
  TlsTransport transport;   // what ssl's BIO reads and writes
  SslPtr ssl;               // null: plain TCP
  bool canRead = false;     // the last read did not say "would block" (nor come back short)
  bool canWrite = false;    // the last write did not say "would block"
  bool connecting = false;  // a non-blocking connect is in progress
  bool peerClosed = false;  // epoll reported the peer's FIN (or an error): read to the end

  ~Side() { closeFd(); }
  IoResult read(char* data, size_t size);
  IoResult write(const char* data, size_t size);
  IoResult shutdownWrite();
  bool startTls(SSL_CTX* ctx, bool server);
  void closeFd();  // frees the SSL, closes the socket (which leaves the epoll set)
};

class Connection {
 public:
  using tcp = boost::asio::ip::tcp;

  // Takes ownership of `downstream`, a connected non-blocking socket.
  Connection(Worker& worker, CounterSlot& counters, std::shared_ptr<const Runtime> runtime,
             int downstream);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the connection; it may finish (and be deleted) before this returns.
  void launch();
  // Closes both sockets now (drain timeout, shutdown).
  void abort();
  // The worker's epoll set reported `events` for `side`.
  void onEvents(Side& side, uint32_t events);

  // The worker's list.
  Connection* prev = nullptr;
  Connection* next = nullptr;

 protected:
  virtual void start() = 0;
  // Handshake progress may be possible (a side became readable or writable).
  virtual void onReady() = 0;
  // The dial of up_ finished: connected (no error) or failed.
  virtual void onConnected(const boost::system::error_code& ec) = 0;
  virtual void onTimeout() = 0;

  // Dials `ip` (or, when unset, the first address `host` resolves to) on up_; onConnected
  // follows. The caller's timer bounds the whole dial.
  void dial(const std::optional<tcp::endpoint>& ip, const std::string& host, int port);
  // Drops the current attempt on up_: closes it; pending completions for it are ignored.
  void abandonUpstream();
  void armTimer(std::chrono::milliseconds timeout);
  void cancelTimer();
  // Both sockets connected (and TLS established): start moving bytes.
  void startPipe();
  void close();
  boost::asio::io_context& io();
  std::chrono::milliseconds handshakeTimeout() const;
  // Records what a TLS call that wants to wait is waiting for: false when it must give up.
  static bool wantMore(Side& side, const IoResult& r);

  // Why a handshake failed, from what OpenSSL and our verify callback recorded.
  Counter classifyHandshakeFailure(SSL* ssl, const IoResult& result, bool server) const;

  Worker& worker_;
  CounterSlot& counters_;
  const std::shared_ptr<const Runtime> runtime_;  // outlives the SSL objects below
  PeerCheck peerCheck_;
  Side down_;
  Side up_;

 private:
  struct Pump {
    Side* from = nullptr;
    Side* to = nullptr;
    char* buffer = nullptr;
    uint32_t begin = 0, end = 0;  // bytes read but not yet written
    bool eof = false;             // the source ended; half-close the destination next
    bool done = false;
    Counter bytes = Counter::kBytesIn;
  };

  // Returns true when the pump stopped only because it used up its turn.
  bool runPump(Pump& pump);
  void runPumps();
  void connectTo(const tcp::endpoint& endpoint);
  void finishConnect();
  // Runs `fn` later on the worker (counted as pending; skipped if the attempt was abandoned).
  template <typename Fn>
  void later(Fn fn);
  void onTimer(uint32_t gen, const boost::system::error_code& ec);
  void onResolved(uint32_t gen, const boost::system::error_code& ec,
                  const tcp::resolver::results_type& results);
  void destroyIfDone();

  boost::asio::steady_timer timer_;
  std::unique_ptr<tcp::resolver> resolver_;  // only for endpoints named by host name
  char* buffers_ = nullptr;  // 2 * kPumpBufferBytes from the worker's pool, while piping
  Pump pumps_[2];
  uint32_t pending_ = 0;  // asio completions that have not run yet
  uint32_t ioGen_ = 0;    // bumped by abandonUpstream
  uint32_t timerGen_ = 0;
  bool closed_ = false;
  bool piping_ = false;
  bool resumePosted_ = false;
};

class PublicConnection final : public Connection {
 public:
  using Connection::Connection;

 private:
  void start() override;
  void onReady() override;
  void onConnected(const boost::system::error_code& ec) override;
  void onTimeout() override;
  void handshake();

  enum class Phase : uint8_t { kConnect, kHandshake, kPipe } phase_ = Phase::kConnect;
};

class UpstreamConnection final : public Connection {
 public:
  UpstreamConnection(Worker& worker, CounterSlot& counters, std::shared_ptr<const Runtime> runtime,
                     int downstream, const std::string& listenerName);
  ~UpstreamConnection() override;

 private:
  void start() override;
  void onReady() override;
  void onConnected(const boost::system::error_code& ec) override;
  void onTimeout() override;
  void tryEndpoint();
  void handshake();
  // The current attempt failed; `tlsReason` is counted when it failed in the handshake.
  void attemptFailed(std::optional<Counter> tlsReason);
  const EndpointRuntime& endpoint() const;

  const UpstreamRuntime* upstream_ = nullptr;  // null: the upstream left the snapshot
  AttemptPlan plan_;
  size_t attempt_ = 0;
  EndpointState* opened_ = nullptr;  // counted as active on this endpoint
  enum class Phase : uint8_t { kConnect, kHandshake, kPipe } phase_ = Phase::kConnect;
};

}  // namespace taskmesh::proxy
