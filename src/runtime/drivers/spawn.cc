// posix_spawn helpers, and ProcessSupervisor::runCommandSync (which needs no io_context).
#include "runtime/drivers/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace taskmesh::runtime::detail {
namespace {

std::string errnoText(int err) { return std::strerror(err); }

std::vector<char*> cStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Adds "open path onto fd" or "dup2 override onto fd" to the file actions.
int redirect(posix_spawn_file_actions_t* actions, int fd, int override, const std::string& path,
             int flags) {
  if (override >= 0) return posix_spawn_file_actions_adddup2(actions, override, fd);
  const std::string& p = path.empty() ? std::string("/dev/null") : path;
  return posix_spawn_file_actions_addopen(actions, fd, p.c_str(), flags, 0640);
}

}  // namespace

Result<pid_t> spawnChild(const SpawnSpec& spec, const ChildFds& fds) {
  if (spec.argv.empty() || spec.argv[0].empty())
    return makeError(ErrorCode::kInvalidArgument, "spawn: empty argv");
  constexpr int kOutFlags = O_WRONLY | O_CREAT | O_APPEND;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int rc = redirect(&actions, 0, fds.in, spec.stdinPath, O_RDONLY);
  if (rc == 0) rc = redirect(&actions, 1, fds.out, spec.stdoutPath, kOutFlags);
  if (rc == 0) rc = redirect(&actions, 2, fds.err, spec.stderrPath, kOutFlags);
  if (rc == 0 && !spec.cwd.empty())
    rc = posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
  if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  if (rc == 0) {
    auto argv = cStrings(spec.argv);
    auto env = cStrings(spec.env);
    rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(),
                        spec.env.empty() ? environ : env.data());
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return makeError(ErrorCode::kIo, "cannot run " + spec.argv[0] + ": " + errnoText(rc));
  return pid;
}

int exitCodeFromStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void appendTail(std::string& buf, std::string_view data, size_t max) {
  if (data.size() >= max) {
    buf.assign(data.substr(data.size() - max));
    return;
  }
  buf.append(data);
  if (buf.size() > max) buf.erase(0, buf.size() - max);
}

Result<Pipe> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kIo, "cannot create a pipe: " + errnoText(errno));
  return Pipe{fds[0], fds[1]};
}

Result<int> stdinPipe(std::string_view data) {
  if (data.size() > kMaxCommandStdin)
    return makeError(ErrorCode::kTooLarge,
                     "command stdin over " + std::to_string(kMaxCommandStdin) + " bytes");
  auto pipe = makePipe();
  if (!pipe) return makeError(pipe.error());
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(pipe->write, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      closeFd(pipe->read);
      closeFd(pipe->write);
      return makeError(ErrorCode::kIo, "cannot write command stdin: " + errnoText(err));
    }
    off += static_cast<size_t>(n);
  }
  closeFd(pipe->write);
  return pipe->read;
}

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

Result<CommandChild> spawnCommand(const CommandSpec& spec) {
  auto in = stdinPipe(spec.stdinData);
  if (!in) return makeError(in.error());
  auto out = makePipe();
  auto err = out ? makePipe() : out;
  if (!out || !err) {
    ::close(*in);
    if (out) {
      ::close(out->read);
      ::close(out->write);
    }
    return makeError(!out ? out.error() : err.error());
  }
  SpawnSpec s{.argv = spec.argv, .env = spec.env};
  auto pid = spawnChild(
      s, {.in = *in, .out = out->write, .err = spec.mergeStderr ? out->write : err->write});
  ::close(*in);
  ::close(out->write);
  ::close(err->write);
  if (!pid) {
    ::close(out->read);
    ::close(err->read);
    return makeError(pid.error());
  }
  return CommandChild{*pid, out->read, err->read};
}

}  // namespace taskmesh::runtime::detail

namespace taskmesh::runtime {
namespace {

using Clock = std::chrono::steady_clock;

// The blocking command: its pipes and what it has written so far.
struct SyncRun {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  CommandResult result;
  size_t maxOutput = 0;

  // Reads whatever is available (waiting up to `wait`); closes a pipe at EOF. False when
  // nothing was ready.
  bool pump(std::chrono::milliseconds wait) {
    std::array<pollfd, 2> fds{pollfd{out, POLLIN, 0}, pollfd{err, POLLIN, 0}};
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (n <= 0) return false;
    readFrom(out, result.out, fds[0].revents);
    readFrom(err, result.err, fds[1].revents);
    return true;
  }
  void readFrom(int& fd, std::string& into, short revents) {
    if (fd < 0 || revents == 0) return;
    std::array<char, 4096> buf;
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) detail::appendTail(into, std::string_view(buf.data(), size_t(n)), maxOutput);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) detail::closeFd(fd);
  }
  // Non-blocking: true once the process has been reaped.
  bool reaped() {
    int status = 0;
    if (done || ::waitpid(pid, &status, WNOHANG) != pid) return done;
    result.exitCode = detail::exitCodeFromStatus(status);
    return done = true;
  }
  bool done = false;
};

}  // namespace

Result<CommandResult> ProcessSupervisor::runCommandSync(const CommandSpec& spec) {
  auto child = detail::spawnCommand(spec);
  if (!child) return makeError(child.error());
  SyncRun run{.pid = child->pid, .out = child->out, .err = child->err, .maxOutput = spec.maxOutput};
  auto start = Clock::now();
  auto termAt = start + spec.timeout;
  auto killAt = termAt + spec.termGrace;
  auto giveUpAt = killAt + std::chrono::seconds(5);
  bool termSent = false, killSent = false;
  while (!run.reaped()) {
    auto now = Clock::now();
    if (now >= giveUpAt) break;
    if (!termSent && now >= termAt) {
      run.result.timedOut = termSent = true;
      ::kill(run.pid, spec.termGrace.count() > 0 ? SIGTERM : SIGKILL);
    }
    if (!killSent && now >= killAt) {
      killSent = true;
      ::kill(run.pid, SIGKILL);
    }
    run.pump(std::chrono::milliseconds(run.out < 0 && run.err < 0 ? 0 : 10));
    if (run.out < 0 && run.err < 0) ::usleep(5000);  // both at EOF: only the exit to wait for
  }
  // What it wrote before exiting is in the pipes; a grandchild holding them open is ignored.
  for (int i = 0; i < 1024 && (run.out >= 0 || run.err >= 0); ++i) {
    if (!run.pump(std::chrono::milliseconds(0))) break;
  }
  detail::closeFd(run.out);
  detail::closeFd(run.err);
  if (!run.done)
    return makeError(ErrorCode::kTimeout, spec.argv[0] + " did not exit after SIGKILL");
  return std::move(run.result);
}

}  // namespace taskmesh::runtime
