#include "net/http_client.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "net/http_server.h"

namespace taskmesh::net {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// An HttpServer on 127.0.0.1:0 whose io_context runs on its own thread.
class TestServer {
 public:
  explicit TestServer(HttpHandler handler, HttpServerOptions options = {})
      : server_(io_, options, std::move(handler)) {
    auto port = server_.listen("127.0.0.1:0");
    EXPECT_TRUE(port.has_value());
    port_ = port.value_or(0);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }
  std::string url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }

 private:
  asio::io_context io_;
  HttpServer server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A port with nothing listening on it (bound, then closed again).
uint16_t closedPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  uint16_t port = acceptor.local_endpoint().port();
  acceptor.close();
  return port;
}

TEST(ParseHttpUrl, AcceptsPlainHttp) {
  auto a = parseHttpUrl("http://127.0.0.1:8500/v1/kv/x?recurse");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8500);
  EXPECT_EQ(a->target, "/v1/kv/x?recurse");
  EXPECT_EQ(a->hostHeader(), "127.0.0.1:8500");

  auto b = parseHttpUrl("http://169.254.170.2");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->port, 80);
  EXPECT_EQ(b->target, "/");
  EXPECT_EQ(b->hostHeader(), "169.254.170.2");

  auto c = parseHttpUrl("HTTP://[::1]:9000?x=1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->target, "/?x=1");
  EXPECT_EQ(c->hostHeader(), "[::1]:9000");
}

TEST(ParseHttpUrl, RejectsWithTheUrlInTheMessage) {
  for (const char* bad : {"ftp://x/", "127.0.0.1:80", "http://", "http://:80/", "http://host:0/",
                          "http://host:65536/", "http://host:8x/", "http://user@host/",
                          "http://host/a#frag", "http://host/a b", "http://::1/", "http://[::1/"}) {
    auto r = parseHttpUrl(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
}

TEST(ParseHttpUrl, AcceptsHttpsWithItsDefaultPort) {
  auto a = parseHttpUrl("https://ecs.us-east-1.amazonaws.com/");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->hostHeader(), "ecs.us-east-1.amazonaws.com");
  auto b = parseHttpUrl("https://h:8443/x");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->hostHeader(), "h:8443");
}

TEST(HttpRequest, GetsAndPostsAgainstTheServer) {
  TestServer server([](HttpRequest& req) -> Awaitable<HttpResponse> {
    HttpResponse res =
        HttpResponse::text(req.path == "/missing" ? 404 : 200,
                           req.method + " " + req.target + " " + req.header("x-test") + " " +
                               req.header("host") + " body=" + req.body);
    res.headers.emplace_back("X-Reply", "yes");
    co_return res;
  });

  HttpClientRequest get;
  get.url = server.url("/a/b?c=d");
  get.headers = {{"X-Test", "hello"}};
  auto r = httpRequest(get);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-reply"), "yes");
  EXPECT_EQ(r->body.rfind("GET /a/b?c=d hello 127.0.0.1:", 0), 0u) << r->body;

  HttpClientRequest post;
  post.method = "POST";
  post.url = server.url("/missing");
  post.headers = {{"Host", "example.test"}};
  post.body = "{\"k\":1}";
  auto p = httpRequest(post);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->status, 404);
  EXPECT_EQ(p->body, "POST /missing  example.test body={\"k\":1}");
}

TEST(HttpRequest, RefusedConnectionNamesTheUrl) {
  HttpClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(closedPort()) + "/task";
  auto r = httpRequest(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find(req.url), std::string::npos) << r.error().message;
}

TEST(HttpRequest, SilentServerTimesOut) {
  // Accepted by the kernel's backlog, never answered.
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  HttpClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/";
  req.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = httpRequest(req);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find(req.url), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 5s);
}

TEST(HttpRequest, OversizedResponseIsRefused) {
  TestServer server([](HttpRequest&) -> Awaitable<HttpResponse> {
    co_return HttpResponse::text(200, std::string(4096, 'x'));
  });
  HttpClientRequest req;
  req.url = server.url("/");
  req.maxResponseBytes = 1024;
  auto r = httpRequest(req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge) << r.error().message;
}

TEST(HttpRequest, RejectsBadInputBeforeConnecting) {
  HttpClientRequest req;
  req.url = "http://127.0.0.1:1/";
  req.headers = {{"X-Bad", "a\r\nInjected: 1"}};
  EXPECT_EQ(httpRequest(req).error().code, ErrorCode::kInvalidArgument);
  req.headers.clear();
  req.method = "NOT A METHOD";
  EXPECT_EQ(httpRequest(req).error().code, ErrorCode::kInvalidArgument);
}

// Runs `n` requests one after the other on one HttpConnection; returns their results.
std::vector<Result<HttpClientResponse>> sequence(HttpConnection& c, asio::io_context& io,
                                                 const std::string& url, int n,
                                                 std::chrono::milliseconds pause) {
  std::vector<Result<HttpClientResponse>> out;
  for (int i = 0; i < n; ++i) {
    if (i > 0) std::this_thread::sleep_for(pause);
    HttpClientRequest r;
    r.url = url;
    r.timeout = 2s;
    bool finished = false;
    c.request(r, [&](Result<HttpClientResponse> resp) {
      out.push_back(std::move(resp));
      finished = true;
    });
    io.restart();
    while (!finished && io.run_one_for(3s) > 0) {
    }
    EXPECT_TRUE(finished);
  }
  return out;
}

TEST(HttpConnection, ReusesOneConnection) {
  std::mutex mu;
  std::set<std::string> peers;
  TestServer server([&](HttpRequest& req) -> Awaitable<HttpResponse> {
    std::lock_guard lock(mu);
    peers.insert(req.remoteAddress);
    co_return HttpResponse::text(200, "ok");
  });
  asio::io_context io;
  HttpConnection c(io);
  auto results = sequence(c, io, server.url("/"), 5, 0ms);
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->reason, "OK");
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(peers.size(), 1u);  // one client port: one TCP connection
}

TEST(HttpConnection, RetriesWhenTheServerClosedTheIdleConnection) {
  std::mutex mu;
  std::set<std::string> peers;
  HttpServerOptions options;
  options.idleTimeout = 50ms;
  TestServer server(
      [&](HttpRequest& req) -> Awaitable<HttpResponse> {
        std::lock_guard lock(mu);
        peers.insert(req.remoteAddress);
        co_return HttpResponse::text(200, "ok");
      },
      options);
  asio::io_context io;
  HttpConnection c(io);
  auto results = sequence(c, io, server.url("/"), 3, 300ms);
  for (const auto& r : results) ASSERT_TRUE(r.has_value()) << r.error().message;
  std::lock_guard lock(mu);
  EXPECT_EQ(peers.size(), 3u);  // each idle connection was closed by the server
}

TEST(HttpConnection, ReportsARealFailure) {
  asio::io_context io;
  HttpConnection c(io);
  auto results = sequence(c, io, "http://127.0.0.1:" + std::to_string(closedPort()) + "/", 1, 0ms);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0].has_value());
  EXPECT_NE(results[0].error().message.find("127.0.0.1"), std::string::npos);
}

// A self-signed ECDSA P-256 certificate for `san` (e.g. "DNS:localhost"), PEM, made with
// OpenSSL at test time.
struct TestCert {
  std::string cert;
  std::string key;
};

TestCert makeCert(const std::string& san) {
  TestCert out;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("taskmesh test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<size_t>(n));
    BIO_free(bio);
    return s;
  };
  out.cert = pem([x](BIO* b) { PEM_write_bio_X509(b, x); });
  out.key = pem(
      [key](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

// An HTTPS server on 127.0.0.1:0 answering every request with 200 "secure", on its own thread.
class TlsTestServer {
 public:
  explicit TlsTestServer(const TestCert& cert)
      : ctx_(asio::ssl::context::tls_server), acceptor_(io_) {
    ctx_.use_certificate_chain(asio::buffer(cert.cert));
    ctx_.use_private_key(asio::buffer(cert.key), asio::ssl::context::pem);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsTestServer() {
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket poke(io_);
    poke.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      boost::system::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec || stop_) continue;
      asio::ssl::stream<tcp::socket> tls(std::move(socket), ctx_);
      tls.handshake(asio::ssl::stream_base::server, ec);
      if (ec) continue;  // e.g. the client refused our certificate
      beast::flat_buffer buffer;
      bhttp::request<bhttp::string_body> req;
      bhttp::read(tls, buffer, req, ec);
      if (ec) continue;
      bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
      res.body() = "secure";
      res.keep_alive(false);
      res.prepare_payload();
      bhttp::write(tls, res, ec);
    }
  }

  asio::io_context io_;
  asio::ssl::context ctx_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string writeTemp(const std::string& content) {
  char path[] = "/tmp/taskmesh-ca-XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fd);
  return path;
}

TEST(HttpRequest, HttpsVerifiesTheChainAndTheName) {
  TestCert cert = makeCert("DNS:localhost,IP:127.0.0.1");
  TlsTestServer server(cert);
  std::string ca = writeTemp(cert.cert);
  HttpClientRequest r;
  r.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/x";
  r.timeout = 5s;
  r.caFile = ca;
  auto ok = httpRequest(r);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "secure");

  // The system trust store does not know our CA: refused, and the message says why.
  r.caFile = "";
  auto untrusted = httpRequest(r);
  ASSERT_FALSE(untrusted.has_value());
  EXPECT_NE(untrusted.error().message.find("TLS handshake"), std::string::npos)
      << untrusted.error().message;

  // Skipping verification (Consul's TLSSkipVerify) accepts it.
  r.tlsSkipVerify = true;
  EXPECT_TRUE(httpRequest(r).has_value());
  std::remove(ca.c_str());
}

TEST(HttpRequest, HttpsRefusesACertificateForAnotherName) {
  TestCert cert = makeCert("DNS:other.example");
  TlsTestServer server(cert);
  std::string ca = writeTemp(cert.cert);
  HttpClientRequest r;
  r.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  r.timeout = 5s;
  r.caFile = ca;
  auto wrong = httpRequest(r);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().message.find("TLS handshake with 127.0.0.1"), std::string::npos)
      << wrong.error().message;
  r.tlsServerName = "other.example";  // the name the certificate carries
  auto named = httpRequest(r);
  EXPECT_TRUE(named.has_value()) << named.error().message;
  r.caFile = "/nonexistent/ca.pem";
  auto noCa = httpRequest(r);
  ASSERT_FALSE(noCa.has_value());
  EXPECT_NE(noCa.error().message.find("/nonexistent/ca.pem"), std::string::npos);
  std::remove(ca.c_str());
}

TEST(DialTcp, ConnectsRefusesAndRejects) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string open = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  EXPECT_TRUE(dialTcp(open, 1s).has_value());
  EXPECT_TRUE(
      dialTcp("localhost:" + std::to_string(acceptor.local_endpoint().port()), 1s).has_value());

  std::string closed = "127.0.0.1:" + std::to_string(closedPort());
  auto refused = dialTcp(closed, 1s);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find(closed), std::string::npos);

  for (const char* bad : {"127.0.0.1", "127.0.0.1:0", ":80", "127.0.0.1:99999", "host:x"}) {
    auto r = dialTcp(bad, 1s);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace taskmesh::net
