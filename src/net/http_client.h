#pragma once
// A small HTTP/1.1 client: asynchronous on a caller's io_context (the agent: its calls to the
// servers, HTTP checks, forwarded requests) and synchronous for the command-line tools
// (discover-servers, the AWS clients, the metadata endpoint). Plain http only:
// "http[s]://host[:port][/path][?query]" (https: OpenSSL, verified against a trust store).
//
// Every call is bounded by its timeout: connecting, writing the request and reading the
// response together must finish before one deadline. Name resolution of a host that is not an
// IP literal goes through the system resolver, which is bounded by its own (resolv.conf)
// timeouts as well as ours.
//
// Threads: the synchronous calls run a private io_context on the calling thread; callable from
// any thread, never from inside a running io_context handler (they block). The asynchronous
// calls run on the given io_context and call back on its thread, exactly once.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "net/asio.h"

namespace taskmesh::net {

struct HttpUrl {
  bool tls = false;    // https
  std::string host;    // name or IP literal, IPv6 without brackets
  uint16_t port = 80;  // 80 (443 for https) when the URL names none
  std::string target;  // path and query as written, at least "/"

  // The Host header for this URL: "host" on the scheme's default port, else "host:port"
  // ([v6]:port).
  std::string hostHeader() const;
};

// Parses an http:// or https:// URL. Other schemes, user info, fragments, empty hosts, bad ports
// and control characters are rejected with an error that names the URL.
Result<HttpUrl> parseHttpUrl(std::string_view url);

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  // Sent as given, in order. Host is added from the URL unless present; User-Agent likewise.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // for the whole exchange
  size_t maxResponseBytes = 16 << 20;       // larger bodies fail with kTooLarge
  // https: the peer's chain is verified against `caFile` (PEM; "" = the system trust store,
  // SSL_CERT_FILE / SSL_CERT_DIR honoured) and its name against the URL's host (or
  // `tlsServerName`), unless tlsSkipVerify. TLS 1.2 or newer.
  std::string caFile;
  std::string tlsServerName;
  bool tlsSkipVerify = false;
};

struct HttpClientResponse {
  int status = 0;
  std::string reason;                          // "OK", "Not Found", ... as the server sent it
  std::map<std::string, std::string> headers;  // lower-case names; repeated fields joined by ", "
  std::string body;

  // Value of `lowerName`, or "" when absent.
  std::string header(std::string_view lowerName) const;
};

// Performs one request on a fresh connection ("Connection: close"). Any HTTP status is a value;
// errors are transport failures, named with the method and URL:
//   kInvalidArgument bad URL, method or header; kTimeout the deadline passed;
//   kUnavailable resolve/connect/write/read failed; kTooLarge response over the limit.
Result<HttpClientResponse> httpRequest(const HttpClientRequest& request);

using HttpDone = std::function<void(Result<HttpClientResponse>)>;

// The same exchange, asynchronous: `done` runs on `io` once the response is read or the
// exchange failed (never inline, even for a bad URL).
void asyncHttpRequest(asio::io_context& io, const HttpClientRequest& request, HttpDone done);

// Coroutine form of asyncHttpRequest (the request is copied; temporaries are fine).
Awaitable<Result<HttpClientResponse>> fetch(asio::io_context& io, const HttpClientRequest& request);

// A keep-alive connection for repeated requests to one origin (the agent's HTTP checks: a
// new TCP connection per run costs more CPU than the request itself). One request at a time;
// a request to another origin replaces the connection. When the server has closed the idle
// connection, the request is retried once on a new one, so that is never reported as an
// error; any other failure closes the connection and is reported. Runs on `io`; `done` is
// called there exactly once. Destroying the HttpConnection closes the connection.
class HttpConnection {
 public:
  explicit HttpConnection(asio::io_context& io);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void request(const HttpClientRequest& request, HttpDone done);
  void close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Opens one TCP connection to "host:port" within `timeout` and closes it again. Errors name the
// address: kInvalidArgument for a malformed address, kTimeout, kUnavailable (refused, no route).
Result<void> dialTcp(const std::string& address, std::chrono::milliseconds timeout);
void asyncDialTcp(asio::io_context& io, const std::string& address,
                  std::chrono::milliseconds timeout, std::function<void(Result<void>)> done);

}  // namespace taskmesh::net
