#include "net/http_server.h"

#include <netinet/in.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "base/log.h"

namespace taskmesh::net {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("http");
  return l;
}

bhttp::response<bhttp::string_body> toBeast(HttpResponse&& r, unsigned version, bool keepAlive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
  res.set(bhttp::field::server, "taskmesh");
  res.set(bhttp::field::content_type, r.contentType);
  for (auto& [k, v] : r.headers) res.set(k, v);
  // 1xx, 204 and 304 answers carry no body (Beast refuses to write one).
  bool bodyless = (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304;
  if (!bodyless) res.body() = std::move(r.body);
  res.keep_alive(keepAlive);
  res.prepare_payload();
  return res;
}
}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpServerOptions o, HttpHandler h)
      : io(io), options(o), handler(std::move(h)), acceptor(io) {}

  Awaitable<void> acceptLoop() {
    auto self = shared_from_this();
    while (acceptor.is_open()) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        logger()->warn("accept failed error=\"{}\"", ec.message());
        // EMFILE and friends: back off briefly instead of spinning.
        asio::steady_timer t(io, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }

  Awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    boost::system::error_code ec;
    std::string remote;
    if (auto ep = socket.remote_endpoint(ec); !ec)
      remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool first = true;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(options.maxBodyBytes);
      stream.expires_after(first ? options.readTimeout : options.idleTimeout);
      first = false;
      co_await bhttp::async_read(stream, buffer, parser,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        // Named locals, not temporaries, as coroutine arguments (g++ 12 coroutine bug).
        if (ec == bhttp::error::body_limit) {
          std::string text =
              "Request body too large, max size: " + std::to_string(options.maxBodyBytes) +
              " bytes";
          co_await writeError(stream, 413, text);
        } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                   ec != asio::error::eof && ec != asio::error::connection_reset &&
                   ec != asio::error::operation_aborted) {
          std::string text = "Bad request: " + ec.message();
          co_await writeError(stream, 400, text);
        }
        break;
      }
      auto& msg = parser.get();
      HttpRequest req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.remoteAddress = remote;
      for (const auto& field : msg) {
        std::string name(field.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers[name] = std::string(field.value());
      }
      req.body = std::move(msg.body());
      bool keepAlive = msg.keep_alive();
      unsigned version = msg.version();
      HttpResponse response;
      if (auto parsed = parseTarget(req.target)) {
        req.path = std::move(parsed->first);
        req.query = std::move(parsed->second);
        // The handler may block (blocking queries); it enforces its own deadline.
        stream.expires_never();
        response = co_await handler(req);
      } else {
        response = HttpResponse::text(400, parsed.error().message);
      }
      auto res = toBeast(std::move(response), version, keepAlive);
      stream.expires_after(options.writeTimeout);
      co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keepAlive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
  }

  Awaitable<void> writeError(beast::tcp_stream& stream, int status, const std::string& text) {
    boost::system::error_code ec;
    auto res = toBeast(HttpResponse::text(status, text), 11, false);
    stream.expires_after(options.writeTimeout);
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::io_context& io;
  HttpServerOptions options;
  HttpHandler handler;
  tcp::acceptor acceptor;
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_shared<Impl>(io, options, std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

Result<std::pair<std::string, uint16_t>> splitHostPort(const std::string& address,
                                                       uint16_t defaultPort) {
  std::string host = address;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "invalid address \"" + address + "\"");
    }
    host = address.substr(1, close - 1);
    if (close + 1 < address.size()) {
      if (address[close + 1] != ':') {
        return makeError(ErrorCode::kInvalidArgument, "invalid address \"" + address + "\"");
      }
      port = address.substr(close + 2);
    }
  } else if (size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "missing host in address \"" + address + "\"");
  }
  if (port.empty()) {
    if (defaultPort == 0 && address.find(':') == std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "missing port in address \"" + address + "\"");
    }
    return std::make_pair(host, defaultPort);
  }
  unsigned long value = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || value > 65535) {
      return makeError(ErrorCode::kInvalidArgument, "invalid port in address \"" + address + "\"");
    }
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 65535) {
    return makeError(ErrorCode::kInvalidArgument, "invalid port in address \"" + address + "\"");
  }
  return std::make_pair(host, static_cast<uint16_t>(value));
}

Result<uint16_t> HttpServer::listen(const std::string& address) {
  auto hp = splitHostPort(address);
  if (!hp) return makeError(hp.error().code, hp.error().message);
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(hp->first, ec);
  if (ec) {
    return makeError(ErrorCode::kInvalidArgument, "invalid IP address \"" + hp->first + "\"");
  }
  tcp::endpoint ep(ip, hp->second);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && impl_->options.freeBind) {
    acc.set_option(asio::detail::socket_option::boolean<IPPROTO_IP, IP_FREEBIND>(true), ec);
  }
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return makeError(ErrorCode::kIo, "cannot listen on " + address + ": " + ec.message());
  }
  uint16_t port = acc.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->acceptLoop(), asio::detached);
  return port;
}

void HttpServer::stop() {
  boost::system::error_code ec;
  if (impl_ && impl_->acceptor.is_open()) impl_->acceptor.close(ec);
}

}  // namespace taskmesh::net
