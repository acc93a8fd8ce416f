#include "net/http_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

#include "base/duration.h"
#include "net/asio.h"
#include "net/http_server.h"

namespace taskmesh::net {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUserAgent = "taskmesh/0.1.0";

bool hasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<uint16_t> parsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// Resolves and connects one TCP stream before a deadline, then calls `onDone(connected)` once.
// Runs on `io`. The stream's own timer bounds the connect; a timer bounds name resolution.
// The owner keeps the Connector (and the stream) alive until onDone has run; onDone is moved
// out before it is called, so a shared_ptr it captures is released then.
class Connector {
 public:
  Connector(asio::io_context& io, beast::tcp_stream& stream, Clock::time_point deadline,
            std::string what)
      : io_(io), stream_(stream), deadline_(deadline), what_(std::move(what)) {}

  void start(const std::string& host, uint16_t port, std::function<void(bool)> onDone) {
    onDone_ = std::move(onDone);
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (!ec) {
      connect(std::vector<tcp::endpoint>{tcp::endpoint(ip, port)});
      return;
    }
    // Only names need these; most calls go to IP literals and never construct them.
    resolver_.emplace(io_);
    resolveTimer_.emplace(io_, deadline_);
    resolveTimer_->async_wait([this](boost::system::error_code e) {
      if (!e) {
        resolveTimedOut_ = true;
        resolver_->cancel();
      }
    });
    resolver_->async_resolve(
        host, std::to_string(port),
        [this, host](boost::system::error_code e, const tcp::resolver::results_type& results) {
          resolveTimer_->cancel();
          if (resolveTimedOut_) return failed(ErrorCode::kTimeout, "resolving " + host, e);
          if (e) return failed(ErrorCode::kUnavailable, "cannot resolve " + host, e);
          std::vector<tcp::endpoint> endpoints;
          for (const auto& r : results) endpoints.push_back(r.endpoint());
          connect(endpoints);
        });
  }

  // Records the first failure. kTimeout messages say how long the whole exchange was allowed.
  void fail(ErrorCode code, const std::string& step, const boost::system::error_code& ec) {
    if (error_) return;
    if (ec == beast::error::timeout) code = ErrorCode::kTimeout;
    std::string message = what_ + ": ";
    if (code == ErrorCode::kTimeout) {
      message += "timed out while " + step;
    } else {
      message += step + ": " + ec.message();
    }
    error_ = Error{code, std::move(message)};
  }
  void fail(ErrorCode code, const std::string& message) {
    if (!error_) error_ = Error{code, what_ + ": " + message};
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  void connect(const std::vector<tcp::endpoint>& endpoints) {
    stream_.expires_at(deadline_);
    stream_.async_connect(endpoints, [this](boost::system::error_code e, const tcp::endpoint&) {
      if (e) return failed(ErrorCode::kUnavailable, "connecting", e);
      boost::system::error_code ignored;
      stream_.socket().set_option(tcp::no_delay(true), ignored);
      finish(true);
    });
  }
  void failed(ErrorCode code, const std::string& step, const boost::system::error_code& ec) {
    fail(code, step, ec);
    finish(false);
  }
  void finish(bool connected) {
    auto done = std::move(onDone_);
    onDone_ = nullptr;
    if (done) done(connected);
  }

  asio::io_context& io_;
  beast::tcp_stream& stream_;
  Clock::time_point deadline_;
  std::string what_;
  std::optional<tcp::resolver> resolver_;
  std::optional<asio::steady_timer> resolveTimer_;
  bool resolveTimedOut_ = false;
  std::function<void(bool)> onDone_;
  std::optional<Error> error_;
};

void closeStream(beast::tcp_stream& stream) {
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
}

Result<bhttp::request<bhttp::string_body>> buildRequest(const HttpClientRequest& request,
                                                        const HttpUrl& url,
                                                        const std::string& what) {
  bhttp::verb verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    return makeError(ErrorCode::kInvalidArgument, what + ": unsupported method");
  }
  bhttp::request<bhttp::string_body> req{verb, url.target, 11};
  bool haveHost = false;
  bool haveAgent = false;
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || hasControl(name) || name.find(':') != std::string::npos ||
        name.find(' ') != std::string::npos || hasControl(value)) {
      return makeError(ErrorCode::kInvalidArgument, what + ": invalid header \"" + name + "\"");
    }
    std::string lowered = lower(name);
    haveHost = haveHost || lowered == "host";
    haveAgent = haveAgent || lowered == "user-agent";
    req.insert(name, value);
  }
  if (!haveHost) req.set(bhttp::field::host, url.hostHeader());
  if (!haveAgent) req.set(bhttp::field::user_agent, kUserAgent);
  req.body() = request.body;
  req.keep_alive(false);
  req.prepare_payload();
  return req;
}

HttpClientResponse toResponse(bhttp::response<bhttp::string_body>&& msg) {
  HttpClientResponse out;
  out.status = static_cast<int>(msg.result_int());
  out.reason = std::string(msg.reason());
  for (const auto& field : msg) {
    std::string name = lower(field.name_string());
    auto [it, inserted] = out.headers.emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  out.body = std::move(msg.body());
  return out;
}

}  // namespace

std::string HttpUrl::hostHeader() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

std::string HttpClientResponse::header(std::string_view lowerName) const {
  auto it = headers.find(std::string(lowerName));
  return it == headers.end() ? std::string() : it->second;
}

Result<HttpUrl> parseHttpUrl(std::string_view url) {
  auto bad = [&url](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument,
                     "invalid URL \"" + std::string(url) + "\": " + why);
  };
  if (hasControl(url) || url.find(' ') != std::string_view::npos) {
    return bad("contains spaces or control characters");
  }
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad("missing http:// or https:// scheme");
  std::string scheme = lower(url.substr(0, sep));
  if (scheme != "http" && scheme != "https") return bad("unsupported scheme \"" + scheme + "\"");
  std::string_view rest = url.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? "" : rest.substr(end);
  if (target.find('#') != std::string_view::npos) return bad("fragments are not allowed");
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  HttpUrl out;
  out.tls = scheme == "https";
  out.port = out.tls ? 443 : 80;
  std::string_view portText;
  bool hasPort = false;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after [IPv6] host");
      portText = after.substr(1);
      hasPort = true;
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    portText = authority.substr(colon + 1);
    hasPort = true;
    if (out.host.find(':') != std::string::npos) return bad("IPv6 hosts need [brackets]");
  } else {
    out.host = std::string(authority);
  }
  if (out.host.empty()) return bad("missing host");
  if (hasPort) {
    auto port = parsePort(portText);
    if (!port) return bad("invalid port \"" + std::string(portText) + "\"");
    out.port = *port;
  }
  if (target.empty()) {
    out.target = "/";
  } else {
    out.target = target[0] == '?' ? "/" + std::string(target) : std::string(target);
  }
  return out;
}

namespace {

// A TCP stream and its read buffer; shared by the exchanges of one HttpConnection.
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <typename Stream>
struct Conn;

template <>
struct Conn<beast::tcp_stream> {
  explicit Conn(asio::io_context& io) : stream(io) {}
  beast::tcp_stream& tcp() { return stream; }
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string origin;  // "host:port" it is connected to ("" = not connected)
  bool open = false;
};

template <>
struct Conn<TlsStream> {
  Conn(asio::io_context& io, std::shared_ptr<asio::ssl::context> ctx)
      : context(std::move(ctx)), stream(io, *context) {}
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }
  std::shared_ptr<asio::ssl::context> context;  // outlives the stream
  TlsStream stream;
  beast::flat_buffer buffer;
  std::string origin;
  bool open = false;
  std::string serverName;  // SNI and the name the certificate must carry
  bool verify = true;
};

// One request/response exchange. Owns everything the asynchronous operations touch; each
// completion handler holds a shared_ptr to it, so it lives until the last one has run. `done`
// is called exactly once, on the io_context's thread. On a reused keep-alive connection a
// failure before any byte of the answer arrived is reported as `staleConnection` instead, so
// the caller can retry on a new connection (the server had closed the idle one).
template <typename Stream>
struct Exchange : std::enable_shared_from_this<Exchange<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<Exchange<Stream>>::shared_from_this;

  Exchange(asio::io_context& io, std::shared_ptr<Conn<Stream>> conn, Clock::time_point deadline,
           std::string what, size_t maxBody, HttpDone done)
      : conn(std::move(conn)),
        connector(io, this->conn->tcp(), deadline, std::move(what)),
        deadline(deadline),
        tooLarge("response body over " + std::to_string(maxBody) + " bytes"),
        maxBody(maxBody),
        done(std::move(done)) {
    parser.header_limit(64 * 1024);
    parser.body_limit(maxBody);
  }

  void start(const HttpUrl& url, const std::string& origin) {
    if (conn->open && conn->origin == origin) {
      reused = true;
      return write();
    }
    closeConn();
    conn->origin = origin;
    auto self = shared_from_this();
    connector.start(url.host, url.port, [self](bool connected) {
      if (!connected) return self->finish();
      self->conn->open = true;
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->write();
      }
    });
  }

  // TLS: SNI, then the peer's chain against the trust store and its name against the host.
  void handshake() {
    if constexpr (kTls) {
      auto self = shared_from_this();
      SSL* ssl = conn->stream.native_handle();
      boost::system::error_code ec;
      auto ip = asio::ip::make_address(conn->serverName, ec);
      if (ec) SSL_set_tlsext_host_name(ssl, conn->serverName.c_str());  // no SNI for IPs
      if (conn->verify) {
        conn->stream.set_verify_mode(asio::ssl::verify_peer);
        conn->stream.set_verify_callback(asio::ssl::host_name_verification(conn->serverName));
      } else {
        conn->stream.set_verify_mode(asio::ssl::verify_none);
      }
      conn->tcp().expires_at(deadline);
      conn->stream.async_handshake(
          asio::ssl::stream_base::client, [self](boost::system::error_code e) {
            if (e) {
              return self->fail(ErrorCode::kUnavailable,
                                "TLS handshake with " + self->conn->serverName, e);
            }
            self->write();
          });
    }
  }

  void write() {
    auto self = shared_from_this();
    conn->tcp().expires_at(deadline);
    bhttp::async_write(conn->stream, req, [self](boost::system::error_code ec, size_t) {
      if (ec) return self->fail(ErrorCode::kUnavailable, "sending the request", ec);
      self->readHeader();
    });
  }

  void readHeader() {
    auto self = shared_from_this();
    conn->tcp().expires_at(deadline);
    bhttp::async_read_header(
        conn->stream, conn->buffer, parser, [self](boost::system::error_code e, size_t n) {
          self->gotBytes = self->gotBytes || n > 0;
          if (e == bhttp::error::header_limit) return self->fail("response header over 64 KiB");
          if (e == bhttp::error::body_limit) return self->fail(self->tooLarge);
          if (e) return self->fail(ErrorCode::kUnavailable, "reading the response", e);
          // Beast 1.74 does not always apply body_limit to a response's Content-Length (when
          // the header and body arrive in one buffer); check it here as well.
          if (self->parser.content_length() && *self->parser.content_length() > self->maxBody) {
            return self->fail(self->tooLarge);
          }
          self->readBody();
        });
  }

  void readBody() {
    auto self = shared_from_this();
    conn->tcp().expires_at(deadline);
    bhttp::async_read(conn->stream, conn->buffer, parser,
                      [self](boost::system::error_code e, size_t) {
                        if (e == bhttp::error::body_limit) return self->fail(self->tooLarge);
                        if (e)
                          return self->fail(ErrorCode::kUnavailable, "reading the response", e);
                        self->complete = true;
                        self->finish();
                      });
  }

  void fail(ErrorCode code, const std::string& step, const boost::system::error_code& ec) {
    if (reused && !gotBytes && ec != beast::error::timeout) staleConnection = true;
    connector.fail(code, step, ec);
    finish();
  }
  void fail(const std::string& message) {
    connector.fail(ErrorCode::kTooLarge, message);
    finish();
  }

  void closeConn() {
    // TLS too: the socket is closed without a close_notify (the request said Connection: close).
    if (conn->open) closeStream(conn->tcp());
    conn->open = false;
    conn->origin.clear();
    conn->buffer.clear();
  }

  void finish() {
    if (!done) return;
    HttpDone callback = std::move(done);
    done = nullptr;
    if (connector.error() || !complete) {
      closeConn();
      if (connector.error()) return callback(makeError(*connector.error()));
      return callback(makeError(ErrorCode::kInternal, "exchange did not complete"));
    }
    if (!keepOpen || !parser.get().keep_alive()) closeConn();
    callback(toResponse(parser.release()));
  }

  std::shared_ptr<Conn<Stream>> conn;
  Connector connector;
  Clock::time_point deadline;
  std::string tooLarge;
  size_t maxBody;
  HttpDone done;
  bhttp::request<bhttp::string_body> req;
  bhttp::response_parser<bhttp::string_body> parser;
  bool complete = false;
  bool keepOpen = false;  // an HttpConnection keeps the stream for the next request
  bool reused = false;
  bool gotBytes = false;
  bool staleConnection = false;
};

struct Prepared {
  HttpUrl url;
  std::string origin;
  bhttp::request<bhttp::string_body> req;
  std::string what;
};

Result<Prepared> prepare(const HttpClientRequest& request, bool keepAlive) {
  Prepared p;
  p.what = request.method + " " + request.url;
  auto url = parseHttpUrl(request.url);
  if (!url) return makeError(url.error().code, p.what + ": " + url.error().message);
  if (request.timeout.count() <= 0) {
    return makeError(ErrorCode::kInvalidArgument, p.what + ": timeout must be positive");
  }
  auto req = buildRequest(request, *url, p.what);
  if (!req) return makeError(req.error());
  req->keep_alive(keepAlive);
  p.url = std::move(*url);
  p.origin = p.url.host + ":" + std::to_string(p.url.port);
  p.req = std::move(*req);
  return p;
}

template <typename Stream>
std::shared_ptr<Exchange<Stream>> makeExchange(asio::io_context& io,
                                               std::shared_ptr<Conn<Stream>> conn,
                                               const HttpClientRequest& request, Prepared& p,
                                               HttpDone done) {
  auto exchange = std::make_shared<Exchange<Stream>>(
      io, std::move(conn), Clock::now() + request.timeout,
      p.what + " (timeout " + formatDuration(request.timeout) + ")", request.maxResponseBytes,
      std::move(done));
  exchange->req = p.req;
  if (exchange->req.method() == bhttp::verb::head) exchange->parser.skip(true);  // no body
  return exchange;
}

using PlainConn = Conn<beast::tcp_stream>;

// Client TLS contexts, one per CA file ("" = the system's trust store, which honours
// SSL_CERT_FILE / SSL_CERT_DIR), shared by every request.
Result<std::shared_ptr<asio::ssl::context>> clientContext(const std::string& caFile) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<asio::ssl::context>> contexts;
  std::lock_guard lock(mu);
  if (auto it = contexts.find(caFile); it != contexts.end()) return it->second;
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (caFile.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(caFile, ec);
  }
  if (ec) {
    return makeError(ErrorCode::kInvalidArgument,
                     "cannot load CA certificates" +
                         (caFile.empty() ? std::string() : " from " + caFile) + ": " +
                         ec.message());
  }
  contexts.emplace(caFile, ctx);
  return ctx;
}

}  // namespace

struct HttpConnection::Impl {
  explicit Impl(asio::io_context& io) : io(io), conn(std::make_shared<PlainConn>(io)) {}
  asio::io_context& io;
  std::shared_ptr<PlainConn> conn;
  bool busy = false;
};

HttpConnection::HttpConnection(asio::io_context& io) : impl_(std::make_shared<Impl>(io)) {}

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::close() {
  if (impl_->conn->open) closeStream(impl_->conn->stream);
  impl_->conn->open = false;
  impl_->conn->origin.clear();
}

void HttpConnection::request(const HttpClientRequest& request, HttpDone done) {
  auto fail = [this, &done](Error e) {
    asio::post(impl_->io, [done = std::move(done), e = std::move(e)] { done(makeError(e)); });
  };
  if (impl_->busy) {
    return fail(Error{ErrorCode::kInternal, "HttpConnection: a request is already in flight"});
  }
  auto prepared = prepare(request, true);
  if (!prepared) return fail(prepared.error());
  if (prepared->url.tls) {
    return fail(
        Error{ErrorCode::kInvalidArgument,
              prepared->what + ": HttpConnection is for http:// only; use asyncHttpRequest"});
  }
  auto p = std::make_shared<Prepared>(std::move(*prepared));
  impl_->busy = true;
  std::weak_ptr<Impl> weak = impl_;
  // First try: the open connection if there is one. If the server had closed it, once more
  // on a new connection.
  // The attempt function refers to itself weakly: the exchange it starts holds the only strong
  // reference, so nothing leaks when the io_context is destroyed with the request in flight.
  auto attempt = std::make_shared<std::function<void(bool)>>();
  std::weak_ptr<std::function<void(bool)>> self = attempt;
  *attempt = [weak, p, request, done = std::move(done), self](bool retry) mutable {
    auto attempt = self.lock();
    if (!attempt) return;
    auto impl = weak.lock();
    if (!impl) {
      auto finalDone = std::move(done);
      auto error = makeError(ErrorCode::kUnavailable, p->what + ": connection closed");
      *attempt = nullptr;  // destroys this lambda: touch no capture after this line
      return finalDone(std::move(error));
    }
    auto ex = makeExchange(impl->io, impl->conn, request, *p, nullptr);
    ex->keepOpen = true;
    auto exWeak = std::weak_ptr<Exchange<beast::tcp_stream>>(ex);
    ex->done = [weak, attempt, done, retry, exWeak](Result<HttpClientResponse> r) mutable {
      auto live = exWeak.lock();
      bool stale = live && live->staleConnection;
      auto impl = weak.lock();
      if (!r && stale && !retry && impl) return (*attempt)(true);
      if (impl) impl->busy = false;
      auto finalDone = std::move(done);
      *attempt = nullptr;  // done: drop the attempt function and what it holds
      finalDone(std::move(r));
    };
    ex->start(p->url, p->origin);
  };
  (*attempt)(false);
}

void asyncHttpRequest(asio::io_context& io, const HttpClientRequest& request, HttpDone done) {
  auto prepared = prepare(request, false);
  if (!prepared) {
    asio::post(io, [done = std::move(done), e = prepared.error()] { done(makeError(e)); });
    return;
  }
  if (prepared->url.tls) {
    auto ctx = clientContext(request.caFile);
    if (!ctx) {
      asio::post(io, [done = std::move(done), e = ctx.error()] { done(makeError(e)); });
      return;
    }
    auto conn = std::make_shared<Conn<TlsStream>>(io, *ctx);
    conn->serverName = request.tlsServerName.empty() ? prepared->url.host : request.tlsServerName;
    conn->verify = !request.tlsSkipVerify;
    auto exchange = makeExchange(io, conn, request, *prepared, std::move(done));
    exchange->start(prepared->url, prepared->origin);
    return;
  }
  auto exchange =
      makeExchange(io, std::make_shared<PlainConn>(io), request, *prepared, std::move(done));
  exchange->start(prepared->url, prepared->origin);
}

Awaitable<Result<HttpClientResponse>> fetch(asio::io_context& io,
                                            const HttpClientRequest& request) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result<HttpClientResponse>)>(
      [&io](auto handler, HttpClientRequest r) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        asyncHttpRequest(io, r,
                         [h](Result<HttpClientResponse> result) { (*h)(std::move(result)); });
      },
      asio::use_awaitable, request);
}

Result<HttpClientResponse> httpRequest(const HttpClientRequest& request) {
  asio::io_context io;
  std::optional<Result<HttpClientResponse>> out;
  asyncHttpRequest(io, request, [&out](Result<HttpClientResponse> r) { out = std::move(r); });
  io.run();
  if (!out)
    return makeError(ErrorCode::kInternal,
                     request.method + " " + request.url + ": exchange did not complete");
  return std::move(*out);
}

void asyncDialTcp(asio::io_context& io, const std::string& address,
                  std::chrono::milliseconds timeout, std::function<void(Result<void>)> done) {
  auto fail = [&io, &done](Error e) {
    asio::post(io, [done = std::move(done), e = std::move(e)] { done(makeError(e)); });
  };
  auto hp = splitHostPort(address);
  if (!hp) return fail(hp.error());
  if (hp->second == 0) {
    return fail(Error{ErrorCode::kInvalidArgument, "invalid port in address \"" + address + "\""});
  }
  if (timeout.count() <= 0) {
    return fail(
        Error{ErrorCode::kInvalidArgument, "dial " + address + ": timeout must be positive"});
  }
  struct Dial {
    Dial(asio::io_context& io, Clock::time_point deadline, std::string what)
        : stream(io), connector(io, stream, deadline, std::move(what)) {}
    beast::tcp_stream stream;
    Connector connector;
    std::function<void(Result<void>)> done;
    void finish(bool connected) {
      if (!done) return;
      closeStream(stream);
      auto callback = std::move(done);
      done = nullptr;
      if (connector.error()) return callback(makeError(*connector.error()));
      if (!connected) return callback(makeError(ErrorCode::kInternal, "dial did not complete"));
      callback({});
    }
  };
  auto dial = std::make_shared<Dial>(
      io, Clock::now() + timeout, "dial " + address + " (timeout " + formatDuration(timeout) + ")");
  dial->done = std::move(done);
  dial->connector.start(hp->first, hp->second, [dial](bool connected) { dial->finish(connected); });
}

Result<void> dialTcp(const std::string& address, std::chrono::milliseconds timeout) {
  asio::io_context io;
  std::optional<Result<void>> out;
  asyncDialTcp(io, address, timeout, [&out](Result<void> r) { out = std::move(r); });
  io.run();
  if (!out) return makeError(ErrorCode::kInternal, "dial " + address + ": did not complete");
  return std::move(*out);
}

}  // namespace taskmesh::net
