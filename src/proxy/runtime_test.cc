#include "proxy/runtime.h"

#include <gtest/gtest.h>

#include "proxy/admin.h"
#include "proxy/proxy_test_support.h"
#include "proxy/stats.h"

namespace taskmesh::proxy {
namespace {

using namespace testing;
using connect::IntentionAction;

class RuntimeBuild : public ::testing::Test {
 protected:
  RuntimeBuild() : root_(makeRoot(kTrustDomain, 1)), leaf_(makeLeaf(root_, "web")) {}

  connect::ProxySnapshot snapshot() {
    auto s = snapshotFor("web", 21000, 8080, leaf_, {root_.rootCertPem});
    s.upstreams.push_back(upstreamTo("api", 9191, {20001, 20002}));
    return s;
  }
  Result<std::shared_ptr<const Runtime>> build(connect::ProxySnapshot s) {
    return buildRuntime(std::move(s), registry_, std::chrono::system_clock::now());
  }
  ::testing::AssertionResult rejects(connect::ProxySnapshot s, const std::string& fragment) {
    auto r = build(std::move(s));
    if (r) return ::testing::AssertionFailure() << "built; expected \"" << fragment << "\"";
    if (r.error().message.find(fragment) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "error \"" << r.error().message << "\" does not contain \"" << fragment << "\"";
    }
    return ::testing::AssertionSuccess();
  }

  connect::RootCa root_;
  Leaf leaf_;
  EndpointRegistry registry_;
};

TEST_F(RuntimeBuild, BuildsContextsUpstreamsAndEndpointState) {
  auto rt = build(snapshot());
  ASSERT_TRUE(rt.has_value()) << rt.error().message;
  const Runtime& r = **rt;
  EXPECT_NE(r.serverCtx, nullptr);
  EXPECT_NE(r.clientCtx, nullptr);
  ASSERT_EQ(r.upstreams.size(), 1u);
  EXPECT_EQ(r.upstreams[0].listenerName, "upstream:api");
  EXPECT_EQ(r.upstream("upstream:api"), &r.upstreams[0]);
  EXPECT_EQ(r.upstream("upstream:db"), nullptr);
  EXPECT_EQ(r.upstreams[0].expectedPeer.service, "api");
  ASSERT_EQ(r.upstreams[0].endpoints.size(), 2u);
  EXPECT_TRUE(r.upstreams[0].endpoints[0].ip.has_value());
  EXPECT_EQ(r.upstreams[0].endpoints[1].state->key(), "127.0.0.1:20002");
  ASSERT_TRUE(r.localAppIp.has_value());
  EXPECT_EQ(r.localAppIp->port(), 8080);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(r.serverCtx.get()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(r.serverCtx.get()),
            SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
}

TEST_F(RuntimeBuild, SessionTicketsFollowTheOptions) {
  auto on = buildRuntime(snapshot(), registry_, std::chrono::system_clock::now(),
                         {.workers = 3, .tlsResumption = true});
  ASSERT_TRUE(on.has_value()) << on.error().message;
  const auto& ep = (*on)->upstreams[0].endpoints[0];
  ASSERT_NE(ep.ticketsOf(2), nullptr);
  EXPECT_NE(ep.ticketsOf(0), ep.ticketsOf(1));  // one queue per worker
  EXPECT_EQ(ep.ticketsOf(2)->size(), 0u);
  EXPECT_EQ(SSL_CTX_get_num_tickets((*on)->serverCtx.get()), 2u);
  EXPECT_EQ(SSL_CTX_get_timeout((*on)->serverCtx.get()), kTicketLifetime.count());
  EXPECT_EQ(SSL_CTX_get_session_cache_mode((*on)->serverCtx.get()), SSL_SESS_CACHE_SERVER);
  EXPECT_EQ(SSL_CTX_sess_get_cache_size((*on)->serverCtx.get()),
            static_cast<long>(kServerSessionCache));
  EXPECT_NE(SSL_CTX_get_session_cache_mode((*on)->clientCtx.get()) & SSL_SESS_CACHE_CLIENT, 0);

  auto off = buildRuntime(snapshot(), registry_, std::chrono::system_clock::now(),
                          {.workers = 3, .tlsResumption = false});
  ASSERT_TRUE(off.has_value()) << off.error().message;
  EXPECT_EQ((*off)->upstreams[0].endpoints[0].ticketsOf(0), nullptr);
  EXPECT_EQ(SSL_CTX_get_num_tickets((*off)->serverCtx.get()), 0u);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode((*off)->serverCtx.get()), SSL_SESS_CACHE_OFF);
  EXPECT_NE(SSL_CTX_get_options((*off)->clientCtx.get()) & SSL_OP_NO_TICKET, 0u);

  auto none = buildRuntime(snapshot(), registry_, std::chrono::system_clock::now(), {.workers = 0});
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().message, "workers: must be at least 1");
}

TEST(TicketQueue, KeepsTheNewestAndHandsEachOutOnce) {
  TicketQueue q;
  std::vector<SSL_SESSION*> made;
  for (size_t i = 0; i < kTicketsPerEndpoint + 2; ++i) {
    made.push_back(SSL_SESSION_new());
    SSL_SESSION_up_ref(made.back());  // keep one reference here to compare pointers
    q.push(made.back());
  }
  EXPECT_EQ(q.size(), kTicketsPerEndpoint);
  for (size_t i = 0; i < kTicketsPerEndpoint; ++i) {
    SSL_SESSION* s = q.pop();
    EXPECT_EQ(s, made[made.size() - 1 - i]);  // newest first
    SSL_SESSION_free(s);
  }
  EXPECT_EQ(q.pop(), nullptr);
  for (auto* s : made) SSL_SESSION_free(s);
}

TEST_F(RuntimeBuild, EndpointStateSurvivesANewSnapshot) {
  auto first = build(snapshot());
  ASSERT_TRUE(first.has_value());
  auto* state = (*first)->upstreams[0].endpoints[0].state.get();
  state->recordFailure(SteadyTime{});
  auto second = build(snapshot());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ((*second)->upstreams[0].endpoints[0].state.get(), state);
  EXPECT_EQ((*second)->upstreams[0].endpoints[0].state->failures(), 1u);
}

TEST_F(RuntimeBuild, RejectsBadCredentials) {
  auto s = snapshot();
  s.leafCertPem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  EXPECT_TRUE(rejects(s, "Leaf.CertPEM"));

  s = snapshot();
  s.leafKeyPem = "garbage";
  EXPECT_TRUE(rejects(s, "Leaf.PrivateKeyPEM: not a PEM private key"));

  s = snapshot();
  s.leafKeyPem = makeLeaf(root_, "web").keyPem;
  EXPECT_TRUE(rejects(s, "Leaf.PrivateKeyPEM: the key does not belong to the leaf"));

  s = snapshot();
  Leaf api = makeLeaf(root_, "api");
  s.leafCertPem = api.certPem, s.leafKeyPem = api.keyPem;
  EXPECT_TRUE(rejects(s, "is not the expected web"));

  s = snapshot();
  auto otherRoot = makeRoot(kTrustDomain, 2);
  s.rootPems = {otherRoot.rootCertPem};
  EXPECT_TRUE(rejects(s, "Leaf.CertPEM"));  // does not chain to the roots

  s = snapshot();
  auto foreignRoot = makeRoot(kOtherTrustDomain, 3);
  Leaf foreign = makeLeaf(foreignRoot, "web", kOtherTrustDomain);
  s.leafCertPem = foreign.certPem, s.leafKeyPem = foreign.keyPem;
  s.rootPems = {foreignRoot.rootCertPem};
  EXPECT_TRUE(rejects(s, "trust domain"));

  s = snapshot();
  Leaf expired = makeLeaf(root_, "web", kTrustDomain,
                          std::chrono::system_clock::now() - std::chrono::hours(100));
  s.leafCertPem = expired.certPem, s.leafKeyPem = expired.keyPem;
  EXPECT_TRUE(rejects(s, "expired"));

  s = snapshot();
  s.rootPems = {leaf_.certPem};
  EXPECT_TRUE(rejects(s, "Roots: trusted root 1 is not a CA certificate"));

  s = snapshot();
  s.rootPems = {"not a pem"};
  EXPECT_TRUE(rejects(s, "Roots[0]"));

  s = snapshot();
  s.upstreams[0].spiffeId = "spiffe://x.consul/api";
  EXPECT_TRUE(rejects(s, "Upstreams[0].SpiffeID"));

  s = snapshot();
  s.trustDomain = "Upper.Consul";
  EXPECT_TRUE(rejects(s, "TrustDomain"));
}

TEST_F(RuntimeBuild, PrecomputesIntentionVerdictsBySource) {
  auto s = snapshot();
  s.defaultAllow = false;
  s.intentions = {intention("api", "web", IntentionAction::kAllow),
                  intention("db", "web", IntentionAction::kDeny),
                  intention("db", "*", IntentionAction::kAllow),
                  intention("cache", "other", IntentionAction::kAllow)};
  auto rt = build(s);
  ASSERT_TRUE(rt.has_value()) << rt.error().message;
  EXPECT_TRUE((*rt)->authorize("api").allowed);
  EXPECT_TRUE((*rt)->authorize("api").matched);
  EXPECT_FALSE((*rt)->authorize("db").allowed);  // exact destination beats the wildcard
  EXPECT_FALSE((*rt)->authorize("cache").allowed);
  EXPECT_FALSE((*rt)->authorize("cache").matched);  // its intention is for another service
  EXPECT_FALSE((*rt)->authorize("unknown").allowed);

  s.defaultAllow = true;
  s.intentions = {intention("*", "web", IntentionAction::kDeny),
                  intention("api", "web", IntentionAction::kAllow)};
  rt = build(s);
  ASSERT_TRUE(rt.has_value());
  EXPECT_TRUE((*rt)->authorize("api").allowed);
  EXPECT_FALSE((*rt)->authorize("anyone").allowed);
  EXPECT_TRUE((*rt)->authorize("anyone").matched);
}

TEST_F(RuntimeBuild, ConfigDumpHasNoPrivateKeyAndClustersShowEndpointState) {
  auto rt = build(snapshot());
  ASSERT_TRUE(rt.has_value());
  std::string dump = configDump(**rt).dump();
  EXPECT_EQ(dump.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(dump.find("PrivateKeyPEM"), std::string::npos);
  EXPECT_NE(dump.find("BEGIN CERTIFICATE"), std::string::npos);

  SteadyTime now = std::chrono::steady_clock::now();
  auto& state = *(*rt)->upstreams[0].endpoints[1].state;
  for (int i = 0; i < kFailureThreshold; ++i) state.recordFailure(now);
  auto c = clusters(**rt, now);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0]["Name"], "api");
  EXPECT_EQ(c[0]["LocalBindPort"], 9191);
  ASSERT_EQ(c[0]["Endpoints"].size(), 2u);
  EXPECT_EQ(c[0]["Endpoints"][0]["State"], "healthy");
  EXPECT_EQ(c[0]["Endpoints"][1]["State"], "ejected");
  EXPECT_EQ(c[0]["Endpoints"][1]["Failures"], 3);
  EXPECT_EQ(c[0]["Endpoints"][1]["EjectedForMs"], 10000);
}

TEST(Stats, PrometheusTextSumsWorkersAndEscapesLabels) {
  Stats stats(2);
  ListenerStats* pub = stats.listener("public");
  EXPECT_EQ(stats.listener("public"), pub);
  ListenerStats* up = stats.listener("upstream:a\"b");
  pub->slot(0).add(Counter::kAccepted, 2);
  pub->slot(1).add(Counter::kAccepted, 3);
  pub->slot(0).add(Counter::kActive);
  pub->slot(1).add(Counter::kActive);
  pub->slot(1).sub(Counter::kActive);
  up->slot(1).add(Counter::kTlsExpired);
  stats.snapshotIndex = 42;
  EXPECT_EQ(stats.activeConnections(), 1u);
  std::string text = stats.prometheus();
  EXPECT_NE(text.find("# TYPE taskmesh_proxy_downstream_cx_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("taskmesh_proxy_downstream_cx_total{listener=\"public\"} 5\n"),
            std::string::npos);
  EXPECT_NE(text.find("taskmesh_proxy_downstream_cx_active{listener=\"public\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("taskmesh_proxy_tls_handshake_failures_total{listener=\"upstream:a\\\"b\","
                      "reason=\"expired\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("taskmesh_proxy_snapshot_index 42\n"), std::string::npos);
  // Every line is a comment or "name{labels} value".
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos);
    std::string line = text.substr(start, end - start);
    if (line[0] != '#') {
      size_t space = line.rfind(' ');
      ASSERT_NE(space, std::string::npos) << line;
      EXPECT_NO_THROW((void)std::stoull(line.substr(space + 1))) << line;
    }
    start = end + 1;
  }
  // One TYPE line per family, even with several reasons.
  size_t types = 0;
  for (size_t at = 0; (at = text.find("# TYPE taskmesh_proxy_tls_handshake_failures_total", at)) !=
                      std::string::npos;
       ++at) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
}

}  // namespace
}  // namespace taskmesh::proxy
