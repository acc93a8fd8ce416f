#pragma once
// Test support (tests only): an HttpServer on 127.0.0.1:0 with a synchronous handler, run on
// its own thread so that the blocking clients under test can call it. Used by the tests of
// src/aws and of the commands built on it (src/init).
//
// Threads: the handler runs on the server thread; state it shares with the test needs a lock.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>

#include "net/http_server.h"

namespace taskmesh::aws::testing {

class TestHttpServer {
 public:
  using Handler = std::function<net::HttpResponse(const net::HttpRequest&)>;

  explicit TestHttpServer(Handler handler)
      : handler_(std::move(handler)),
        server_(io_, net::HttpServerOptions{},
                [this](net::HttpRequest& req) -> Awaitable<net::HttpResponse> {
                  co_return handler_(req);
                }) {
    auto port = server_.listen("127.0.0.1:0");
    EXPECT_TRUE(port.has_value()) << port.error().message;
    port_ = port.value_or(0);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestHttpServer() {
    io_.stop();
    thread_.join();
  }
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  // "http://127.0.0.1:<port>"
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }

 private:
  Handler handler_;
  asio::io_context io_;
  net::HttpServer server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace taskmesh::aws::testing
