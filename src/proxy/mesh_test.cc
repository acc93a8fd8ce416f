// In-process meshes: a fake agent, an echo app, and real proxies on loopback.
//
//   client → web's upstream listener ("api") → mTLS → api's public listener → echo app
#include <gtest/gtest.h>

#include <cstring>

#include "proxy/proxy_test_support.h"

namespace taskmesh::proxy {
namespace {

using namespace testing;
using connect::IntentionAction;

// Echo exchanges on fresh connections through `port`, from its own thread, until stopped.
class LoadLoop {
 public:
  explicit LoadLoop(int port) : thread_([this, port] { run(port); }) {}
  ~LoadLoop() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_.load(); }
  int failed() const { return failed_.load(); }
  // Waits until `n` more exchanges succeeded.
  bool waitFor(int n, std::chrono::milliseconds timeout = 20s) {
    int target = ok() + n;
    return waitUntil([&] { return ok() >= target; }, timeout);
  }

 private:
  void run(int port) {
    for (uint32_t i = 0; !stop_; ++i) {
      if (echoOnce(port, randomPayload(512 + i % 4096, i), 5s)) {
        ++ok_;
      } else {
        ++failed_;
      }
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::thread thread_;
};

class Mesh : public ::testing::Test {
 protected:
  Mesh() {
    log::setLevel("warn");
    root_ = makeRoot(kTrustDomain, 1);
    webLeaf_ = makeLeaf(root_, "web");
    apiLeaf_ = makeLeaf(root_, "api");
  }

  connect::ProxySnapshot apiSnapshot() {
    return snapshotFor("api", apiPublic_, echo_.port(), apiLeaf_, {root_.rootCertPem});
  }
  connect::ProxySnapshot webSnapshot(const std::vector<int>& endpoints) {
    auto s = snapshotFor("web", webPublic_, 1, webLeaf_, {root_.rootCertPem});
    s.upstreams.push_back(upstreamTo("api", upstreamPort_, endpoints));
    return s;
  }
  void startBoth() {
    agent_.publish(apiSnapshot());
    agent_.publish(webSnapshot({apiPublic_}));
    api_ = std::make_unique<TestProxy>("api-sidecar-proxy", agent_);
    web_ = std::make_unique<TestProxy>("web-sidecar-proxy", agent_, 2);
    ASSERT_TRUE(api_->waitReady());
    ASSERT_TRUE(web_->waitReady());
  }
  // Waits until `proxy` applied a snapshot with index >= the agent's latest for it.
  void waitApplied(TestProxy& proxy, double before) {
    ASSERT_TRUE(waitUntil([&] { return proxy.metric("taskmesh_proxy_snapshot_index") > before; }))
        << "snapshot not applied";
  }
  double index(TestProxy& proxy) { return proxy.metric("taskmesh_proxy_snapshot_index"); }

  FakeAgent agent_;
  EchoServer echo_;
  connect::RootCa root_;
  Leaf webLeaf_, apiLeaf_;
  int apiPublic_ = freePort();
  int webPublic_ = freePort();
  int upstreamPort_ = freePort();
  std::unique_ptr<TestProxy> api_, web_;  // last: stopped before the agent and the app
};

const std::string kApiPublic = "public";
const std::string kWebUpstream = "upstream:api";

TEST_F(Mesh, BytesFlowBothWaysOverMutualTls) {
  startBoth();
  constexpr int kThreads = 6, kConnections = 20;
  const size_t sizes[] = {1, 1000, 16384, 16385, 200000};
  std::atomic<int> good{0};
  std::atomic<uint64_t> bytes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kConnections; ++c) {
        auto client = Client::connect(upstreamPort_);
        if (!client) continue;
        bool ok = true;
        for (size_t i = 0; i < 3 && ok; ++i) {
          size_t n = sizes[(t + c + i) % std::size(sizes)];
          ok = client->echo(randomPayload(n, static_cast<uint32_t>(t * 1000 + c * 10 + i)));
          bytes += n;
        }
        if (ok) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kThreads * kConnections);
  EXPECT_TRUE(api_->waitMetric(series("taskmesh_proxy_downstream_cx_total", kApiPublic),
                               kThreads * kConnections));
  EXPECT_GE(web_->metric(series("taskmesh_proxy_downstream_cx_total", kWebUpstream)),
            kThreads * kConnections);
  EXPECT_GE(web_->metric(series("taskmesh_proxy_downstream_bytes_received_total", kWebUpstream)),
            static_cast<double>(bytes.load()));
  EXPECT_TRUE(api_->waitMetric(series("taskmesh_proxy_downstream_bytes_sent_total", kApiPublic),
                               bytes.load()));
  // Every connection closed again.
  EXPECT_TRUE(waitUntil([&] {
    return web_->metric(series("taskmesh_proxy_downstream_cx_active", kWebUpstream)) == 0 &&
           api_->metric(series("taskmesh_proxy_downstream_cx_active", kApiPublic)) == 0;
  }));
  EXPECT_EQ(agent_.lastToken(), "secret-token");
}

TEST_F(Mesh, HalfCloseIsPropagatedBothWays) {
  startBoth();
  auto c = Client::connect(upstreamPort_);
  ASSERT_TRUE(c);
  std::string payload = randomPayload(100000, 7);
  ASSERT_TRUE(c->sendAll(payload));
  c->shutdownWrite();  // FIN → close_notify → FIN to the app, which echoes, then closes its side
  std::string got;
  ASSERT_TRUE(c->readExact(payload.size(), got));
  EXPECT_EQ(got, payload);
  EXPECT_TRUE(c->closedByPeer());
}

TEST_F(Mesh, DenyIntentionAppliesToNewConnectionsWithinASecond) {
  startBoth();
  auto established = Client::connect(upstreamPort_);
  ASSERT_TRUE(established && established->echo("before"));

  auto deny = apiSnapshot();
  deny.intentions = {intention("web", "api", IntentionAction::kDeny)};
  auto published = Clock::now();
  agent_.publish(deny);
  ASSERT_TRUE(waitUntil([&] { return !echoOnce(upstreamPort_, "x", 2s); }, 1s))
      << "new connections still allowed after 1 s";
  auto latency = Clock::now() - published;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(echoOnce(upstreamPort_, "y", 2s));
  EXPECT_TRUE(
      api_->waitMetric("taskmesh_proxy_denied_total{listener=\"public\",reason=\"intention\"}", 6));
  EXPECT_TRUE(established->echo("established connections keep their runtime"));

  auto defaultDeny = apiSnapshot();
  defaultDeny.defaultAllow = false;
  double before = index(*api_);
  agent_.publish(defaultDeny);
  waitApplied(*api_, before);
  EXPECT_FALSE(echoOnce(upstreamPort_, "z", 2s));
  EXPECT_TRUE(api_->waitMetric(
      "taskmesh_proxy_denied_total{listener=\"public\",reason=\"default_deny\"}", 1));

  auto allow = apiSnapshot();
  allow.defaultAllow = false;
  allow.intentions = {intention("web", "api", IntentionAction::kAllow)};
  agent_.publish(allow);
  EXPECT_TRUE(waitUntil([&] { return echoOnce(upstreamPort_, "again", 2s); }, 1s));
  EXPECT_TRUE(established->echo("after"));
  std::cout << "deny latency: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count() << " ms\n";
}

TEST_F(Mesh, RefusesClientCertificatesThatAreNotMeshPeers) {
  startBoth();
  struct Case {
    const char* reason;
    Leaf leaf;
  };
  auto now = std::chrono::system_clock::now();
  std::vector<Case> cases = {
      {"trust_domain", makeLeaf(root_, "web", kOtherTrustDomain)},
      {"expired", makeLeaf(root_, "web", kTrustDomain, now - std::chrono::hours(100))},
      {"untrusted", makeLeaf(makeRoot(kTrustDomain, 9), "web")},
      {"no_peer_certificate", Leaf{}},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.reason);
    double before = api_->metric(tls(kApiPublic, c.reason));
    TlsClient client(apiPublic_, c.leaf);
    client.handshake();  // TLS 1.3: the server judges the client's certificate afterwards
    EXPECT_TRUE(client.refusedAfterHandshake());
    EXPECT_TRUE(api_->waitMetric(tls(kApiPublic, c.reason), before + 1));
  }
  TlsClient good(apiPublic_, webLeaf_);
  EXPECT_TRUE(good.handshake());
  EXPECT_TRUE(echoOnce(upstreamPort_, "the mesh still works"));
  // The app is dialled before each handshake, but not a byte of a refused peer reaches it.
  EXPECT_EQ(echo_.bytesReceived(), static_cast<int64_t>(std::strlen("the mesh still works")));
}

TEST_F(Mesh, RefusesAnUpstreamWithTheWrongIdentityAndEjectsIt) {
  startBoth();
  // "other" presents a valid mesh certificate, but not api's.
  int otherPublic = freePort();
  auto otherSnap = snapshotFor("other", otherPublic, echo_.port(), makeLeaf(root_, "other"),
                               {root_.rootCertPem});
  agent_.publish(otherSnap);
  TestProxy other("other-sidecar-proxy", agent_);
  ASSERT_TRUE(other.waitReady());
  double before = index(*web_);
  agent_.publish(webSnapshot({otherPublic}));
  waitApplied(*web_, before);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(echoOnce(upstreamPort_, "x", 5s));
  EXPECT_GE(web_->metric(tls(kWebUpstream, "spiffe_id")), 4);
  EXPECT_GE(web_->metric(series("taskmesh_proxy_upstream_cx_failed_total", kWebUpstream)), 4);
  EXPECT_EQ(web_->metric(series("taskmesh_proxy_endpoint_ejections_total", kWebUpstream)), 1);
  auto clusters = nlohmann::json::parse(web_->get("/clusters").body);
  EXPECT_EQ(clusters[0]["Endpoints"][0]["State"], "ejected");
  EXPECT_EQ(echo_.bytesReceived(), 0);
}

TEST_F(Mesh, FailingEndpointsAreRetriedAndEjected) {
  int dead = freePort();  // nothing listens there
  agent_.publish(apiSnapshot());
  agent_.publish(webSnapshot({dead, apiPublic_}));
  api_ = std::make_unique<TestProxy>("api-sidecar-proxy", agent_);
  web_ = std::make_unique<TestProxy>("web-sidecar-proxy", agent_, 1);
  ASSERT_TRUE(api_->waitReady() && web_->waitReady());
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(echoOnce(upstreamPort_, "retried")) << i;
  EXPECT_GE(web_->metric(series("taskmesh_proxy_upstream_connect_failures_total", kWebUpstream)),
            3);
  EXPECT_EQ(web_->metric(series("taskmesh_proxy_endpoint_ejections_total", kWebUpstream)), 1);
  auto clusters = nlohmann::json::parse(web_->get("/clusters").body);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0]["Endpoints"][0]["State"], "ejected");
  EXPECT_EQ(clusters[0]["Endpoints"][0]["Failures"], 3);  // no attempts once ejected
  EXPECT_EQ(clusters[0]["Endpoints"][1]["State"], "healthy");
}

TEST_F(Mesh, AnEndpointWhoseAppIsGoneFailsTheHandshakeAndIsRetried) {
  // api2's sidecar runs, but its app has exited (its task is stopping): every connection the
  // caller sends there must end up on api instead, with nothing lost.
  int api2Public = freePort();
  auto api2 = apiSnapshot();
  api2.proxyId = "api2-sidecar-proxy";
  api2.publicPort = api2Public;
  api2.localAppPort = freePort();  // nothing listens there
  agent_.publish(api2);
  agent_.publish(apiSnapshot());
  agent_.publish(webSnapshot({api2Public, apiPublic_}));
  api_ = std::make_unique<TestProxy>("api-sidecar-proxy", agent_);
  web_ = std::make_unique<TestProxy>("web-sidecar-proxy", agent_, 1);
  TestProxy b2("api2-sidecar-proxy", agent_);
  ASSERT_TRUE(api_->waitReady() && web_->waitReady() && b2.waitReady());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(echoOnce(upstreamPort_, "retried")) << i;
  // api2's sidecar found no app three times; the caller then ejected api2.
  EXPECT_EQ(b2.metric(series("taskmesh_proxy_upstream_connect_failures_total", kApiPublic)), 3);
  auto clusters = nlohmann::json::parse(web_->get("/clusters").body);
  EXPECT_EQ(clusters[0]["Endpoints"][0]["State"], "ejected");
  EXPECT_EQ(echo_.bytesReceived(), 10 * static_cast<int64_t>(std::strlen("retried")));
}

TEST_F(Mesh, EndpointChangesUnderLoadLoseNoRequests) {
  int api2Public = freePort();
  auto api2 = apiSnapshot();
  api2.proxyId = "api2-sidecar-proxy";
  api2.publicPort = api2Public;
  agent_.publish(api2);
  startBoth();
  TestProxy b2("api2-sidecar-proxy", agent_);
  ASSERT_TRUE(b2.waitReady());
  auto pinned = Client::connect(upstreamPort_);  // through B1, before any change
  ASSERT_TRUE(pinned && pinned->echo("pinned"));

  LoadLoop load(upstreamPort_);
  ASSERT_TRUE(load.waitFor(20));
  agent_.publish(webSnapshot({apiPublic_, api2Public}));  // B2 added
  ASSERT_TRUE(b2.waitMetric(series("taskmesh_proxy_downstream_cx_total", kApiPublic), 10, 20s));
  agent_.publish(webSnapshot({api2Public}));  // B1 removed
  ASSERT_TRUE(load.waitFor(20));
  double b1 = api_->metric(series("taskmesh_proxy_downstream_cx_total", kApiPublic));
  ASSERT_TRUE(load.waitFor(50));
  EXPECT_EQ(api_->metric(series("taskmesh_proxy_downstream_cx_total", kApiPublic)), b1)
      << "B1 still receives new connections after its removal";
  EXPECT_TRUE(pinned->echo("a removed endpoint keeps its established connections"));
  load.stop();
  // Removal cuts nothing: in-flight requests on B1 complete on their old runtime.
  EXPECT_EQ(load.failed(), 0) << "of " << load.ok() + load.failed();
  std::cout << "requests during endpoint changes: " << load.ok() << " ok, " << load.failed()
            << " failed\n";
}

TEST_F(Mesh, RootRotationUnderLoadLosesNoRequests) {
  startBoth();
  LoadLoop load(upstreamPort_);
  ASSERT_TRUE(load.waitFor(20));

  auto now = std::chrono::system_clock::now();
  connect::RootCa rootB = makeRoot(kTrustDomain, 2);
  auto cross = connect::crossSign(root_, rootB, now);
  ASSERT_TRUE(cross.has_value()) << cross.error().message;
  rootB.intermediateCertPems = {*cross};
  Leaf apiNew = makeLeaf(rootB, "api"), webNew = makeLeaf(rootB, "web");

  // 1. api moves to a leaf from root B (shipped with the cross-signed root) while web still
  //    trusts root A only.
  auto api1 = apiSnapshot();
  api1.leafCertPem = apiNew.certPem, api1.leafKeyPem = apiNew.keyPem;
  api1.rootPems = {root_.rootCertPem, rootB.rootCertPem};
  double before = index(*api_);
  agent_.publish(api1);
  waitApplied(*api_, before);
  ASSERT_TRUE(load.waitFor(20));
  // 2. web too, trusting both roots.
  auto web1 = webSnapshot({apiPublic_});
  web1.leafCertPem = webNew.certPem, web1.leafKeyPem = webNew.keyPem;
  web1.rootPems = {root_.rootCertPem, rootB.rootCertPem};
  before = index(*web_);
  agent_.publish(web1);
  waitApplied(*web_, before);
  ASSERT_TRUE(load.waitFor(20));
  // 3. Root A is retired.
  api1.rootPems = {rootB.rootCertPem};
  web1.rootPems = {rootB.rootCertPem};
  before = index(*api_);
  agent_.publish(api1);
  waitApplied(*api_, before);
  before = index(*web_);
  agent_.publish(web1);
  waitApplied(*web_, before);
  ASSERT_TRUE(load.waitFor(20));
  load.stop();
  EXPECT_EQ(load.failed(), 0) << "of " << load.ok() + load.failed();

  // The rotation took effect: an old root-A leaf is no longer trusted.
  TlsClient old(apiPublic_, webLeaf_);
  old.handshake();
  EXPECT_TRUE(old.refusedAfterHandshake());
  EXPECT_TRUE(api_->waitMetric(tls(kApiPublic, "untrusted"), 1));
}

// Sessions resume between the sidecars, each ticket once, and only under the snapshots that
// issued and verified them: a new snapshot on either side means a full handshake, without a
// failed connection.
TEST_F(Mesh, TlsSessionsResumeOnlyWithinOneSnapshotOnEachSide) {
  startBoth();
  const std::string resumed = "taskmesh_proxy_tls_sessions_resumed_total";
  auto exchanges = [&](int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(echoOnce(upstreamPort_, randomPayload(100, static_cast<uint32_t>(i)), 5s));
    }
  };
  auto settled = [&](double apiResumed) {  // both sides counted the same handshakes
    return waitUntil([&] {
      return api_->metric(series(resumed, kApiPublic)) == apiResumed &&
             web_->metric(series(resumed, kWebUpstream)) == apiResumed;
    });
  };
  exchanges(12);
  double r0 = web_->metric(series(resumed, kWebUpstream));
  // Two workers on web: each one's first connection is a full handshake, the rest resume.
  EXPECT_GE(r0, 8);
  EXPECT_TRUE(settled(r0));

  // api's new snapshot (a new ticket key): web's tickets are refused, the handshake is full.
  double before = index(*api_);
  agent_.publish(apiSnapshot());
  waitApplied(*api_, before);
  exchanges(1);
  EXPECT_TRUE(settled(r0));
  exchanges(12);
  double r1 = web_->metric(series(resumed, kWebUpstream));
  EXPECT_GE(r1, r0 + 8);
  EXPECT_TRUE(settled(r1));

  // web's new snapshot: its ticket queues start empty.
  before = index(*web_);
  agent_.publish(webSnapshot({apiPublic_}));
  waitApplied(*web_, before);
  exchanges(1);
  EXPECT_TRUE(settled(r1));
  EXPECT_EQ(api_->metric(tls(kApiPublic, "protocol")), 0);
  EXPECT_EQ(web_->metric(series("taskmesh_proxy_upstream_connect_failures_total", kWebUpstream)),
            0);
}

TEST_F(Mesh, GarbageAndHalfOpenClientsAreCountedAndServiceContinues) {
  startBoth();
  {
    auto c = Client::connect(apiPublic_);
    ASSERT_TRUE(c && c->sendAll("GET / HTTP/1.1\r\nHost: api\r\n\r\n"));
    EXPECT_TRUE(c->closedByPeer());
  }
  {
    auto c = Client::connect(apiPublic_);
    ASSERT_TRUE(c && c->sendAll(randomPayload(3000, 1)));
    EXPECT_TRUE(c->closedByPeer());
  }
  EXPECT_TRUE(api_->waitMetric(tls(kApiPublic, "protocol"), 2));
  {
    // Half-open: silence, then a TLS record header with nothing after it.
    auto silent = Client::connect(apiPublic_);
    auto partial = Client::connect(apiPublic_);
    ASSERT_TRUE(silent && partial && partial->sendAll(std::string("\x16\x03\x01\x02\x00\x01", 6)));
    EXPECT_TRUE(silent->closedByPeer(5s));  // the handshake timeout (1 s in tests)
    EXPECT_TRUE(partial->closedByPeer(5s));
    EXPECT_TRUE(api_->waitMetric(tls(kApiPublic, "timeout"), 2));
  }
  // The upstream listener with no endpoints closes at once.
  double before = index(*web_);
  agent_.publish(webSnapshot({}));
  waitApplied(*web_, before);
  {
    auto c = Client::connect(upstreamPort_);
    ASSERT_TRUE(c);
    c->sendAll(randomPayload(100, 2));
    EXPECT_TRUE(c->closedByPeer(2s));
    EXPECT_TRUE(
        web_->waitMetric(series("taskmesh_proxy_upstream_no_endpoints_total", kWebUpstream), 1));
  }
  before = index(*web_);
  agent_.publish(webSnapshot({apiPublic_}));
  waitApplied(*web_, before);
  EXPECT_TRUE(echoOnce(upstreamPort_, "still serving"));
  EXPECT_TRUE(api_->ready());
}

TEST_F(Mesh, BadSnapshotsKeepTheLastGoodOne) {
  startBoth();
  double errors = web_->metric("taskmesh_proxy_config_errors_total");
  agent_.publishRaw("web-sidecar-proxy", "{not json");
  EXPECT_TRUE(web_->waitMetric("taskmesh_proxy_config_errors_total", errors + 1));
  auto bad = webSnapshot({apiPublic_});
  bad.leafKeyPem = apiLeaf_.keyPem;  // not web's key
  agent_.publish(bad);
  EXPECT_TRUE(web_->waitMetric("taskmesh_proxy_config_errors_total", errors + 2));
  EXPECT_TRUE(web_->ready());
  EXPECT_TRUE(echoOnce(upstreamPort_, "last good snapshot"));
  auto dump = web_->get("/config_dump");
  EXPECT_EQ(dump.status, 200);
  EXPECT_EQ(dump.body.find("PRIVATE KEY"), std::string::npos);
  EXPECT_NE(dump.body.find(webLeaf_.certPem.substr(30, 40)), std::string::npos);
}

TEST_F(Mesh, AdminEndpoints) {
  // Before any snapshot: not ready.
  TestProxy lonely("nobody-sidecar-proxy", agent_);
  EXPECT_EQ(lonely.get("/ready").status, 503);
  EXPECT_EQ(lonely.get("/config_dump").status, 503);
  EXPECT_EQ(lonely.get("/nope").status, 404);
  EXPECT_EQ(lonely.get("/clusters").body, "[]");

  startBoth();
  auto ready = web_->get("/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "LIVE");
  auto stats = web_->get("/stats");
  EXPECT_EQ(stats.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(stats.body.find("taskmesh_proxy_workers 2\n"), std::string::npos);
  auto dump = nlohmann::json::parse(web_->get("/config_dump").body);
  EXPECT_EQ(dump["Service"], "web");
  EXPECT_FALSE(dump["Leaf"].contains("PrivateKeyPEM"));
  auto clusters = nlohmann::json::parse(web_->get("/clusters").body);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0]["Name"], "api");
  EXPECT_EQ(clusters[0]["Endpoints"][0]["Port"], apiPublic_);
  EXPECT_EQ(clusters[0]["Endpoints"][0]["State"], "healthy");
}

TEST_F(Mesh, DrainWaitsForOpenConnectionsThenStops) {
  startBoth();
  auto open = Client::connect(upstreamPort_);
  ASSERT_TRUE(open && open->echo("open"));
  api_->beginDrain();
  ASSERT_TRUE(waitUntil([&] { return !api_->ready(); }));
  EXPECT_EQ(api_->get("/ready").body, "DRAINING");
  // The listener is closed: new connections through web fail; the open one still works.
  EXPECT_TRUE(waitUntil([&] { return !echoOnce(upstreamPort_, "new", 2s); }));
  EXPECT_TRUE(open->echo("still open"));
  EXPECT_FALSE(api_->drained());
  open.reset();
  EXPECT_TRUE(waitUntil([&] { return api_->drained(); }));
  EXPECT_EQ(api_->stop(), 0u);
}

TEST_F(Mesh, DrainTimeoutCutsWhatIsLeft) {
  agent_.publish(apiSnapshot());
  agent_.publish(webSnapshot({apiPublic_}));
  api_ = std::make_unique<TestProxy>("api-sidecar-proxy", agent_, 1, 300ms);
  web_ = std::make_unique<TestProxy>("web-sidecar-proxy", agent_);
  ASSERT_TRUE(api_->waitReady() && web_->waitReady());
  auto open = Client::connect(upstreamPort_);
  ASSERT_TRUE(open && open->echo("open"));
  auto started = Clock::now();
  EXPECT_EQ(api_->stop(), 1u);
  EXPECT_LT(Clock::now() - started, 3s);
  EXPECT_TRUE(open->closedByPeer(5s));
}

}  // namespace
}  // namespace taskmesh::proxy
