#include "proxy/runtime.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "connect/intentions.h"
#include "connect/verify.h"

namespace taskmesh::proxy {
namespace {

using connect::X509Ptr;

Result<std::shared_ptr<const Runtime>> invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

// The oldest OpenSSL error of this thread as text; clears the queue.
std::string opensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Ex-data slots: the expected trust domain on each SSL_CTX, the PeerCheck on each SSL.
int ctxTrustDomainIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int sslPeerCheckIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL has verified the chain, validity and key usage (preverify); at the leaf we add the
// SPIFFE checks: a service ID in our trust domain and, on the client side, the upstream's ID.
int verifyPeer(int preverify, X509_STORE_CTX* store) {
  if (!preverify) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  auto* trustDomain = static_cast<const std::string*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctxTrustDomainIndex()));
  auto* check = static_cast<PeerCheck*>(SSL_get_ex_data(ssl, sslPeerCheckIndex()));
  auto id = connect::serviceIdOf(X509_STORE_CTX_get_current_cert(store));
  if (!id || trustDomain == nullptr || id->trustDomain != *trustDomain) {
    if (check) check->refusal = PeerRefusal::kTrustDomain;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  if (check && check->expected && !(*id == *check->expected)) {
    check->refusal = PeerRefusal::kSpiffeId;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

struct Credentials {
  std::vector<X509Ptr> chain;  // leaf first
  connect::EvpPkeyPtr key;
  connect::X509StorePtr store;
};

Result<Credentials> loadCredentials(const connect::ProxySnapshot& s, connect::TimePoint now) {
  Credentials c;
  auto chain = connect::parseCertificates(s.leafCertPem);
  if (!chain)
    return makeError(ErrorCode::kInvalidArgument, "Leaf.CertPEM: " + chain.error().message);
  c.chain = std::move(*chain);
  connect::BioPtr bio(BIO_new_mem_buf(s.leafKeyPem.data(), static_cast<int>(s.leafKeyPem.size())));
  c.key.reset(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!c.key) {
    ERR_clear_error();
    return makeError(ErrorCode::kInvalidArgument, "Leaf.PrivateKeyPEM: not a PEM private key");
  }
  if (X509_check_private_key(c.chain.front().get(), c.key.get()) != 1) {
    ERR_clear_error();
    return makeError(ErrorCode::kInvalidArgument,
                     "Leaf.PrivateKeyPEM: the key does not belong to the leaf certificate");
  }
  std::vector<X509Ptr> roots;
  for (size_t i = 0; i < s.rootPems.size(); ++i) {
    auto certs = connect::parseCertificates(s.rootPems[i]);
    if (!certs) {
      return makeError(ErrorCode::kInvalidArgument,
                       "Roots[" + std::to_string(i) + "]: " + certs.error().message);
    }
    for (auto& cert : *certs) roots.push_back(std::move(cert));
  }
  auto store = connect::makeTrustStore(roots);
  if (!store) return makeError(ErrorCode::kInvalidArgument, "Roots: " + store.error().message);
  c.store = std::move(*store);
  // Our own leaf must be one that peers accept: chained to the roots, valid, our identity.
  std::vector<X509Ptr> intermediates;
  for (size_t i = 1; i < c.chain.size(); ++i) {
    X509_up_ref(c.chain[i].get());
    intermediates.emplace_back(c.chain[i].get());
  }
  if (auto ok = connect::verifyChain(c.store.get(), c.chain.front().get(), intermediates, now);
      !ok) {
    return makeError(ErrorCode::kInvalidArgument, "Leaf.CertPEM: " + ok.error().message);
  }
  connect::VerifyOptions vo{.trustDomain = s.trustDomain, .expectedService = s.service, .now = now};
  if (auto id = connect::checkLeafIdentity(c.chain.front().get(), vo); !id) {
    return makeError(ErrorCode::kInvalidArgument, "Leaf.CertPEM: " + id.error().message);
  }
  return c;
}

// A TLS 1.3-only context with our leaf, key and roots, verifying its peer with verifyPeer.
Result<SslCtxPtr> makeContext(bool server, const Credentials& c, const std::string* trustDomain,
                              bool tlsResumption) {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return makeError(ErrorCode::kInternal, "SSL_CTX_new: " + opensslError());
  SSL_CTX* p = ctx.get();
  bool ok = SSL_CTX_set_min_proto_version(p, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_max_proto_version(p, TLS1_3_VERSION) == 1 &&
            SSL_CTX_use_certificate(p, c.chain.front().get()) == 1 &&
            SSL_CTX_use_PrivateKey(p, c.key.get()) == 1;
  for (size_t i = 1; ok && i < c.chain.size(); ++i) {
    ok = SSL_CTX_add1_chain_cert(p, c.chain[i].get()) == 1;
  }
  if (ok) SSL_CTX_set1_cert_store(p, c.store.get());
  ok = ok &&
       SSL_CTX_set_ex_data(p, ctxTrustDomainIndex(), const_cast<std::string*>(trustDomain)) == 1;
  if (!ok) return makeError(ErrorCode::kInternal, "TLS context: " + opensslError());
  int mode = SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_CTX_set_verify(p, mode, verifyPeer);
  SSL_CTX_set_verify_depth(p, 8);
  SSL_CTX_set_mode(p, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_CTX_set_options(p, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_session_cache_mode(p, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_read_ahead(p, 1);
  if (tlsResumption) {
    server ? enableServerTickets(p) : enableClientTickets(p);
  } else if (server) {
    SSL_CTX_set_num_tickets(p, 0);
  }
  // BoringSSL's (and so Envoy's) TLS 1.3 preference: AES-128-GCM first; cheaper per record
  // than OpenSSL's default AES-256-GCM, and a suite every TLS 1.3 peer implements.
  if (SSL_CTX_set_ciphersuites(
          p, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1) {
    return makeError(ErrorCode::kInternal, "TLS ciphersuites: " + opensslError());
  }
  return ctx;
}

void precomputeVerdicts(Runtime& rt) {
  const auto& s = rt.snapshot;
  auto relevant = connect::match(s.intentions, connect::MatchBy::kDestination, s.service);
  auto verdict = [&](const std::string& source) {
    auto d = connect::authorize(relevant, source, s.service, s.defaultAllow);
    return Verdict{d.allowed, d.matched.has_value(), std::move(d.reason)};
  };
  for (const auto& i : relevant) {
    if (i.sourceName != connect::kWildcard && !rt.verdicts.contains(i.sourceName)) {
      rt.verdicts.emplace(i.sourceName, verdict(i.sourceName));
    }
  }
  // "*" equals no exact source name, so only wildcard intentions (or the default) apply.
  rt.otherSources = verdict(std::string(connect::kWildcard));
}

Result<void> buildUpstreams(Runtime& rt, EndpointRegistry& registry, const BuildOptions& options) {
  rt.upstreams.reserve(rt.snapshot.upstreams.size());
  for (size_t i = 0; i < rt.snapshot.upstreams.size(); ++i) {
    const auto& u = rt.snapshot.upstreams[i];
    UpstreamRuntime ur;
    ur.config = &u;
    ur.listenerName = upstreamListenerName(u);
    auto id = connect::parseServiceUri(u.spiffeId);
    if (!id) {
      return makeError(ErrorCode::kInvalidArgument,
                       "Upstreams[" + std::to_string(i) + "].SpiffeID: " + id.error().message);
    }
    ur.expectedPeer = std::move(*id);
    for (const auto& e : u.endpoints) {
      EndpointRuntime er;
      er.config = e;
      boost::system::error_code ec;
      auto ip = boost::asio::ip::make_address(e.address, ec);
      if (!ec) er.ip = boost::asio::ip::tcp::endpoint(ip, static_cast<uint16_t>(e.port));
      std::string host =
          e.address.find(':') != std::string::npos ? "[" + e.address + "]" : e.address;
      er.state = registry.get(ur.listenerName, host + ":" + std::to_string(e.port));
      if (options.tlsResumption) er.tickets = std::make_unique<TicketQueue[]>(options.workers);
      ur.endpoints.push_back(std::move(er));
    }
    rt.upstreams.push_back(std::move(ur));
  }
  return {};
}

}  // namespace

void attachPeerCheck(SSL* ssl, PeerCheck* check) {
  SSL_set_ex_data(ssl, sslPeerCheckIndex(), check);
}

std::string upstreamListenerName(const connect::UpstreamSnapshot& u) {
  std::string name = "upstream:" + u.destinationName;
  if (!u.datacenter.empty()) name += "?dc=" + u.datacenter;
  return name;
}

const Verdict& Runtime::authorize(const std::string& sourceService) const {
  auto it = verdicts.find(sourceService);
  return it != verdicts.end() ? it->second : otherSources;
}

const UpstreamRuntime* Runtime::upstream(const std::string& listenerName) const {
  for (const auto& u : upstreams) {
    if (u.listenerName == listenerName) return &u;
  }
  return nullptr;
}

std::shared_ptr<EndpointState> EndpointRegistry::get(const std::string& listenerName,
                                                     const std::string& key) {
  auto& slot = states_[{listenerName, key}];
  if (auto existing = slot.lock()) return existing;
  auto state = std::make_shared<EndpointState>(key);
  slot = state;
  return state;
}

void EndpointRegistry::prune() {
  std::erase_if(states_, [](const auto& entry) { return entry.second.expired(); });
}

Result<std::shared_ptr<const Runtime>> buildRuntime(connect::ProxySnapshot snapshot,
                                                    EndpointRegistry& registry,
                                                    connect::TimePoint now,
                                                    const BuildOptions& options) {
  if (options.workers < 1) return invalid("workers: must be at least 1");
  if (auto ok = connect::validateTrustDomain(snapshot.trustDomain); !ok) {
    return invalid("TrustDomain: " + ok.error().message);
  }
  auto rt = std::make_shared<Runtime>();
  rt->snapshot = std::move(snapshot);
  auto creds = loadCredentials(rt->snapshot, now);
  if (!creds) return makeError(creds.error());
  // The contexts point at rt->snapshot.trustDomain, which lives as long as they do.
  auto server = makeContext(true, *creds, &rt->snapshot.trustDomain, options.tlsResumption);
  if (!server) return makeError(server.error());
  auto client = makeContext(false, *creds, &rt->snapshot.trustDomain, options.tlsResumption);
  if (!client) return makeError(client.error());
  rt->serverCtx = std::move(*server);
  rt->clientCtx = std::move(*client);
  if (auto ok = buildUpstreams(*rt, registry, options); !ok) return makeError(ok.error());
  boost::system::error_code ec;
  auto appIp = boost::asio::ip::make_address(rt->snapshot.localAppAddress, ec);
  if (!ec) {
    rt->localAppIp =
        boost::asio::ip::tcp::endpoint(appIp, static_cast<uint16_t>(rt->snapshot.localAppPort));
  }
  precomputeVerdicts(*rt);
  return std::shared_ptr<const Runtime>(std::move(rt));
}

}  // namespace taskmesh::proxy
