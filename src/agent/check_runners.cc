#include "agent/check_runners.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "base/duration.h"
#include "base/json.h"
#include "base/log.h"
#include "net/http.h"
#include "net/http_client.h"

extern char** environ;

namespace taskmesh::agent {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("agent");
  return l;
}

std::string truncate(std::string s, size_t max) {
  if (s.size() > max) {
    s.resize(max);
    s += " ... (output truncated)";
  }
  return s;
}

// One script run: the child, the pipe of its output, and a pidfd that turns readable when it
// exits. Lives until the exit has been collected.
struct ScriptRun : std::enable_shared_from_this<ScriptRun> {
  ScriptRun(asio::io_context& io, size_t maxOutput)
      : pipe(io), exitWatch(io), timer(io), maxOutput(maxOutput) {}
  asio::posix::stream_descriptor pipe;
  asio::posix::stream_descriptor exitWatch;
  asio::steady_timer timer;
  size_t maxOutput;
  pid_t pid = -1;
  std::string output;
  std::array<char, 4096> buf{};
  bool timedOut = false;
  std::chrono::milliseconds timeout{0};
  std::function<void(int, std::string)> done;

  void readMore() {
    auto self = shared_from_this();
    pipe.async_read_some(asio::buffer(buf), [self](boost::system::error_code ec, size_t n) {
      if (ec) return;
      if (self->output.size() < self->maxOutput)
        self->output.append(self->buf.data(), std::min(n, self->maxOutput - self->output.size()));
      self->readMore();
    });
  }
  void drain() {
    // Whatever the child wrote before it exited is in the pipe now.
    boost::system::error_code ec;
    pipe.non_blocking(true, ec);
    for (;;) {
      size_t n = pipe.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) break;
      if (output.size() < maxOutput)
        output.append(buf.data(), std::min(n, maxOutput - output.size()));
    }
    pipe.close(ec);
  }
  void finish() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    timer.cancel();
    drain();
    boost::system::error_code ec;
    exitWatch.close(ec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (timedOut) {
      code = -1;
      output = "Timed out (" + formatDuration(timeout) + ") running check";
    }
    auto cb = std::move(done);
    done = nullptr;
    if (cb) cb(code, std::move(output));
  }
};

}  // namespace

void runScript(asio::io_context& io, const std::vector<std::string>& argv,
               std::chrono::milliseconds timeout, size_t maxOutput,
               std::function<void(int, std::string)> done) {
  auto fail = [&io, &done](std::string why) {
    asio::post(io, [done = std::move(done), why = std::move(why)] { done(-1, why); });
  };
  if (argv.empty()) return fail("no command");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a timeout kills its children too
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return fail("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(fds[0]);
    return fail(std::string("pidfd_open: ") + std::strerror(errno));
  }
  auto run = std::make_shared<ScriptRun>(io, maxOutput);
  run->pid = pid;
  run->timeout = timeout;
  run->done = std::move(done);
  run->pipe.assign(fds[0]);
  run->exitWatch.assign(pidfd);
  run->readMore();
  run->timer.expires_after(timeout);
  run->timer.async_wait([run](boost::system::error_code ec) {
    if (ec) return;
    run->timedOut = true;
    ::kill(-run->pid, SIGKILL);
  });
  run->exitWatch.async_wait(asio::posix::stream_descriptor::wait_read,
                            [run](boost::system::error_code) { run->finish(); });
}

struct CheckRunners::Runner {
  Runner(asio::io_context& io, const CheckDefinition& d) : def(d), thresholds(d), timer(io) {}
  CheckDefinition def;
  Thresholds thresholds;
  asio::steady_timer timer;
  std::unique_ptr<net::HttpConnection> http;  // HTTP checks: one keep-alive connection
  bool stopped = false;
  bool passed = false;  // a probe has reported passing since registration
  uint64_t remoteIndex = 0;
};

namespace {

// How long after a probe started the next one starts. A check that has not passed yet runs
// twenty times per interval, at least kEarlyPace apart (a script check, which starts a process
// each time, ten times and kEarlyScriptPace apart), so a service whose app is still starting
// passes within kEarlyPace of the app answering rather than up to one interval later (T3→T4 of
// a task). Not with SuccessBeforePassing > 1, whose consecutive passes are meant to be spread
// over intervals.
constexpr std::chrono::milliseconds kEarlyPace{50};
constexpr std::chrono::milliseconds kEarlyScriptPace{200};

std::chrono::milliseconds pace(const CheckDefinition& d, bool passed) {
  if (passed || d.successBeforePassing > 1) return d.interval;
  auto early = d.kind == CheckKind::kScript ? std::max(kEarlyScriptPace, d.interval / 10)
                                            : std::max(kEarlyPace, d.interval / 20);
  return std::min(d.interval, early);
}

}  // namespace

CheckRunners::CheckRunners(asio::io_context& io, LocalState& state, ServerLink& servers)
    : io_(io), state_(state), servers_(servers), reaper_(io) {}

CheckRunners::~CheckRunners() { stopAll(); }

void CheckRunners::stop(const std::string& checkId) {
  auto it = runners_.find(checkId);
  if (it == runners_.end()) return;
  it->second->stopped = true;
  it->second->timer.cancel();
  runners_.erase(it);
}

void CheckRunners::stopAll() {
  for (auto& [id, r] : runners_) {
    r->stopped = true;
    r->timer.cancel();
  }
  runners_.clear();
  reaper_.cancel();
}

void CheckRunners::start(const std::string& checkId) {
  stop(checkId);
  const LocalCheck* c = state_.check(checkId);
  if (c == nullptr) return;
  auto r = std::make_shared<Runner>(io_, c->definition);
  runners_[checkId] = r;
  switch (r->def.kind) {
    case CheckKind::kTtl:
      armTtl(r);
      break;
    case CheckKind::kMaintenance:
      break;
    case CheckKind::kAlias:
      if (r->def.aliasNode.empty() || r->def.aliasNode == state_.node()) {
        // Evaluated after the current change completes (the aliased service may be
        // registered in the same call).
        asio::post(io_, [this, weak = std::weak_ptr<Runner>(r)] {
          if (auto live = weak.lock(); live && !live->stopped) evaluateLocalAlias(live);
        });
      } else {
        schedule(r, std::chrono::milliseconds(0));
      }
      break;
    default:
      schedule(r, std::chrono::milliseconds(0));  // the first run is immediate
      break;
  }
}

void CheckRunners::schedule(const std::shared_ptr<Runner>& r, std::chrono::milliseconds delay) {
  r->timer.expires_after(delay);
  r->timer.async_wait([this, weak = std::weak_ptr<Runner>(r)](boost::system::error_code ec) {
    auto live = weak.lock();
    if (ec || !live || live->stopped) return;
    probe(live);
  });
}

void CheckRunners::report(const std::shared_ptr<Runner>& r, const std::string& status,
                          std::string output) {
  if (r->stopped) return;
  if (status == store::kPassing) r->passed = true;
  auto reported = r->thresholds.record(status);
  if (!reported) return;
  (void)state_.updateCheck(r->def.id, *reported, truncate(std::move(output), r->def.outputMaxSize));
}

void CheckRunners::probe(const std::shared_ptr<Runner>& r) {
  const CheckDefinition& d = r->def;
  std::weak_ptr<Runner> weak = r;
  auto started = std::chrono::steady_clock::now();
  // The next run is one pace (an interval, once passed) after this one started, or at once
  // when it overran.
  auto next = [this, weak, started](const std::string& status, std::string output) {
    auto live = weak.lock();
    if (!live || live->stopped) return;
    report(live, status, std::move(output));
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    schedule(live, std::max(std::chrono::milliseconds(0), pace(live->def, live->passed) - elapsed));
  };
  switch (d.kind) {
    case CheckKind::kHttp: {
      net::HttpClientRequest req;
      req.method = d.method;
      req.url = d.http;
      req.body = d.body;
      req.timeout = d.timeout;
      req.maxResponseBytes = 1 << 20;
      for (const auto& [k, values] : d.header) {
        for (const auto& v : values) req.headers.emplace_back(k, v);
      }
      std::string what = "HTTP " + d.method + " " + d.http;
      auto onResponse = [next, what](Result<net::HttpClientResponse> resp) {
        if (!resp) return next(store::kCritical, resp.error().message);
        int s = resp->status;
        std::string status = s >= 200 && s < 300 ? store::kPassing
                             : s == 429          ? store::kWarning
                                                 : store::kCritical;
        std::string line = std::to_string(s);
        if (!resp->reason.empty()) line += " " + resp->reason;
        next(status, what + ": " + line + " Output: " + resp->body);
      };
      if (d.http.starts_with("https:")) {
        net::asyncHttpRequest(io_, req, onResponse);  // a TLS session per run, verified
      } else {
        if (!r->http) r->http = std::make_unique<net::HttpConnection>(io_);
        r->http->request(req, onResponse);
      }
      break;
    }
    case CheckKind::kTcp: {
      std::string what = "TCP connect " + d.tcp;
      net::asyncDialTcp(io_, d.tcp, d.timeout, [next, what](Result<void> ok) {
        if (!ok) return next(store::kCritical, ok.error().message);
        next(store::kPassing, what + ": Success");
      });
      break;
    }
    case CheckKind::kScript: {
      runScript(io_, d.args, d.timeout, d.outputMaxSize, [next](int code, std::string output) {
        std::string status = code == 0   ? store::kPassing
                             : code == 1 ? store::kWarning
                                         : store::kCritical;
        next(status, std::move(output));
      });
      break;
    }
    case CheckKind::kAlias: {
      // Remote alias: a blocking query on the aliased node's health, stale is fine.
      std::string target = "/v1/health/node/" + net::percentEncodePathSegment(d.aliasNode) +
                           "?stale&wait=60s&index=" + std::to_string(r->remoteIndex);
      std::string service = d.aliasService;
      servers_.asyncCall("GET", target, "", std::chrono::milliseconds(70000),
                         [this, weak, service](Result<net::HttpClientResponse> resp) {
                           auto live = weak.lock();
                           if (!live || live->stopped) return;
                           std::string status = store::kCritical;
                           std::string output;
                           bool ok = false;
                           if (!resp) {
                             output = resp.error().message;
                           } else if (resp->status != 200) {
                             output = "alias node query answered " + std::to_string(resp->status);
                           } else {
                             auto j = nlohmann::json::parse(resp->body, nullptr, false);
                             if (j.is_array()) {
                               ok = true;
                               status = store::kPassing;
                               int seen = 0;
                               for (const auto& c : j) {
                                 std::string sid = stringField(c, "ServiceID");
                                 // Without AliasService: the node-level checks only.
                                 if (!sid.empty() && sid != service) continue;
                                 ++seen;
                                 status = worseStatus(status,
                                                      stringField(c, "Status", store::kCritical));
                               }
                               output = seen == 0 ? "No checks found." : "All checks passing.";
                               if (status != store::kPassing)
                                 output = "Aliased checks are " + status + ".";
                               auto idx = resp->header("x-consul-index");
                               uint64_t next = std::strtoull(idx.c_str(), nullptr, 10);
                               live->remoteIndex = next < live->remoteIndex ? 0 : next;
                             } else {
                               output = "alias node query answered with invalid JSON";
                             }
                           }
                           report(live, status, output);
                           // Blocking queries pace themselves; errors back off.
                           schedule(live, std::chrono::milliseconds(ok ? 0 : 1000));
                         });
      break;
    }
    case CheckKind::kTtl:
    case CheckKind::kMaintenance:
      break;
  }
}

void CheckRunners::evaluateLocalAlias(const std::shared_ptr<Runner>& r) {
  const std::string& target = r->def.aliasService;
  std::string status;
  std::string output;
  if (!target.empty() && state_.service(target) == nullptr) {
    status = store::kCritical;
    output = "Service " + target + " could not be found on node " + state_.node();
  } else {
    status = store::kPassing;
    for (const auto& [id, c] : state_.checks()) {
      if (id == r->def.id) continue;
      // The target's checks and the node-level ones (only those for a node alias), as
      // Consul's CheckAlias.processChecks.
      if (!c.definition.serviceId.empty() && c.definition.serviceId != target) continue;
      status = worseStatus(status, c.check.status);
    }
    output =
        status == store::kPassing ? "All checks passing." : "Aliased checks are " + status + ".";
  }
  // Alias checks mirror directly; thresholds do not apply.
  (void)state_.updateCheck(r->def.id, status, output);
}

void CheckRunners::localStatusChanged(const std::string& checkId) {
  const LocalCheck* changed = state_.check(checkId);
  std::string serviceId = changed ? changed->definition.serviceId : "";
  std::vector<std::shared_ptr<Runner>> aliases;
  for (auto& [id, r] : runners_) {
    if (id == checkId || r->def.kind != CheckKind::kAlias) continue;
    if (!r->def.aliasNode.empty() && r->def.aliasNode != state_.node()) continue;
    if (changed == nullptr || serviceId.empty() || r->def.aliasService.empty() ||
        r->def.aliasService == serviceId) {
      aliases.push_back(r);
    }
  }
  for (auto& r : aliases) {
    if (!r->stopped) evaluateLocalAlias(r);
  }
}

void CheckRunners::armTtl(const std::shared_ptr<Runner>& r) { armTtlFor(r, r->def.ttl); }

void CheckRunners::armTtlFor(const std::shared_ptr<Runner>& r, std::chrono::milliseconds left) {
  r->timer.expires_after(left);
  r->timer.async_wait([this, weak = std::weak_ptr<Runner>(r)](boost::system::error_code ec) {
    auto live = weak.lock();
    if (ec || !live || live->stopped) return;
    (void)state_.updateCheck(live->def.id, store::kCritical, "TTL expired");
  });
}

Result<void> CheckRunners::ttlUpdate(const std::string& checkId, const std::string& status,
                                     const std::string& output) {
  auto it = runners_.find(checkId);
  const LocalCheck* c = state_.check(checkId);
  if (c == nullptr || it == runners_.end()) {
    return makeError(ErrorCode::kNotFound, "Unknown check ID \"" + checkId +
                                               "\". Ensure that the check ID is passed, "
                                               "not the check name.");
  }
  if (c->definition.kind != CheckKind::kTtl) {
    return makeError(ErrorCode::kInvalidArgument,
                     "CheckID \"" + checkId + "\" does not have associated TTL");
  }
  auto r = it->second;
  auto updated = state_.updateCheck(checkId, status, truncate(output, c->definition.outputMaxSize));
  if (!updated) return updated;
  armTtl(r);
  if (ttlUpdated_) ttlUpdated_(checkId);
  return {};
}

std::optional<std::chrono::milliseconds> CheckRunners::ttlRemaining(
    const std::string& checkId) const {
  auto it = runners_.find(checkId);
  if (it == runners_.end() || it->second->def.kind != CheckKind::kTtl) return std::nullopt;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      it->second->timer.expiry() - std::chrono::steady_clock::now());
  if (left.count() <= 0) return std::nullopt;
  return left;
}

void CheckRunners::restoreTtl(const std::string& checkId, const std::string& status,
                              const std::string& output, std::chrono::milliseconds left) {
  auto it = runners_.find(checkId);
  if (it == runners_.end() || it->second->def.kind != CheckKind::kTtl || left.count() <= 0) return;
  left = std::min(left, it->second->def.ttl);
  (void)state_.updateCheck(checkId, status, output);
  armTtlFor(it->second, left);
}

void CheckRunners::startReaper() {
  reaper_.expires_after(std::chrono::seconds(1));
  reaper_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    reap();
    startReaper();
  });
}

void CheckRunners::reap() {
  auto now = Clock::now();
  std::vector<std::pair<std::string, std::string>> doomed;  // service, check
  for (const auto& [id, c] : state_.checks()) {
    const auto& d = c.definition;
    if (d.serviceId.empty() || d.deregisterCriticalServiceAfter.count() <= 0) continue;
    if (c.check.status == store::kCritical && c.criticalSince &&
        now - *c.criticalSince > d.deregisterCriticalServiceAfter) {
      doomed.emplace_back(d.serviceId, id);
    }
  }
  for (const auto& [service, check] : doomed) {
    if (state_.service(service) == nullptr) continue;
    logger()->warn("check={} critical for too long, deregistering service={}", check, service);
    state_.removeService(service);
  }
}

}  // namespace taskmesh::agent
