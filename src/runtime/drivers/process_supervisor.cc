#include "runtime/drivers/process_supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "base/log.h"
#include "runtime/drivers/spawn.h"

namespace taskmesh::runtime {
namespace {

std::atomic<bool> g_exists{false};  // one supervisor per process (it reaps every child)

auto logger() {
  static auto l = log::get("runtime.proc");
  return l;
}

}  // namespace

// One runCommand in flight. Handlers hold it by shared_ptr; it never points back at the
// supervisor, so it may outlive it.
struct ProcessSupervisor::Command {
  explicit Command(asio::io_context& io) : out(io), err(io), timer(io) {}
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor err;
  asio::steady_timer timer;
  pid_t pid = -1;
  size_t maxOutput = 0;
  CommandResult result;
  std::array<char, 4096> outBuf{};
  std::array<char, 4096> errBuf{};
  std::function<void(Result<CommandResult>)> done;

  void read(asio::posix::stream_descriptor& pipe, std::array<char, 4096>& buf, std::string& into,
            const std::shared_ptr<Command>& self) {
    pipe.async_read_some(
        asio::buffer(buf), [self, &pipe, &buf, &into](boost::system::error_code ec, size_t n) {
          if (ec) return;  // EOF, or closed by finish()
          detail::appendTail(into, std::string_view(buf.data(), n), self->maxOutput);
          self->read(pipe, buf, into, self);
        });
  }
  // Whatever the process wrote before it exited is in the pipe now.
  void drain(asio::posix::stream_descriptor& pipe, std::array<char, 4096>& buf, std::string& into) {
    if (!pipe.is_open()) return;
    boost::system::error_code ec;
    pipe.non_blocking(true, ec);
    for (int i = 0; i < 1024 && !ec; ++i) {
      size_t n = pipe.read_some(asio::buffer(buf), ec);
      if (ec || n == 0) break;
      detail::appendTail(into, std::string_view(buf.data(), n), maxOutput);
    }
    pipe.close(ec);
  }
  void finish(int exitCode) {
    result.exitCode = exitCode;
    timer.cancel();
    drain(out, outBuf, result.out);
    drain(err, errBuf, result.err);
    auto cb = std::move(done);
    done = nullptr;
    if (cb) cb(std::move(result));
  }
};

Result<std::unique_ptr<ProcessSupervisor>> ProcessSupervisor::create(asio::io_context& io) {
  if (g_exists.exchange(true))
    return makeError(ErrorCode::kConflict, "a ProcessSupervisor already exists in this process");
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    int err = errno;
    g_exists = false;
    return makeError(ErrorCode::kInternal,
                     std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + std::strerror(err));
  }
  std::unique_ptr<ProcessSupervisor> s(new ProcessSupervisor(io));
  boost::system::error_code ec;
  s->sigchld_.add(SIGCHLD, ec);
  if (ec) return makeError(ErrorCode::kInternal, "cannot handle SIGCHLD: " + ec.message());
  s->armSigchld();
  // Children that exited before the handler was installed raised no signal we saw.
  asio::post(io, [alive = std::weak_ptr<int>(s->alive_), self = s.get()] {
    if (!alive.expired()) self->reapAll();
  });
  return s;
}

ProcessSupervisor::ProcessSupervisor(asio::io_context& io) : io_(io), sigchld_(io) {}

ProcessSupervisor::~ProcessSupervisor() {
  alive_.reset();
  boost::system::error_code ec;
  sigchld_.cancel(ec);
  for (auto& [pid, weak] : commands_) {
    auto cmd = weak.lock();
    if (!cmd) continue;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);  // SIGKILL cannot be ignored: this returns promptly
    cmd->done = nullptr;
    cmd->timer.cancel();
    cmd->out.close(ec);
    cmd->err.close(ec);
  }
  g_exists = false;
}

void ProcessSupervisor::armSigchld() {
  sigchld_.async_wait(
      [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec, int) {
        if (ec || alive.expired()) return;
        reapAll();
        armSigchld();
      });
}

void ProcessSupervisor::reapAll() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) return;
    if (pid < 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: no children left
    }
    exited(pid, detail::exitCodeFromStatus(status));
  }
}

void ProcessSupervisor::exited(pid_t pid, int exitCode) {
  auto it = watchers_.find(pid);
  if (it == watchers_.end()) {
    logger()->debug("reaped unwatched pid={} exit={}", pid, exitCode);
    pruneUnclaimed();
    unclaimed_[pid] = Unclaimed{exitCode, std::chrono::steady_clock::now()};
    unclaimedOrder_.push_back(pid);
    return;
  }
  auto cb = std::move(it->second);
  watchers_.erase(it);
  // Already on the io thread, outside any registering call: no need to post.
  if (cb) cb(exitCode);
}

void ProcessSupervisor::pruneUnclaimed() {
  auto now = std::chrono::steady_clock::now();
  while (!unclaimedOrder_.empty()) {
    pid_t oldest = unclaimedOrder_.front();
    auto it = unclaimed_.find(oldest);
    bool stale = it == unclaimed_.end();  // claimed by watch() meanwhile
    if (!stale && unclaimed_.size() < kMaxUnclaimed && now - it->second.at < kUnclaimedKeep) return;
    if (!stale) unclaimed_.erase(it);
    unclaimedOrder_.pop_front();
  }
}

Result<pid_t> ProcessSupervisor::spawn(const SpawnSpec& spec, ExitCallback onExit) {
  auto pid = detail::spawnChild(spec, {});
  if (!pid) return pid;
  // SIGCHLD is handled on this thread, so the exit cannot be reaped before this line.
  watchers_[*pid] = std::move(onExit);
  logger()->debug("spawned pid={} argv0={}", *pid, spec.argv[0]);
  return pid;
}

void ProcessSupervisor::watch(pid_t pid, ExitCallback onExit) {
  auto it = unclaimed_.find(pid);
  if (it != unclaimed_.end()) {
    int code = it->second.exitCode;
    unclaimed_.erase(it);
    asio::post(io_, [cb = std::move(onExit), code] { cb(code); });
    return;
  }
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) {
    logger()->warn("watch of a pid that is gone and was not remembered pid={}", pid);
    asio::post(io_, [cb = std::move(onExit)] { cb(-1); });
    return;
  }
  watchers_[pid] = std::move(onExit);
}

void ProcessSupervisor::runCommand(CommandSpec spec,
                                   std::function<void(Result<CommandResult>)> done) {
  auto cmd = std::make_shared<Command>(io_);
  cmd->maxOutput = spec.maxOutput;
  cmd->done = std::move(done);
  startCommand(cmd, spec);
}

void ProcessSupervisor::startCommand(const std::shared_ptr<Command>& cmd, const CommandSpec& spec) {
  auto fail = [&](Error e) {
    asio::post(io_, [cmd, e = std::move(e)]() mutable {
      if (auto cb = std::move(cmd->done)) cb(makeError(std::move(e)));
    });
  };
  auto child = detail::spawnCommand(spec);
  if (!child) return fail(child.error());
  pid_t pid = child->pid;
  boost::system::error_code ec, ec2;
  cmd->out.assign(child->out, ec);
  cmd->err.assign(child->err, ec2);
  if (ec || ec2) {  // cannot watch its pipes: stop it, report once it is reaped
    if (!cmd->out.is_open()) ::close(child->out);
    if (!cmd->err.is_open()) ::close(child->err);
    ::kill(pid, SIGKILL);
    std::string why =
        "cannot watch the output of " + spec.argv[0] + ": " + (ec ? ec : ec2).message();
    watchers_[pid] = [cmd, why](int) {
      if (auto cb = std::move(cmd->done)) cb(makeError(ErrorCode::kInternal, why));
    };
    return;
  }
  cmd->pid = pid;
  commands_[pid] = cmd;
  watchers_[pid] = [this, cmd, alive = std::weak_ptr<int>(alive_)](int code) {
    if (!alive.expired()) commands_.erase(cmd->pid);
    cmd->finish(code);
  };
  cmd->read(cmd->out, cmd->outBuf, cmd->result.out, cmd);
  cmd->read(cmd->err, cmd->errBuf, cmd->result.err, cmd);
  std::weak_ptr<Command> weak = cmd;
  auto grace = spec.termGrace;
  cmd->timer.expires_after(spec.timeout);
  cmd->timer.async_wait([weak, grace](boost::system::error_code ec) {
    auto c = weak.lock();
    if (ec || !c || !c->done) return;
    c->result.timedOut = true;
    ::kill(c->pid, grace.count() > 0 ? SIGTERM : SIGKILL);
    if (grace.count() == 0) return;
    c->timer.expires_after(grace);
    c->timer.async_wait([weak](boost::system::error_code ec2) {
      auto c2 = weak.lock();
      if (!ec2 && c2 && c2->done) ::kill(c2->pid, SIGKILL);
    });
  });
}

}  // namespace taskmesh::runtime
