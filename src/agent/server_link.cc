#include "agent/server_link.h"

#include <algorithm>
#include <memory>

#include "base/file.h"
#include "net/http_server.h"

namespace taskmesh::agent {

Result<std::string> normaliseServerAddress(const std::string& text) {
  std::string s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  if (s.starts_with("http://")) s = s.substr(7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.empty()) return makeError(ErrorCode::kInvalidArgument, "empty server address");
  auto hp = net::splitHostPort(s, 8500);
  if (!hp)
    return makeError(ErrorCode::kInvalidArgument,
                     "invalid server address \"" + text + "\": " + hp.error().message);
  std::string host = hp->first.find(':') != std::string::npos ? "[" + hp->first + "]" : hp->first;
  return host + ":" + std::to_string(hp->second ? hp->second : 8500);
}

ServerLink::ServerLink(asio::io_context& io, ServerLinkOptions options)
    : io_(io), options_(std::move(options)) {}

std::vector<std::string> ServerLink::addresses() const {
  std::vector<std::string> out;
  auto add = [&out](const std::string& text) {
    auto a = normaliseServerAddress(text);
    if (a && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  };
  for (const auto& a : options_.retryJoin) add(a);
  if (!options_.retryJoinFile.empty()) {
    if (auto content = readFile(options_.retryJoinFile)) {
      size_t start = 0;
      while (start < content->size()) {
        size_t end = content->find('\n', start);
        if (end == std::string::npos) end = content->size();
        std::string line = content->substr(start, end - start);
        if (line.find_first_not_of(" \t\r") != std::string::npos) add(line);
        start = end + 1;
      }
    }
  }
  return out;
}

struct ServerLink::Attempt {
  net::HttpClientRequest request;  // url filled per address
  std::string target;
  std::vector<std::string> order;
  size_t next = 0;
  std::string errors;
  net::HttpDone done;
};

Result<void> ServerLink::addServer(const std::string& address) {
  auto a = normaliseServerAddress(address);
  if (!a) return makeError(a.error());
  if (std::find(options_.retryJoin.begin(), options_.retryJoin.end(), *a) ==
      options_.retryJoin.end())
    options_.retryJoin.push_back(*a);
  return {};
}

void ServerLink::asyncCall(std::string method, std::string target, std::string body,
                           std::chrono::milliseconds timeout, net::HttpDone done,
                           std::string token) {
  auto attempt = std::make_shared<Attempt>();
  attempt->request.method = std::move(method);
  attempt->request.body = std::move(body);
  attempt->request.timeout = timeout;
  if (token.empty()) token = options_.token;
  if (!token.empty()) attempt->request.headers.emplace_back("X-Consul-Token", token);
  if (!attempt->request.body.empty())
    attempt->request.headers.emplace_back("Content-Type", "application/json");
  attempt->target = std::move(target);
  attempt->done = std::move(done);
  attempt->order = addresses();
  // Start with the server that answered last.
  if (auto it = std::find(attempt->order.begin(), attempt->order.end(), current_);
      it != attempt->order.end()) {
    std::rotate(attempt->order.begin(), it, attempt->order.end());
  }
  if (attempt->order.empty()) {
    asio::post(io_, [attempt] {
      attempt->done(makeError(ErrorCode::kUnavailable,
                              "no server address known yet (-retry-join / -retry-join-file)"));
    });
    return;
  }
  tryNext(attempt);
}

void ServerLink::tryNext(std::shared_ptr<Attempt> attempt) {
  if (attempt->next >= attempt->order.size()) {
    return attempt->done(
        makeError(ErrorCode::kUnavailable, "no server answered: " + attempt->errors));
  }
  std::string address = attempt->order[attempt->next++];
  attempt->request.url = "http://" + address + attempt->target;
  net::asyncHttpRequest(io_, attempt->request,
                        [this, attempt, address](Result<net::HttpClientResponse> r) {
                          if (r) {
                            current_ = address;
                            return attempt->done(std::move(r));
                          }
                          if (!attempt->errors.empty()) attempt->errors += "; ";
                          attempt->errors += r.error().message;
                          tryNext(attempt);
                        });
}

Awaitable<Result<net::HttpClientResponse>> ServerLink::call(std::string method, std::string target,
                                                            std::string body,
                                                            std::chrono::milliseconds timeout,
                                                            std::string token) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result<net::HttpClientResponse>)>(
      [this](auto handler, std::string m, std::string t, std::string b,
             std::chrono::milliseconds to, std::string tok) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        asyncCall(
            std::move(m), std::move(t), std::move(b), to,
            [h](Result<net::HttpClientResponse> r) { (*h)(std::move(r)); }, std::move(tok));
      },
      asio::use_awaitable, std::move(method), std::move(target), std::move(body), timeout,
      std::move(token));
}

}  // namespace taskmesh::agent
