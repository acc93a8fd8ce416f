#pragma once
// Test-only helpers for proxy_test (not part of the library): certificates from the connect CA,
// a fake agent serving proxy snapshots with blocking-query semantics, an echo server, blocking
// socket clients with deadlines, a raw TLS client, and an in-process proxy with its admin API.
// Everything listens on 127.0.0.1 with ports picked by the kernel.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "connect/ca.h"
#include "connect/proxy_config.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "proxy/proxy.h"

namespace taskmesh::proxy::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = boost::asio::ip::tcp;

inline const std::string kTrustDomain = "11111111-2222-3333-4444-555555555555.consul";
inline const std::string kOtherTrustDomain = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.consul";

// Polls `predicate` every few milliseconds until it holds or `timeout` passes.
inline bool waitUntil(const std::function<bool()>& predicate,
                      std::chrono::milliseconds timeout = 10s) {
  auto deadline = Clock::now() + timeout;
  while (!predicate()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A port that was free a moment ago, chosen below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range). A port from that range (what binding port 0
// gives) can be taken meanwhile as the local port of any outgoing connection on the machine;
// under parallel tests that made a listener fail with EADDRINUSE for as long as the
// connection lived.
inline int freePort() {
  static std::mt19937 rng(std::random_device{}());
  static const int ephemeralLow = [] {  // read once per test process
    int low = 32768;
    if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
      if (std::fscanf(f, "%d", &low) != 1) low = 32768;
      std::fclose(f);
    }
    return low;
  }();
  const int lo = 10000;
  const int hi = std::max(lo + 1000, ephemeralLow) - 1;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = lo + static_cast<int>(rng() % static_cast<unsigned>(hi - lo + 1));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    if (free) return port;
  }
  return 0;  // the caller's listen fails and names the port
}

// ---- certificates ----------------------------------------------------------------------------

struct Leaf {
  std::string certPem;  // leaf + intermediates
  std::string keyPem;
};

inline connect::RootCa makeRoot(const std::string& trustDomain, uint64_t serial) {
  auto root = connect::generateRoot(connect::RootOptions{
      .trustDomain = trustDomain, .serial = serial, .now = std::chrono::system_clock::now()});
  EXPECT_TRUE(root.has_value()) << root.error().message;
  return *root;
}

// A leaf for `service` in `trustDomain` signed by `signer`, valid from `now` − 1 min for `ttl`.
inline Leaf makeLeaf(const connect::RootCa& signer, const std::string& service,
                     const std::string& trustDomain = kTrustDomain,
                     std::chrono::system_clock::time_point now = std::chrono::system_clock::now(),
                     std::chrono::seconds ttl = std::chrono::hours(72)) {
  static std::atomic<uint64_t> serial{100};
  connect::ServiceId id{.trustDomain = trustDomain, .datacenter = "dc1", .service = service};
  auto req = connect::makeLeafRequest(id);
  EXPECT_TRUE(req.has_value()) << req.error().message;
  auto signed_ = connect::signLeaf(
      signer, req->csrPem,
      connect::SignOptions{.trustDomain = trustDomain, .serial = serial++, .now = now, .ttl = ttl});
  EXPECT_TRUE(signed_.has_value()) << signed_.error().message;
  return Leaf{signed_->certPem, req->privateKeyPem};
}

inline std::string spiffeId(const std::string& service,
                            const std::string& trustDomain = kTrustDomain) {
  return connect::ServiceId{.trustDomain = trustDomain, .datacenter = "dc1", .service = service}
      .uri();
}

// ---- snapshots -------------------------------------------------------------------------------

inline connect::ProxySnapshot snapshotFor(const std::string& service, int publicPort, int appPort,
                                          const Leaf& leaf, const std::vector<std::string>& roots) {
  connect::ProxySnapshot s;
  s.proxyId = service + "-sidecar-proxy";
  s.service = service;
  s.serviceId = service + "-1";
  s.datacenter = "dc1";
  s.trustDomain = kTrustDomain;
  s.publicBindAddress = "127.0.0.1";
  s.publicPort = publicPort;
  s.localAppAddress = "127.0.0.1";
  s.localAppPort = appPort;
  s.localConnectTimeoutMs = 2000;
  s.leafCertPem = leaf.certPem;
  s.leafKeyPem = leaf.keyPem;
  s.rootPems = roots;
  return s;
}

inline connect::UpstreamSnapshot upstreamTo(const std::string& service, int bindPort,
                                            const std::vector<int>& endpointPorts) {
  connect::UpstreamSnapshot u;
  u.destinationName = service;
  u.localBindAddress = "127.0.0.1";
  u.localBindPort = bindPort;
  u.connectTimeoutMs = 1000;
  u.spiffeId = spiffeId(service);
  for (int p : endpointPorts) {
    u.endpoints.push_back(connect::UpstreamEndpoint{
        .address = "127.0.0.1", .port = p, .node = "node-" + std::to_string(p)});
  }
  return u;
}

inline connect::Intention intention(const std::string& source, const std::string& destination,
                                    connect::IntentionAction action) {
  connect::Intention i;
  i.sourceName = source;
  i.destinationName = destination;
  i.action = action;
  return i;
}

// ---- fake agent ------------------------------------------------------------------------------

// Serves GET /v1/agent/connect/proxy/<id> like the agent: X-Consul-Index, and with ?index=N a
// response is held until the proxy's snapshot index exceeds N or ?wait= runs out.
class FakeAgent {
 public:
  FakeAgent() : server_(io_, {}, [this](net::HttpRequest& r) { return serve(r); }) {
    auto port = server_.listen("127.0.0.1:0");
    EXPECT_TRUE(port.has_value());
    port_ = port.value_or(0);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeAgent() {
    io_.stop();
    thread_.join();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Publishes a snapshot (its Index is set to a new, higher X-Consul-Index).
  void publish(connect::ProxySnapshot s) {
    std::lock_guard lock(mu_);
    s.index = ++index_;
    entries_[s.proxyId] = Entry{index_, connect::toJson(s).dump()};
    wake();
  }
  // Publishes an arbitrary body under a new index (to test bad snapshots).
  void publishRaw(const std::string& proxyId, std::string body) {
    std::lock_guard lock(mu_);
    entries_[proxyId] = Entry{++index_, std::move(body)};
    wake();
  }
  int requests() const { return requests_.load(); }
  std::string lastToken() {
    std::lock_guard lock(mu_);
    return lastToken_;
  }

 private:
  struct Entry {
    uint64_t index = 0;
    std::string body;
  };

  void wake() {
    boost::asio::post(io_, [this] {
      for (auto* t : waiters_) t->cancel();
    });
  }

  Awaitable<net::HttpResponse> serve(net::HttpRequest& req) {
    ++requests_;
    const std::string prefix = "/v1/agent/connect/proxy/";
    if (!req.path.starts_with(prefix)) co_return net::HttpResponse::text(404, "no such path");
    std::string id = req.path.substr(prefix.size());
    uint64_t minIndex = req.has("index") ? std::stoull(req.param("index")) : 0;
    auto deadline = Clock::now() + 5min;
    if (req.has("wait")) {
      auto w = req.param("wait");
      deadline = Clock::now() + std::chrono::seconds(std::stoi(w.substr(0, w.size() - 1)));
    }
    {
      std::lock_guard lock(mu_);
      lastToken_ = req.header("x-consul-token");
    }
    for (;;) {
      Entry e;
      {
        std::lock_guard lock(mu_);
        auto it = entries_.find(id);
        if (it != entries_.end()) e = it->second;
      }
      if (e.index == 0) co_return net::HttpResponse::text(404, "unknown proxy " + id);
      if (e.index > minIndex || Clock::now() >= deadline) {
        auto r = net::HttpResponse::json(e.body);
        r.headers.emplace_back("X-Consul-Index", std::to_string(e.index));
        co_return r;
      }
      asio::steady_timer t(io_, deadline);
      waiters_.push_back(&t);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      waiters_.remove(&t);
    }
  }

  asio::io_context io_;
  net::HttpServer server_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::list<asio::steady_timer*> waiters_;  // io thread only
  std::mutex mu_;                           // guards entries_, index_, lastToken_
  std::map<std::string, Entry> entries_;
  uint64_t index_ = 0;
  std::string lastToken_;
  std::atomic<int> requests_{0};
};

// ---- echo server -----------------------------------------------------------------------------

// Echoes every byte back; on EOF from the client it finishes writing, half-closes, and closes
// once the client has closed too. Counts connections and the bytes it received.
class EchoServer {
 public:
  EchoServer() : acceptor_(io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    io_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int64_t bytesReceived() const { return bytes_.load(); }

 private:
  Awaitable<void> acceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ++connections_;
      asio::co_spawn(io_, session(std::move(s), bytes_), asio::detached);
    }
  }
  static Awaitable<void> session(tcp::socket s, std::atomic<int64_t>& bytes) {
    std::vector<char> buf(64 * 1024);
    boost::system::error_code ec;
    for (;;) {
      size_t n = co_await s.async_read_some(asio::buffer(buf),
                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      bytes += static_cast<int64_t>(n);
      co_await asio::async_write(s, asio::buffer(buf.data(), n),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
    if (ec == boost::asio::error::eof) {
      s.shutdown(tcp::socket::shutdown_send, ec);
      // Wait for the client's close before closing (so it sees our FIN, not a reset).
      co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::atomic<int64_t> bytes_{0};
};

// ---- blocking clients ------------------------------------------------------------------------

class Client {
 public:
  static std::optional<Client> connect(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return std::nullopt;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return Client(fd);
  }
  Client(Client&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Client& operator=(Client&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

  bool sendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads exactly `n` bytes within `timeout`; false on EOF, error or timeout.
  bool readExact(size_t n, std::string& out, std::chrono::milliseconds timeout = 10s) {
    out.clear();
    auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (out.size() < n) {
      if (!waitReadable(deadline)) return false;
      ssize_t got = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) return false;
      out.append(buf, static_cast<size_t>(got));
    }
    return true;
  }
  // True when the peer closed (EOF or reset) within `timeout` without sending anything more.
  bool closedByPeer(std::chrono::milliseconds timeout = 10s) {
    auto deadline = Clock::now() + timeout;
    char buf[4096];
    for (;;) {
      if (!waitReadable(deadline)) return false;
      ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
      if (got <= 0) return true;
    }
  }
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // A request/response exchange through an echo: true when `payload` came back intact.
  bool echo(const std::string& payload, std::chrono::milliseconds timeout = 10s) {
    std::string got;
    return sendAll(payload) && readExact(payload.size(), got, timeout) && got == payload;
  }

 private:
  explicit Client(int fd) : fd_(fd) {}
  bool waitReadable(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) == 1;
  }
  int fd_ = -1;
};

// One connection, one echo exchange, closed again.
inline bool echoOnce(int port, const std::string& payload,
                     std::chrono::milliseconds timeout = 10s) {
  auto c = Client::connect(port);
  return c && c->echo(payload, timeout);
}

inline std::string randomPayload(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& ch : s) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    ch = static_cast<char>(x);
  }
  return s;
}

// A blocking TLS 1.3 client presenting `leaf` (none when empty). handshake() returns whether
// the client side finished; with TLS 1.3 the server checks the client's certificate after that,
// so refusedAfterHandshake() tells whether the server then closed without answering.
class TlsClient {
 public:
  TlsClient(int port, const Leaf& leaf) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (!leaf.certPem.empty()) {
      BIO* b = BIO_new_mem_buf(leaf.certPem.data(), static_cast<int>(leaf.certPem.size()));
      X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
      SSL_CTX_use_certificate(ctx_, cert);
      while (X509* extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
        SSL_CTX_add0_chain_cert(ctx_, extra);
      }
      X509_free(cert);
      BIO_free(b);
      b = BIO_new_mem_buf(leaf.keyPem.data(), static_cast<int>(leaf.keyPem.size()));
      EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
      SSL_CTX_use_PrivateKey(ctx_, key);
      EVP_PKEY_free(key);
      BIO_free(b);
    }
    ERR_clear_error();
    auto c = Client::connect(port);
    if (!c) return;
    client_.emplace(std::move(*c));
    timeval tv{10, 0};
    ::setsockopt(client_->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, client_->fd());
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ERR_clear_error();
  }
  bool handshake() { return ssl_ && SSL_connect(ssl_) == 1; }
  // Sends a byte and expects the server to close (alert, EOF or reset) without echoing.
  bool refusedAfterHandshake() {
    if (SSL_write(ssl_, "x", 1) != 1) return true;
    char buf[16];
    int n = SSL_read(ssl_, buf, sizeof buf);
    ERR_clear_error();
    return n <= 0;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::optional<Client> client_;
};

// ---- an in-process proxy ---------------------------------------------------------------------

class TestProxy {
 public:
  TestProxy(const std::string& proxyId, const FakeAgent& agent, int concurrency = 1,
            std::chrono::milliseconds drainTimeout = 5s) {
    ProxyConfig c;
    c.proxyId = proxyId;
    c.agentHostPort = agent.address();
    c.adminAddr = "127.0.0.1:0";
    c.concurrency = concurrency;
    c.drainTimeout = drainTimeout;
    c.watchWait = 30s;
    c.retryInitial = 10ms;
    c.retryMax = 200ms;
    c.handshakeTimeout = 1s;
    c.token = "secret-token";
    auto p = Proxy::create(c);
    EXPECT_TRUE(p.has_value()) << p.error().message;
    proxy_ = std::move(*p);
    auto started = proxy_->start();
    EXPECT_TRUE(started.has_value());
    thread_ = std::thread([this] { proxy_->io().run(); });
  }
  ~TestProxy() { stop(); }

  // Drains (waiting for open connections up to the drain timeout) and stops. Returns how many
  // connections the drain cut.
  uint64_t stop() {
    if (!thread_.joinable()) return cut_;
    boost::asio::post(proxy_->io(), [this] {
      proxy_->drain([this](uint64_t cut) {
        cut_ = cut;
        proxy_->io().stop();
      });
    });
    thread_.join();
    proxy_->shutdown();
    return cut_;
  }
  // Starts a drain without waiting for it.
  void beginDrain() {
    boost::asio::post(proxy_->io(), [this] {
      proxy_->drain([this](uint64_t cut) {
        cut_ = cut;
        drained_ = true;
      });
    });
  }
  bool drained() const { return drained_.load(); }

  Proxy& proxy() { return *proxy_; }
  uint16_t adminPort() const { return proxy_->adminPort(); }

  net::HttpClientResponse get(const std::string& path) {
    net::HttpClientRequest r;
    r.url = "http://127.0.0.1:" + std::to_string(adminPort()) + path;
    r.timeout = 5s;
    auto res = net::httpRequest(r);
    EXPECT_TRUE(res.has_value()) << res.error().message;
    return res.value_or(net::HttpClientResponse{});
  }
  bool ready() { return get("/ready").status == 200; }
  bool waitReady(std::chrono::milliseconds timeout = 10s) {
    return waitUntil([&] { return ready(); }, timeout);
  }
  // The value of one Prometheus series, e.g. `taskmesh_proxy_denied_total{listener="public",
  // reason="intention"}`; -1 when absent.
  double metric(const std::string& series) {
    std::string body = get("/stats").body;
    size_t at = 0;
    while ((at = body.find(series + " ", at)) != std::string::npos) {
      if (at == 0 || body[at - 1] == '\n') return std::stod(body.substr(at + series.size() + 1));
      at += series.size();
    }
    return -1;
  }
  bool waitMetric(const std::string& series, double atLeast,
                  std::chrono::milliseconds timeout = 10s) {
    return waitUntil([&] { return metric(series) >= atLeast; }, timeout);
  }

 private:
  std::unique_ptr<Proxy> proxy_;
  std::thread thread_;
  std::atomic<uint64_t> cut_{0};
  std::atomic<bool> drained_{false};
};

inline std::string tls(const std::string& listener, const std::string& reason) {
  return "taskmesh_proxy_tls_handshake_failures_total{listener=\"" + listener + "\",reason=\"" +
         reason + "\"}";
}
inline std::string series(const std::string& name, const std::string& listener) {
  return name + "{listener=\"" + listener + "\"}";
}

}  // namespace taskmesh::proxy::testing
