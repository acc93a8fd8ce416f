#pragma once
// The agent's connection to the servers: where they are (-retry-join addresses and the
// -retry-join-file written by discover-servers, re-read on every attempt so that a file that
// appears later is used) and one call primitive with failover.
//
// Thread: the agent's io_context. call() may be used by many coroutines at once; each call
// is its own HTTP exchange (fresh connection; loopback or the task network, so cheap).

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/asio.h"
#include "net/http_client.h"

namespace taskmesh::agent {

struct ServerLinkOptions {
  std::vector<std::string> retryJoin;  // HOST[:PORT], port 8500 by default
  std::string retryJoinFile;           // a file holding HOST[:PORT] (one per line)
  std::string token;                   // sent as X-Consul-Token when not empty
};

class ServerLink {
 public:
  ServerLink(asio::io_context& io, ServerLinkOptions options);

  // Sends one request to the current server. On a transport error (refused, timed out) the
  // next known server is tried, each at most once per call; an HTTP answer of any status is
  // returned as is. Errors name every address tried. Not a coroutine: arguments are copied.
  // `token` (X-Consul-Token) overrides the link's own token when not empty.
  Awaitable<Result<net::HttpClientResponse>> call(std::string method, std::string target,
                                                  std::string body,
                                                  std::chrono::milliseconds timeout,
                                                  std::string token = "");
  void asyncCall(std::string method, std::string target, std::string body,
                 std::chrono::milliseconds timeout, net::HttpDone done, std::string token = "");
  // Adds a server address (PUT /v1/agent/join/:address).
  Result<void> addServer(const std::string& address);

  // The server addresses known now ("host:port"), flags first, then the file's lines.
  std::vector<std::string> addresses() const;
  // The server that answered last ("" before any answer).
  const std::string& current() const { return current_; }

 private:
  struct Attempt;
  void tryNext(std::shared_ptr<Attempt> attempt);

  asio::io_context& io_;
  ServerLinkOptions options_;
  std::string current_;
};

// Normalises "HOST", "HOST:PORT", "http://HOST:PORT" into "host:port" (port 8500 by default).
Result<std::string> normaliseServerAddress(const std::string& text);

}  // namespace taskmesh::agent
