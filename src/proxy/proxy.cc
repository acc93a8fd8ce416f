#include "proxy/proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <charconv>
#include <cstring>
#include <random>

#include "base/json.h"
#include "base/log.h"
#include "proxy/admin.h"

namespace taskmesh::proxy {
namespace {

using boost::system::error_code;
using nlohmann::json;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("proxy");
  return l;
}

constexpr std::chrono::milliseconds kRebindInterval{1000};
constexpr std::chrono::milliseconds kDrainPoll{20};
constexpr std::chrono::milliseconds kAbortGrace{2000};

// A listening TCP socket on address:port with SO_REUSEPORT (one per worker). Returns the fd.
Result<int> openListener(const std::string& address, int port, bool* v6) {
  error_code ec;
  auto ip = boost::asio::ip::make_address(address, ec);
  if (ec) {
    return makeError(ErrorCode::kInvalidArgument,
                     "listener address \"" + address + "\" is not an IP address");
  }
  std::string where = address + ":" + std::to_string(port);
  *v6 = ip.is_v6();
  int fd = ::socket(ip.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return makeError(ErrorCode::kIo, "socket for " + where + ": " + strerror(errno));
  int one = 1;
  sockaddr_storage sa{};
  socklen_t len = 0;
  if (ip.is_v6()) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&sa);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    auto bytes = ip.to_v6().to_bytes();
    std::memcpy(&s6->sin6_addr, bytes.data(), bytes.size());
    len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&sa);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    auto bytes = ip.to_v4().to_bytes();
    std::memcpy(&s4->sin_addr, bytes.data(), bytes.size());
    len = sizeof(sockaddr_in);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    std::string reason = strerror(errno);
    ::close(fd);
    return makeError(ErrorCode::kIo, "cannot listen on " + where + ": " + reason);
  }
  return fd;
}

std::string percentEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

Proxy::Proxy(const ProxyConfig& config)
    : config_(config),
      stats_(config.concurrency),
      adminServer_(io_, net::HttpServerOptions{.readTimeout = std::chrono::seconds(10)},
                   [this](net::HttpRequest& r) { return admin(r); }),
      rebindTimer_(io_) {}

Proxy::~Proxy() { shutdown(); }

Result<std::unique_ptr<Proxy>> Proxy::create(const ProxyConfig& config) {
  std::unique_ptr<Proxy> p(new Proxy(config));
  auto port = p->adminServer_.listen(config.adminAddr);
  if (!port) return makeError(port.error().code, "-admin-addr: " + port.error().message);
  p->adminPort_ = *port;
  return p;
}

Result<void> Proxy::start() {
  if (started_) return {};
  started_ = true;
  for (int i = 0; i < config_.concurrency; ++i) {
    auto w = std::make_unique<Worker>(i, config_.handshakeTimeout);
    if (!w->start()) return makeError(ErrorCode::kInternal, "cannot start worker thread");
    workers_.push_back(std::move(w));
  }
  asio::co_spawn(io_, watch(), asio::detached);
  logger()->info("proxy started proxy_id={} agent={} admin=127.0.0.1:{} workers={}",
                 config_.proxyId, config_.agentHostPort, adminPort_, config_.concurrency);
  return {};
}

void Proxy::shutdown() {
  for (auto& w : workers_) w->stop();
  workers_.clear();
  adminServer_.stop();
}

// ---- config ----------------------------------------------------------------------------------

Awaitable<void> Proxy::watch() {
  uint64_t index = 0;
  auto delay = config_.retryInitial;
  std::minstd_rand rng(std::random_device{}());
  auto waitSeconds = std::chrono::duration_cast<std::chrono::seconds>(config_.watchWait).count();
  while (!draining_) {
    net::HttpClientRequest req;
    req.url = "http://" + config_.agentHostPort + "/v1/agent/connect/proxy/" +
              percentEncode(config_.proxyId) + "?index=" + std::to_string(index) +
              "&wait=" + std::to_string(std::max<int64_t>(waitSeconds, 1)) + "s";
    if (!config_.token.empty()) req.headers.emplace_back("X-Consul-Token", config_.token);
    // The agent holds the request up to `wait` plus its jitter (wait/16).
    req.timeout = config_.watchWait + config_.watchWait / 16 + std::chrono::seconds(10);
    auto response = co_await net::fetch(io_, req);
    if (draining_) co_return;
    auto outcome = handlePoll(response, index);
    if (outcome) {
      delay = config_.retryInitial;
      continue;
    }
    stats_.configErrors.fetch_add(1, std::memory_order_relaxed);
    logger()->warn("config poll failed proxy_id={} error=\"{}\" retry_in={}ms", config_.proxyId,
                   outcome.error().message, delay.count());
    std::uniform_int_distribution<long> pick(delay.count() / 2, delay.count());
    asio::steady_timer t(io_, std::chrono::milliseconds(pick(rng)));
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    delay = std::min(delay * 2, config_.retryMax);
  }
}

Result<void> Proxy::handlePoll(const Result<net::HttpClientResponse>& response, uint64_t& index) {
  if (!response) return makeError(response.error());
  if (response->status != 200) {
    std::string body = response->body.substr(0, 200);
    return makeError(ErrorCode::kUnavailable, "agent answered " + std::to_string(response->status) +
                                                  ": " + net::escapeInvalidUtf8(body));
  }
  uint64_t newIndex = 0;
  std::string header = response->header("x-consul-index");
  auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), newIndex);
  if (header.empty() || ec != std::errc() || end != header.data() + header.size()) {
    return makeError(ErrorCode::kUnavailable, "agent answered without a valid X-Consul-Index");
  }
  if (newIndex == index && current_) return {};  // the wait ran out: nothing changed
  // A zero index would turn the next poll into a busy loop; an index that went backwards
  // (agent restart) is taken as is.
  index = std::max<uint64_t>(newIndex, 1);
  auto j = parseJsonBounded(response->body);
  if (!j) return makeError(ErrorCode::kInvalidArgument, "snapshot: " + j.error().message);
  auto snapshot = connect::proxySnapshotFromJson(*j);
  if (!snapshot) return makeError(snapshot.error());
  if (snapshot->proxyId != config_.proxyId) {
    return makeError(ErrorCode::kInvalidArgument, "snapshot is for proxy \"" + snapshot->proxyId +
                                                      "\", not \"" + config_.proxyId + "\"");
  }
  snapshot->index = newIndex;
  return apply(std::move(*snapshot));
}

Result<void> Proxy::apply(connect::ProxySnapshot snapshot) {
  if (draining_) return makeError(ErrorCode::kUnavailable, "draining");
  uint64_t index = snapshot.index;
  auto runtime =
      buildRuntime(std::move(snapshot), registry_, std::chrono::system_clock::now(),
                   {.workers = config_.concurrency, .tlsResumption = config_.tlsResumption});
  if (!runtime) {
    return makeError(runtime.error().code, "snapshot rejected: " + runtime.error().message);
  }
  current_ = std::move(*runtime);
  // Runtime first: a worker never accepts on a new listener before it has the new Runtime.
  for (auto& w : workers_) w->setRuntime(current_);
  reconcileListeners();
  registry_.prune();
  stats_.configUpdates.fetch_add(1, std::memory_order_relaxed);
  stats_.snapshotIndex.store(index, std::memory_order_relaxed);
  size_t endpoints = 0;
  for (const auto& u : current_->upstreams) endpoints += u.endpoints.size();
  logger()->info(
      "snapshot applied index={} service={} public={}:{} upstreams={} endpoints={} "
      "intentions={} default_allow={}",
      index, current_->snapshot.service, current_->snapshot.publicBindAddress,
      current_->snapshot.publicPort, current_->upstreams.size(), endpoints,
      current_->snapshot.intentions.size(), current_->snapshot.defaultAllow);
  return {};
}

// ---- listeners -------------------------------------------------------------------------------

void Proxy::reconcileListeners() {
  if (!current_ || draining_) return;
  const auto& s = current_->snapshot;
  std::vector<Wanted> wanted;
  auto key = [](const std::string& name, const std::string& addr, int port) {
    return name + "|" + addr + ":" + std::to_string(port);
  };
  wanted.push_back(Wanted{key(kPublicListener, s.publicBindAddress, s.publicPort), kPublicListener,
                          s.publicBindAddress, s.publicPort, ListenerKind::kPublic});
  for (const auto& u : current_->upstreams) {
    const auto& c = *u.config;
    wanted.push_back(Wanted{key(u.listenerName, c.localBindAddress, c.localBindPort),
                            u.listenerName, c.localBindAddress, c.localBindPort,
                            ListenerKind::kUpstream});
  }
  // Removed first, so that a port that moved between listeners is free again.
  for (auto it = bound_.begin(); it != bound_.end();) {
    bool keep = std::any_of(wanted.begin(), wanted.end(),
                            [&](const Wanted& w) { return w.key == it->first; });
    if (keep) {
      ++it;
      continue;
    }
    for (auto& w : workers_) w->removeListener(it->first);
    logger()->info("listener removed name={}", it->second.name);
    it = bound_.erase(it);
  }
  bool all = true;
  for (const auto& w : wanted) {
    if (bound_.contains(w.key)) continue;
    if (auto ok = bindEverywhere(w); !ok) {
      all = false;
      stats_.configErrors.fetch_add(1, std::memory_order_relaxed);
      logger()->error("listener name={} error=\"{}\" retry_in={}ms", w.name, ok.error().message,
                      kRebindInterval.count());
      continue;
    }
    bound_[w.key] = Bound{w.name, w.kind};
    logger()->info("listener bound name={} address={}:{}", w.name, w.address, w.port);
  }
  allBound_ = all;
  updateReady();
  if (!all) {
    rebindTimer_.expires_after(kRebindInterval);
    rebindTimer_.async_wait([this](const error_code& ec) {
      if (!ec) reconcileListeners();
    });
  }
}

Result<void> Proxy::bindEverywhere(const Wanted& wanted) {
  std::vector<int> fds;
  bool v6 = false;
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto fd = openListener(wanted.address, wanted.port, &v6);
    if (!fd) {
      for (int f : fds) ::close(f);
      return makeError(fd.error());
    }
    fds.push_back(*fd);
  }
  ListenerStats* stats = stats_.listener(wanted.name);
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->addListener(ListenerSpec{wanted.key, wanted.name, wanted.kind, stats}, fds[i], v6);
  }
  return {};
}

void Proxy::updateReady() {
  stats_.ready.store(current_ && allBound_ && !draining_, std::memory_order_relaxed);
}

// ---- drain -----------------------------------------------------------------------------------

void Proxy::drain(std::function<void(uint64_t)> done) {
  if (drainFinished_) {
    asio::post(io_, [done = std::move(done), cut = drainCut_] { done(cut); });
    return;
  }
  drainDone_.push_back(std::move(done));
  if (draining_) return;
  draining_ = true;
  updateReady();
  rebindTimer_.cancel();
  for (auto& w : workers_) w->closeListeners();
  bound_.clear();
  logger()->info("draining active={} timeout={}ms", stats_.activeConnections(),
                 config_.drainTimeout.count());
  asio::co_spawn(io_, drainLoop(), asio::detached);
}

Awaitable<void> Proxy::drainLoop() {
  asio::steady_timer t(io_);
  error_code ec;
  auto deadline = std::chrono::steady_clock::now() + config_.drainTimeout;
  while (stats_.activeConnections() > 0 && std::chrono::steady_clock::now() < deadline) {
    t.expires_after(kDrainPoll);
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  uint64_t cut = stats_.activeConnections();
  if (cut > 0) {
    logger()->warn("drain timeout: closing {} connection(s)", cut);
    for (auto& w : workers_) w->abortConnections();
    auto grace = std::chrono::steady_clock::now() + kAbortGrace;
    while (stats_.activeConnections() > 0 && std::chrono::steady_clock::now() < grace) {
      t.expires_after(kDrainPoll);
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  } else {
    logger()->info("drained: every connection finished");
  }
  drainFinished_ = true;
  drainCut_ = cut;
  auto callbacks = std::move(drainDone_);
  for (auto& done : callbacks) done(cut);
}

// ---- admin -----------------------------------------------------------------------------------

Awaitable<net::HttpResponse> Proxy::admin(net::HttpRequest& req) {
  bool get = req.method == "GET";
  if (req.path == "/ready" && get) {
    if (ready()) co_return net::HttpResponse::text(200, "LIVE");
    std::string why = draining_ ? "DRAINING" : !current_ ? "NO SNAPSHOT" : "LISTENERS NOT BOUND";
    co_return net::HttpResponse::text(503, why);
  }
  if (req.path == "/stats" && get) {
    net::HttpResponse r = net::HttpResponse::text(200, stats_.prometheus());
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    co_return r;
  }
  if (req.path == "/config_dump" && get) {
    if (!current_) co_return net::HttpResponse::text(503, "no snapshot applied yet");
    co_return net::HttpResponse::json(configDump(*current_).dump(2));
  }
  if (req.path == "/clusters" && get) {
    if (!current_) co_return net::HttpResponse::json("[]");
    co_return net::HttpResponse::json(
        clusters(*current_, std::chrono::steady_clock::now()).dump(2));
  }
  co_return net::HttpResponse::text(404, "not found");
}

// ---- the subcommand --------------------------------------------------------------------------

int run(const ProxyOptions& options) {
  if (!log::setLevel(options.logLevel)) {
    logger()->error("-log-level: unknown level \"{}\"", options.logLevel);
    return 1;
  }
  auto config = resolveProxyConfig(options, ProxyEnvironment::fromProcess());
  if (!config) {
    logger()->error("{}", config.error().message);
    return 1;
  }
  auto proxy = Proxy::create(*config);
  if (!proxy) {
    logger()->error("{}", proxy.error().message);
    return 1;
  }
  Proxy& p = **proxy;
  if (auto ok = p.start(); !ok) {
    logger()->error("{}", ok.error().message);
    return 1;
  }
  asio::signal_set signals(p.io(), SIGINT, SIGTERM);
  signals.async_wait([&p](const error_code& ec, int sig) {
    if (ec) return;
    logger()->info("signal={} draining", sig);
    p.drain([&p](uint64_t cut) {
      logger()->info("exiting cut={}", cut);
      p.io().stop();
    });
  });
  p.io().run();
  p.shutdown();
  return 0;
}

}  // namespace taskmesh::proxy
