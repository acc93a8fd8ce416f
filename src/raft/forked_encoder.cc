#include "raft/forked_encoder.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

namespace taskmesh::raft {
namespace {

// The child's exit codes besides 0.
constexpr int kExitOrphaned = 90;  // the forking thread was already gone
constexpr int kExitPipe = 91;      // the pipe could not be set up or written
constexpr int kExitEncode = 92;    // `encode` threw

constexpr int kChildPipeFd = 3;

[[noreturn]] void runChild(int fd, pid_t parent, const std::function<std::string()>& encode) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(kExitOrphaned);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  // Keep only stdio and the pipe: no listening socket, log segment or client connection of
  // the parent stays open in the child.
  if (fd != kChildPipeFd && ::dup2(fd, kChildPipeFd) < 0) ::_exit(kExitPipe);
  ::close_range(kChildPipeFd + 1, ~0U, 0);
  std::string bytes;
  try {
    bytes = encode();
  } catch (...) {
    ::_exit(kExitEncode);
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(kChildPipeFd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::_exit(kExitPipe);
    }
    off += static_cast<size_t>(n);
  }
  ::_exit(0);
}

std::string describeStatus(int status) {
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  }
  switch (WEXITSTATUS(status)) {
    case kExitOrphaned:
      return "found its parent gone";
    case kExitPipe:
      return "could not write its output";
    case kExitEncode:
      return "failed to encode (exception)";
    default:
      return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
}

}  // namespace

Result<ForkedEncoder> ForkedEncoder::start(const std::function<std::string()>& encode) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return makeError(ErrorCode::kIo, std::string("pipe for the encoder: ") + std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return makeError(ErrorCode::kIo, std::string("fork for the encoder: ") + std::strerror(err));
  }
  if (pid == 0) runChild(fds[1], parent, encode);
  ::close(fds[1]);
  return ForkedEncoder(pid, fds[0]);
}

ForkedEncoder::ForkedEncoder(ForkedEncoder&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), fd_(std::exchange(other.fd_, -1)) {}

ForkedEncoder::~ForkedEncoder() { killAndReap(); }

void ForkedEncoder::killAndReap() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

Result<std::string> ForkedEncoder::finish(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  auto msLeft = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  };
  auto timedOut = [&]() -> Result<std::string> {
    killAndReap();
    return makeError(ErrorCode::kTimeout, "the encoder child took longer than " +
                                              std::to_string(timeout.count()) + " ms; killed");
  };
  if (pid_ <= 0) return makeError(ErrorCode::kInternal, "the encoder was already finished");

  std::string out;
  constexpr size_t kChunk = 64 * 1024;  // a pipe's default capacity: what one read can return
  for (;;) {
    long left = msLeft();
    if (left <= 0) return timedOut();
    struct pollfd p {
      fd_, POLLIN, 0
    };
    int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 1000)));
    if (r < 0 && errno != EINTR) {
      int err = errno;
      killAndReap();
      return makeError(ErrorCode::kIo, std::string("poll on the encoder: ") + std::strerror(err));
    }
    if (r <= 0) continue;
    size_t used = out.size();
    out.resize(used + kChunk);
    ssize_t n = ::read(fd_, out.data() + used, kChunk);
    out.resize(used + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n == 0) break;
    if (n < 0 && errno != EINTR && errno != EAGAIN) {
      int err = errno;
      killAndReap();
      return makeError(ErrorCode::kIo, std::string("read from the encoder: ") + std::strerror(err));
    }
  }
  ::close(std::exchange(fd_, -1));

  // The child closes its end only by exiting, so it is gone or about to be.
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) {
      int err = errno;
      pid_ = -1;
      return makeError(ErrorCode::kInternal,
                       std::string("waitpid on the encoder: ") + std::strerror(err));
    }
    if (msLeft() <= 0) return timedOut();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return out;
  return makeError(ErrorCode::kInternal, "the encoder child " + describeStatus(status));
}

}  // namespace taskmesh::raft
