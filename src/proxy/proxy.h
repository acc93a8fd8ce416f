#pragma once
// `taskmesh proxy` (DESIGN.md §4): the sidecar data plane.
//
// Threads: the main thread runs io() — the config watcher (long poll of the local agent), the
// admin HTTP server, listener reconciliation, signals and draining. N workers (worker.h) run
// the listeners and connections. Config reaches the workers as shared_ptr<const Runtime>
// posted to each; listeners are opened (SO_REUSEPORT, one socket per worker) on the main
// thread and handed over. No locks on the data path.
//
// Lifecycle: create() (binds the admin address) → start() → io().run() ... drain(done) →
// done(cut) stops io() → shutdown() joins the workers.

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "connect/proxy_config.h"
#include "net/asio.h"
#include "net/http.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "proxy/options.h"
#include "proxy/runtime.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

namespace taskmesh::proxy {

class Proxy {
 public:
  // Binds the admin address (an error names it). Workers start in start().
  static Result<std::unique_ptr<Proxy>> create(const ProxyConfig& config);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  asio::io_context& io() { return io_; }
  uint16_t adminPort() const { return adminPort_; }

  // Starts the workers and the config watcher. Main thread, once.
  Result<void> start();

  // Stops accepting (every listener closes, /ready turns 503), waits for open connections to
  // finish up to the drain timeout, closes what is left, then calls done(cut) on the main
  // thread with the number of connections it had to close. Main thread; a later call only
  // adds its `done`, called when the drain finishes (at once if it has).
  void drain(std::function<void(uint64_t cut)> done);

  // Stops and joins the workers. After io() stopped running.
  void shutdown();

  // Applies a snapshot as if the agent had served it (the watcher's path). Main thread.
  Result<void> apply(connect::ProxySnapshot snapshot);

  bool ready() const { return stats_.ready.load(std::memory_order_relaxed); }

 private:
  explicit Proxy(const ProxyConfig& config);

  struct Bound {
    std::string name;
    ListenerKind kind;
  };
  struct Wanted {
    std::string key, name, address;
    int port;
    ListenerKind kind;
  };

  Awaitable<void> watch();
  // One poll's outcome; `index` advances when the agent answered with a new index.
  Result<void> handlePoll(const Result<net::HttpClientResponse>& response, uint64_t& index);
  Awaitable<void> drainLoop();
  Awaitable<net::HttpResponse> admin(net::HttpRequest& request);

  void reconcileListeners();
  Result<void> bindEverywhere(const Wanted& wanted);
  void updateReady();

  ProxyConfig config_;
  asio::io_context io_{1};
  Stats stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  net::HttpServer adminServer_;
  uint16_t adminPort_ = 0;
  asio::steady_timer rebindTimer_;

  // Main-thread state.
  std::shared_ptr<const Runtime> current_;
  EndpointRegistry registry_;
  std::map<std::string, Bound> bound_;  // by key: listeners every worker has
  bool allBound_ = false;
  bool draining_ = false;
  bool started_ = false;
  std::vector<std::function<void(uint64_t)>> drainDone_;
  bool drainFinished_ = false;
  uint64_t drainCut_ = 0;
};

// The subcommand: resolves options, runs until SIGTERM/SIGINT and a drain. Returns 0 after a
// drain, 1 on a configuration or startup error (logged with what is wrong).
int run(const ProxyOptions& options);

}  // namespace taskmesh::proxy
