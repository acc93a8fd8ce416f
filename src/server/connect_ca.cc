#include "server/connect_ca.h"

#include <random>

#include "base/duration.h"
#include "base/json.h"
#include "base/log.h"
#include "base/node_id.h"
#include "connect/ca.h"
#include "connect/spiffe.h"

namespace taskmesh::server {
namespace {

using SysClock = std::chrono::system_clock;
using nlohmann::json;

constexpr int kMaxRotationAttempts = 3;
constexpr size_t kMaxSignBodyBytes = 32 * 1024;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("ca");
  return l;
}

int64_t unixSeconds(connect::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
connect::TimePoint fromUnix(int64_t s) { return connect::TimePoint(std::chrono::seconds(s)); }

// A certificate serial: random, positive, never zero.
uint64_t randomSerial() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return (rng() >> 1) | 1;
}

std::chrono::seconds ttlOf(const std::string& text, std::chrono::seconds fallback) {
  auto d = parseDuration(text);
  if (!d || d->count() <= 0) return fallback;
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

store::CaRoot toRow(const connect::RootCa& r) {
  store::CaRoot row;
  row.id = r.id;
  row.name = r.name;
  row.serialNumber = r.serialNumber;
  row.signingKeyId = r.signingKeyId;
  row.notBefore = unixSeconds(r.notBefore);
  row.notAfter = unixSeconds(r.notAfter);
  row.rootCertPem = r.rootCertPem;
  row.privateKeyPem = r.privateKeyPem;
  row.intermediateCertPems = r.intermediateCertPems;
  row.active = true;
  return row;
}

connect::RootCa fromRow(const store::CaRoot& row) {
  connect::RootCa r;
  r.id = row.id;
  r.name = row.name;
  r.serialNumber = row.serialNumber;
  r.signingKeyId = row.signingKeyId;
  r.notBefore = fromUnix(row.notBefore);
  r.notAfter = fromUnix(row.notAfter);
  r.rootCertPem = row.rootCertPem;
  r.privateKeyPem = row.privateKeyPem;
  r.intermediateCertPems = row.intermediateCertPems;
  return r;
}

// What the CA reads from the tables, copied out of the lock.
struct CaView {
  std::string clusterId;
  store::CaConfig config;
  std::vector<store::CaRoot> roots;
  uint64_t caIndex = 0;
  const store::CaRoot* active() const {
    for (const auto& r : roots) {
      if (r.active) return &r;
    }
    return nullptr;
  }
};

CaView readCa(const store::StateStore& store) {
  return store.read([](const store::Tables& t) {
    return CaView{t.clusterId, t.caConfig, t.caRoots, t.caIndex};
  });
}

// Consul's CA common name: "pri-<8 hex>.consul.ca.<first 8 of the trust domain>.consul".
Result<connect::RootCa> newRoot(const std::string& trustDomain, const store::CaConfig& config) {
  connect::RootOptions o;
  o.trustDomain = trustDomain;
  o.commonName = "pri-" + randomHex(8) + ".consul.ca." + trustDomain.substr(0, 8) + ".consul";
  o.serial = randomSerial();
  o.now = SysClock::now();
  o.ttl = ttlOf(config.rootCertTtl, connect::kDefaultRootTtl);
  return connect::generateRoot(o);
}

Result<store::CaSetCommand> bootstrapCommand(const CaView& v) {
  store::CaSetCommand c;
  c.clusterId = v.clusterId.empty() ? randomUuid() : v.clusterId;
  c.config = v.config;
  c.casIndex = v.caIndex;
  auto root = newRoot(connect::trustDomainFor(c.clusterId), c.config);
  if (!root) return makeError(root.error());
  c.roots = v.roots;
  c.roots.push_back(toRow(*root));
  return c;
}

// The active root becomes the new one; the old one stays trusted (inactive) until pruned.
Result<store::CaSetCommand> rotateCommand(const CaView& v, const api::CaConfigUpdate& u) {
  const store::CaRoot* old = v.active();
  if (!old) return makeError(ErrorCode::kUnavailable, "the CA is not initialised yet");
  auto root = newRoot(connect::trustDomainFor(v.clusterId), u.config);
  if (!root) return makeError(root.error());
  auto now = SysClock::now();
  if (!u.forceWithoutCrossSigning) {
    auto cross = connect::crossSign(fromRow(*old), *root, now);
    if (!cross) return makeError(cross.error());
    root->intermediateCertPems = {*cross};
  }
  store::CaSetCommand c;
  c.clusterId = v.clusterId;
  c.config = u.config;
  c.casIndex = v.caIndex;
  for (store::CaRoot r : v.roots) {
    if (r.active) {
      r.active = false;
      r.rotatedOutAt = unixSeconds(now);
    }
    c.roots.push_back(std::move(r));
  }
  c.roots.push_back(toRow(*root));
  return c;
}

// Drops rotated-out roots past 2 × LeafCertTTL since rotation (every leaf they signed has
// expired by then) or past their own NotAfter. Nothing to drop: nullopt.
std::optional<store::CaSetCommand> pruneCommand(const CaView& v, int64_t now) {
  auto keep = std::chrono::duration_cast<std::chrono::seconds>(
                  2 * ttlOf(v.config.leafCertTtl, connect::kDefaultLeafTtl))
                  .count();
  store::CaSetCommand c{v.clusterId, v.config, {}, v.caIndex};
  for (const auto& r : v.roots) {
    bool expired = !r.active && (now > r.rotatedOutAt + keep || now > r.notAfter);
    if (!expired) c.roots.push_back(r);
  }
  if (c.roots.size() == v.roots.size()) return std::nullopt;
  return c;
}

// Applies a CA command; kConflict when another CA change landed first.
Awaitable<Result<void>> applyCa(api::Cluster* cluster, const store::Command* command) {
  auto r = co_await cluster->apply(*command);
  if (!r) co_return makeError(r.error());
  if (r->error) co_return makeError(*r->error);
  if (!r->value) co_return makeError(ErrorCode::kConflict, "another CA change was applied first");
  co_return Result<void>{};
}

Awaitable<void> runTickCommand(api::Cluster* cluster, bool* busy, store::Command command,
                               std::string what) {
  auto r = co_await applyCa(cluster, &command);
  if (r) {
    logger()->info("{}", what);
  } else if (r.error().code != ErrorCode::kConflict) {
    logger()->warn("{} failed error=\"{}\"", what, r.error().message);
  }
  *busy = false;
}

json leafJson(const connect::SignedLeaf& leaf, const store::CaRoot& root, uint64_t caIndex) {
  return {{"SerialNumber", leaf.serialHex},
          {"CertPEM", leaf.certPem},
          {"Service", leaf.service.service},
          {"ServiceURI", leaf.service.uri()},
          {"ValidAfter", formatRfc3339(unixSeconds(leaf.validAfter))},
          {"ValidBefore", formatRfc3339(unixSeconds(leaf.validBefore))},
          {"Namespace", leaf.service.ns},
          {"RootID", root.id},
          {"CreateIndex", caIndex},
          {"ModifyIndex", caIndex}};
}

}  // namespace

ConnectCa::ConnectCa(asio::io_context& io, store::StateStore& store, api::Cluster& cluster,
                     std::string datacenter)
    : io_(io), store_(store), cluster_(cluster), datacenter_(std::move(datacenter)), timer_(io) {}

void ConnectCa::start() { schedule(); }
void ConnectCa::stop() { timer_.cancel(); }
void ConnectCa::leaderReady() { tick(); }

void ConnectCa::schedule() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    tick();
    schedule();
  });
}

void ConnectCa::tick() {
  if (busy_ || !cluster_.isLeader()) return;
  CaView v = readCa(store_);
  std::optional<store::CaSetCommand> command;
  std::string what;
  if (!v.active()) {
    auto c = bootstrapCommand(v);
    if (!c) {
      logger()->error("CA bootstrap failed error=\"{}\"", c.error().message);
      return;
    }
    what = "CA initialised trust-domain=" + connect::trustDomainFor(c->clusterId) +
           " root=" + c->roots.back().id;
    command = std::move(*c);
  } else if (auto p = pruneCommand(v, unixSeconds(SysClock::now()))) {
    what = "pruned " + std::to_string(v.roots.size() - p->roots.size()) + " rotated-out CA root(s)";
    command = std::move(*p);
  }
  if (!command) return;
  busy_ = true;
  asio::co_spawn(io_, runTickCommand(&cluster_, &busy_, std::move(*command), std::move(what)),
                 asio::detached);
}

Awaitable<Result<void>> ConnectCa::setConfig(const api::CaConfigUpdate& update) {
  for (int attempt = 1;; ++attempt) {
    CaView v = readCa(store_);
    auto c = rotateCommand(v, update);
    if (!c) co_return makeError(c.error());
    std::string newId = c->roots.back().id;
    store::Command command = std::move(*c);
    auto r = co_await applyCa(&cluster_, &command);
    if (r) {
      logger()->info("CA root rotated new-root={} cross-signed={}", newId,
                     !update.forceWithoutCrossSigning);
      co_return r;
    }
    if (r.error().code != ErrorCode::kConflict || attempt == kMaxRotationAttempts) co_return r;
  }
}

net::HttpResponse ConnectCa::sign(const net::HttpRequest& req) {
  if (req.method != "POST" && req.method != "PUT") {
    return net::HttpResponse::text(405, "method " + req.method + " not allowed");
  }
  if (req.body.size() > kMaxSignBodyBytes) {
    return net::HttpResponse::text(413, "sign request larger than 32 KB");
  }
  auto body = parseJsonBounded(req.body);
  std::string csr = body ? stringField(*body, "CSR") : "";
  if (csr.empty()) {
    return net::HttpResponse::text(400, "Request decode failed: expected {\"CSR\": \"<PEM>\"}");
  }
  CaView v = readCa(store_);
  const store::CaRoot* root = v.active();
  if (!root) return net::HttpResponse::text(503, "the CA is not initialised yet");
  connect::SignOptions o;
  o.trustDomain = connect::trustDomainFor(v.clusterId);
  o.serial = randomSerial();
  o.now = SysClock::now();
  o.ttl = ttlOf(v.config.leafCertTtl, connect::kDefaultLeafTtl);
  auto leaf = connect::signLeaf(fromRow(*root), csr, o);
  if (!leaf) return net::HttpResponse::text(400, leaf.error().message);
  if (!leaf->service.datacenter.empty() && leaf->service.datacenter != datacenter_) {
    return net::HttpResponse::text(
        400, "CSR is for datacenter " + leaf->service.datacenter + ", this is " + datacenter_);
  }
  return net::HttpResponse::json(leafJson(*leaf, *root, v.caIndex).dump());
}

}  // namespace taskmesh::server
