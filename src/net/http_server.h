#pragma once
// HTTP/1.1 server over Boost.Beast with one coroutine per connection.
//
// Thread: every connection and the handler run on the io_context given at construction;
// run that io_context on one thread and the handler never races with itself.
// Limits: request header 64 KiB, body `maxBodyBytes` (413 beyond it), a whole request must
// arrive within `readTimeout` (slow and half-open clients are closed), an idle keep-alive
// connection is closed after `idleTimeout`, a response must be written within `writeTimeout`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "net/asio.h"
#include "net/http.h"

namespace taskmesh::net {

using HttpHandler = std::function<Awaitable<HttpResponse>(HttpRequest&)>;

struct HttpServerOptions {
  size_t maxBodyBytes = 1 << 20;
  std::chrono::milliseconds readTimeout{30000};
  std::chrono::milliseconds idleTimeout{75000};
  std::chrono::milliseconds writeTimeout{30000};
  // Bind even if the address is not (yet) configured on any interface (IP_FREEBIND): the
  // local ECS runtime listens on its bridge's gateway address before the bridge exists.
  bool freeBind = false;
};

class HttpServer {
 public:
  HttpServer(asio::io_context& io, HttpServerOptions options, HttpHandler handler);
  ~HttpServer();

  // Binds and starts accepting. `address` is "IP:PORT" (port 0 picks one). Returns the
  // bound port.
  Result<uint16_t> listen(const std::string& address);
  // Stops accepting; open connections finish their current request.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Splits "host:port" (IPv4, [IPv6] or name). Errors name the input.
Result<std::pair<std::string, uint16_t>> splitHostPort(const std::string& address,
                                                       uint16_t defaultPort = 0);

}  // namespace taskmesh::net
