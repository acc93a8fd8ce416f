#pragma once
// Test doubles for the runtime's two seams (container_engine.h, task_network.h): a
// FakeEngine and a FakeNetwork that record every call and let the test decide what happens
// and when. They keep the seams' contracts: every callback is posted on the io_context, never
// invoked from inside the call that registered it, and `exited` is delivered at most once per
// started container. Calls the contracts forbid are recorded in violations().
//
// Thread: the io_context thread (the test's). Outcomes (start, exit, exec result) take effect
// in the fake's state at once; only the callbacks are deferred.

#include <csignal>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "net/asio.h"
#include "runtime/container_engine.h"
#include "runtime/task_network.h"

namespace taskmesh::runtime::testing {

class FakeEngine : public ContainerEngine {
 public:
  enum class State { kStarting, kRunning, kExited, kStartFailed };
  enum class CallKind { kStart, kSignal, kExec, kRemove };

  struct Call {
    CallKind kind;
    std::string id;
    int signal = 0;                 // kSignal
    std::vector<std::string> args;  // kExec
  };

  // What start() does with a container. kStart: it starts (the pid is reported next turn);
  // kFail: start reports an error carrying `message`; kHold: nothing until the test calls
  // completeStart() or failStart().
  struct StartOutcome {
    enum Kind { kStart, kFail, kHold } kind = kStart;
    std::string message;
  };

  explicit FakeEngine(asio::io_context& io) : io_(io) {}

  // Policies; each may be replaced by a test at any time.
  std::function<StartOutcome(const ContainerSpec&)> onStart = [](const ContainerSpec&) {
    return StartOutcome{};
  };
  // The exit code a running container exits with when it gets `signal`, or nullopt if it
  // keeps running. Default: it dies of the signal (128 + signal).
  std::function<std::optional<int>(const std::string& id, int signal)> onSignal =
      [](const std::string&, int signal) { return std::optional<int>(128 + signal); };
  // What an exec returns, or nullopt to hold it until completeExec(). Default: exit code 0.
  std::function<std::optional<ExecResult>(const std::string& id,
                                          const std::vector<std::string>& args)>
      onExec = [](const std::string&, const std::vector<std::string>&) {
        return std::optional<ExecResult>(
            ExecResult{.exitCode = 0, .timedOut = false, .output = ""});
      };

  // --- ContainerEngine
  void start(const ContainerSpec& spec, std::function<void(Result<pid_t>)> started,
             std::function<void(int exitCode)> exited) override {
    calls_.push_back(Call{CallKind::kStart, spec.id, 0, {}});
    if (containers_.contains(spec.id)) violation("start of an existing id " + spec.id);
    auto& c = containers_[spec.id];
    c = Container{.spec = spec, .started = std::move(started), .exited = std::move(exited)};
    StartOutcome outcome = onStart(spec);
    if (outcome.kind == StartOutcome::kStart) completeStart(spec.id);
    if (outcome.kind == StartOutcome::kFail) failStart(spec.id, outcome.message);
  }

  void signal(const std::string& id, int signal) override {
    calls_.push_back(Call{CallKind::kSignal, id, signal, {}});
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second.state != State::kRunning) return;  // ignored
    if (auto code = onSignal(id, signal)) exit(id, *code);
  }

  void exec(const std::string& id, const std::vector<std::string>& args,
            std::chrono::milliseconds /*timeout*/, std::function<void(ExecResult)> done) override {
    calls_.push_back(Call{CallKind::kExec, id, 0, args});
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second.state != State::kRunning) {
      post(std::move(done), ExecResult{.exitCode = 126,
                                       .timedOut = false,
                                       .output = "container " + id + " is not running"});
      return;
    }
    if (auto result = onExec(id, args)) {
      post(std::move(done), *result);
    } else {
      pendingExecs_[id].push_back(std::move(done));
    }
  }

  void remove(const std::string& id, std::function<void(Result<void>)> done) override {
    calls_.push_back(Call{CallKind::kRemove, id, 0, {}});
    auto it = containers_.find(id);
    if (it == containers_.end()) {
      violation("remove of unknown id " + id);
    } else if (it->second.state == State::kStarting) {
      violation("remove of " + id + " while its start is pending");
    } else if (it->second.state == State::kRunning) {
      exit(id, 128 + SIGKILL);  // killed first, as the contract says
    }
    if (it != containers_.end()) it->second.removed = true;
    post(std::move(done), Result<void>{});
  }

  Result<std::vector<std::string>> removeOrphans() override {
    ++orphanSweeps_;
    return std::vector<std::string>{};
  }

  // --- test controls
  // Reports a held start as successful (assigning a pid).
  void completeStart(const std::string& id) {
    auto* c = find(id, State::kStarting, "completeStart");
    if (!c) return;
    c->state = State::kRunning;
    c->pid = nextPid_++;
    post(c->started, Result<pid_t>(c->pid));
  }
  void failStart(const std::string& id, const std::string& message) {
    auto* c = find(id, State::kStarting, "failStart");
    if (!c) return;
    c->state = State::kStartFailed;
    post(c->started, Result<pid_t>(makeError(ErrorCode::kInternal, message)));
  }
  // The container's process exits with `code`.
  void exit(const std::string& id, int code) {
    auto* c = find(id, State::kRunning, "exit");
    if (!c) return;
    c->state = State::kExited;
    c->exitCode = code;
    post(c->exited, code);
  }
  // Answers the oldest held exec on `id`; false if none is held.
  bool completeExec(const std::string& id, ExecResult result) {
    auto it = pendingExecs_.find(id);
    if (it == pendingExecs_.end() || it->second.empty()) return false;
    auto done = std::move(it->second.front());
    it->second.erase(it->second.begin());
    post(std::move(done), std::move(result));
    return true;
  }

  // --- queries
  const std::vector<Call>& calls() const { return calls_; }
  const std::vector<std::string>& violations() const { return violations_; }
  int orphanSweeps() const { return orphanSweeps_; }
  bool has(const std::string& id) const { return containers_.contains(id); }
  std::optional<State> state(const std::string& id) const {
    auto it = containers_.find(id);
    return it == containers_.end() ? std::nullopt : std::optional<State>(it->second.state);
  }
  bool removed(const std::string& id) const {
    auto it = containers_.find(id);
    return it != containers_.end() && it->second.removed;
  }
  const ContainerSpec* spec(const std::string& id) const {
    auto it = containers_.find(id);
    return it == containers_.end() ? nullptr : &it->second.spec;
  }
  size_t heldExecs(const std::string& id) const {
    auto it = pendingExecs_.find(id);
    return it == pendingExecs_.end() ? 0 : it->second.size();
  }
  // Ids of the calls of `kind` (and `signal`, for kSignal when non-zero), in call order.
  std::vector<std::string> ids(CallKind kind, int signal = 0) const {
    std::vector<std::string> out;
    for (const auto& c : calls_) {
      if (c.kind == kind && (signal == 0 || c.signal == signal)) out.push_back(c.id);
    }
    return out;
  }
  size_t count(CallKind kind, const std::string& id) const {
    size_t n = 0;
    for (const auto& c : calls_) n += c.kind == kind && c.id == id ? 1 : 0;
    return n;
  }

 private:
  struct Container {
    ContainerSpec spec;
    std::function<void(Result<pid_t>)> started;
    std::function<void(int)> exited;
    State state = State::kStarting;
    pid_t pid = 0;
    std::optional<int> exitCode;
    bool removed = false;
  };

  template <typename F, typename A>
  void post(F callback, A arg) {
    asio::post(io_, [cb = std::move(callback), a = std::move(arg)]() mutable { cb(std::move(a)); });
  }
  // The container `id` if it is in `want`; otherwise records the test's mistake.
  Container* find(const std::string& id, State want, const char* what) {
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second.state != want) {
      violation(std::string(what) + " of " + id + ": unknown or in the wrong state");
      return nullptr;
    }
    return &it->second;
  }
  void violation(std::string what) { violations_.push_back(std::move(what)); }

  asio::io_context& io_;
  std::map<std::string, Container> containers_;
  std::map<std::string, std::vector<std::function<void(ExecResult)>>> pendingExecs_;
  std::vector<Call> calls_;
  std::vector<std::string> violations_;
  pid_t nextPid_ = 1000;
  int orphanSweeps_ = 0;
};

class FakeNetwork : public TaskNetwork {
 public:
  explicit FakeNetwork(asio::io_context& io) : io_(io) {}

  // Non-empty: every setup() fails with this message.
  std::string setupFailure;
  // True: setup() waits for completeSetup() / failSetup().
  bool holdSetup = false;

  void setup(const std::string& taskId, std::function<void(Result<TaskAttachment>)> done) override {
    setups_.push_back(taskId);
    if (!active_.insert({taskId, false}).second) violations_.push_back("setup twice: " + taskId);
    if (holdSetup) {
      held_[taskId] = std::move(done);
    } else {
      reply(taskId, std::move(done), setupFailure);
    }
  }

  void teardown(const std::string& taskId, std::function<void(Result<void>)> done) override {
    teardowns_.push_back(taskId);
    asio::post(io_, [done = std::move(done)] { done(Result<void>{}); });
  }

  Result<std::vector<std::string>> removeOrphans() override { return std::vector<std::string>{}; }
  std::string gatewayAddress() const override { return "198.18.0.1"; }

  // --- test controls for held setups
  void completeSetup(const std::string& taskId) { release(taskId, ""); }
  void failSetup(const std::string& taskId, const std::string& message) {
    release(taskId, message);
  }

  // --- queries
  const std::vector<std::string>& setups() const { return setups_; }
  const std::vector<std::string>& teardowns() const { return teardowns_; }
  size_t teardownCount(const std::string& taskId) const {
    size_t n = 0;
    for (const auto& t : teardowns_) n += t == taskId ? 1 : 0;
    return n;
  }
  const std::vector<std::string>& violations() const { return violations_; }

 private:
  void release(const std::string& taskId, const std::string& failure) {
    auto it = held_.find(taskId);
    if (it == held_.end()) {
      violations_.push_back("no held setup for " + taskId);
      return;
    }
    auto done = std::move(it->second);
    held_.erase(it);
    reply(taskId, std::move(done), failure);
  }
  void reply(const std::string& taskId, std::function<void(Result<TaskAttachment>)> done,
             const std::string& failure) {
    Result<TaskAttachment> result = makeError(ErrorCode::kUnavailable, failure);
    if (failure.empty()) {
      ++leases_;
      result = TaskAttachment{.netnsPath = "/var/run/netns/tm-" + taskId,
                              .ipv4 = "198.18." + std::to_string(leases_ / 250) + "." +
                                      std::to_string(2 + leases_ % 250),
                              .prefixLength = "16",
                              .gateway = "198.18.0.1",
                              .macAddress = "02:00:00:00:00:01",
                              .subnetCidr = "198.18.0.0/16"};
    }
    asio::post(io_,
               [done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
  }

  asio::io_context& io_;
  std::map<std::string, bool> active_;
  std::map<std::string, std::function<void(Result<TaskAttachment>)>> held_;
  std::vector<std::string> setups_;
  std::vector<std::string> teardowns_;
  std::vector<std::string> violations_;
  int leases_ = 0;
};

}  // namespace taskmesh::runtime::testing
