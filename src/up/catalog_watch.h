#pragma once
// Watches one service in the catalog with Consul blocking queries
// (GET /v1/health/service/<name>?passing&index=..&wait=2s on a server) and records, for every
// service instance, the first moment it was seen passing: the T4 of its task.
//
// Threads: one thread of its own, started by the constructor and joined by stop() or the
// destructor (within one request timeout, 5 s). The accessors are safe from any thread.
// Every request has a timeout; after a failure it backs off from 100 ms to 2 s.

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace taskmesh::up {

class CatalogWatch {
 public:
  // `server`: "host:port" of a server's HTTP API.
  CatalogWatch(std::string server, std::string service);
  ~CatalogWatch();
  CatalogWatch(const CatalogWatch&) = delete;
  CatalogWatch& operator=(const CatalogWatch&) = delete;

  void stop();
  // Unix seconds when `serviceId` was first seen passing, if it was.
  std::optional<double> firstPassing(const std::string& serviceId) const;
  // The instances passing in the latest answer.
  std::set<std::string> passingNow() const;

 private:
  void run();

  const std::string server_;
  const std::string service_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards the two members below
  std::map<std::string, double> firstPassing_;
  std::set<std::string> passingNow_;
  std::thread thread_;
};

}  // namespace taskmesh::up
