#pragma once
// Runs the agent's checks (reference/consul-http-api.md §12) and reports their results into
// the LocalState: HTTP (2xx passing, 429 warning, else critical), TCP (connect), script (exit
// 0 passing, 1 warning, else critical; killed at its timeout), TTL (critical when not
// refreshed in time), alias (mirrors a local service at once, a remote one through blocking
// queries). Interval checks run once at registration, not after a first interval, and then
// every Interval — except that until a check first passes it runs twenty times per Interval
// (at least 50 ms apart; script checks ten times, 200 ms apart; not with SuccessBeforePassing
// > 1), so a starting app is seen passing within 50 ms, not up to an Interval late. The
// consecutive-result thresholds apply between probe results and status.
// Services whose check stays critical longer than DeregisterCriticalServiceAfter are removed.
// Unlike Consul, which opens a new connection for every HTTP check run, an HTTP check keeps one
// keep-alive connection (net::HttpConnection): a new TCP connection per run costs more CPU
// than the request. A connection the app closed while idle is replaced without a failure.
//
// Thread: the agent's io_context. Ownership: one Runner per check, held here; a probe in
// flight holds only a weak reference, so removing a check drops its result on the floor.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/local_state.h"
#include "agent/server_link.h"
#include "net/asio.h"

namespace taskmesh::agent {

class CheckRunners {
 public:
  CheckRunners(asio::io_context& io, LocalState& state, ServerLink& servers);
  ~CheckRunners();

  // (Re)starts the runner of a check from its definition in the LocalState.
  void start(const std::string& checkId);
  void stop(const std::string& checkId);
  void stopAll();
  // A local check's status changed: alias checks that mirror its service follow at once.
  void localStatusChanged(const std::string& checkId);

  // TTL updates (/v1/agent/check/pass|warn|fail|update): sets the status and restarts the
  // TTL clock. kNotFound for an unknown check; kInvalidArgument for a non-TTL check.
  Result<void> ttlUpdate(const std::string& checkId, const std::string& status,
                         const std::string& output);

  // TTL state across agent restarts (Consul keeps a TTL check's last status until its TTL
  // runs out): the time left on a TTL check's clock, and putting a saved status back with
  // the time that was left (never more than the TTL).
  std::optional<std::chrono::milliseconds> ttlRemaining(const std::string& checkId) const;
  void restoreTtl(const std::string& checkId, const std::string& status, const std::string& output,
                  std::chrono::milliseconds left);
  // Called after every successful ttlUpdate (the agent saves the TTL state then).
  void onTtlUpdated(std::function<void(const std::string&)> f) { ttlUpdated_ = std::move(f); }

  // Starts the 1 s sweep that applies DeregisterCriticalServiceAfter.
  void startReaper();

  struct Runner;

 private:
  void schedule(const std::shared_ptr<Runner>& r, std::chrono::milliseconds delay);
  void probe(const std::shared_ptr<Runner>& r);
  void report(const std::shared_ptr<Runner>& r, const std::string& status, std::string output);
  void evaluateLocalAlias(const std::shared_ptr<Runner>& r);
  void armTtl(const std::shared_ptr<Runner>& r);
  void armTtlFor(const std::shared_ptr<Runner>& r, std::chrono::milliseconds left);
  void reap();

  asio::io_context& io_;
  LocalState& state_;
  ServerLink& servers_;
  std::map<std::string, std::shared_ptr<Runner>> runners_;
  asio::steady_timer reaper_;
  std::function<void(const std::string&)> ttlUpdated_;
  bool reaping_ = false;
};

// Runs argv with stdout+stderr captured (at most maxOutput bytes kept), killing its process
// group after `timeout`. Calls done(exitCode or -1, output) on io's thread. Exposed for tests.
void runScript(asio::io_context& io, const std::vector<std::string>& argv,
               std::chrono::milliseconds timeout, size_t maxOutput,
               std::function<void(int exitCode, std::string output)> done);

}  // namespace taskmesh::agent
