#include "up/catalog_watch.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>

#include "base/backoff.h"
#include "base/json.h"
#include "net/http_client.h"

namespace taskmesh::up {
namespace {

double unixNow() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

CatalogWatch::CatalogWatch(std::string server, std::string service)
    : server_(std::move(server)), service_(std::move(service)), thread_([this] { run(); }) {}

CatalogWatch::~CatalogWatch() { stop(); }

void CatalogWatch::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

std::optional<double> CatalogWatch::firstPassing(const std::string& serviceId) const {
  std::lock_guard lock(mu_);
  auto it = firstPassing_.find(serviceId);
  if (it == firstPassing_.end()) return std::nullopt;
  return it->second;
}

std::set<std::string> CatalogWatch::passingNow() const {
  std::lock_guard lock(mu_);
  return passingNow_;
}

void CatalogWatch::run() {
  using std::chrono::milliseconds;
  const Backoff fresh(milliseconds(100), milliseconds(1000));
  Backoff backoff = fresh;
  uint64_t index = 0;
  while (!stopping_) {
    net::HttpClientRequest req;
    req.url = "http://" + server_ + "/v1/health/service/" + service_ +
              "?passing&wait=2s&index=" + std::to_string(index);
    req.timeout = milliseconds(5000);
    auto resp = net::httpRequest(req);
    double now = unixNow();
    auto body = resp && resp->status == 200 ? parseJsonBounded(resp->body)
                                            : Result<nlohmann::json>(nlohmann::json());
    if (!resp || resp->status != 200 || !body || !body->is_array()) {
      backoff.wait(Backoff::Clock::now() + milliseconds(2000));  // at most 1 s: stop() stays prompt
      index = 0;
      continue;
    }
    backoff = fresh;
    std::set<std::string> passing;
    for (const auto& entry : *body) {
      auto svc = entry.is_object() ? entry.find("Service") : entry.end();
      if (svc == entry.end()) continue;
      if (auto id = stringField(*svc, "ID"); !id.empty()) passing.insert(id);
    }
    {
      std::lock_guard lock(mu_);
      for (const auto& id : passing) firstPassing_.try_emplace(id, now);
      passingNow_ = std::move(passing);
    }
    // Consul's rule: an index that is missing, malformed or went backwards restarts from 0.
    uint64_t next = 0;
    if (auto h = resp->headers.find("x-consul-index"); h != resp->headers.end()) {
      const auto& v = h->second;
      if (std::from_chars(v.data(), v.data() + v.size(), next).ec != std::errc()) next = 0;
    }
    index = next >= index ? next : 0;
  }
}

}  // namespace taskmesh::up
