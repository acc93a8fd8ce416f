#include "runtime/drivers/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "runtime/drivers/netns.h"

namespace taskmesh::runtime::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  char tmpl[] = "/tmp/tm-drivers-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

NetSlot::NetSlot() {
  std::error_code ec;
  fs::create_directories("/tmp/taskmesh-drivers-test", ec);
  int start = static_cast<int>(::getpid() % 250);
  for (int i = 0; i < 250; ++i) {
    int n = 1 + (start + i) % 250;
    std::string lock = "/tmp/taskmesh-drivers-test/" + std::to_string(n) + ".lock";
    int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      n_ = n;
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
}

NetSlot::~NetSlot() {
  if (fd_ >= 0) ::close(fd_);
}

std::string NetSlot::subnet() const { return "198.19." + std::to_string(n_) + ".0/24"; }

std::string NetSlot::bridgeName() const {
  return ("tmt" + std::to_string(n_) + "-" + std::to_string(::getpid())).substr(0, 15);
}

bool runUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  return true;
}

int socketInNamespace(const std::string& nsPath, int type) {
  int result = -1;
  std::thread t([&] {
    int ns = ::open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) return;
    if (::setns(ns, CLONE_NEWNET) == 0) result = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    ::close(ns);
  });
  t.join();  // the thread (and its namespace) ends here; the socket keeps its namespace
  return result;
}

int listenOn(int fd, const std::string& ip) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) return 0;
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

bool connectTo(int fd, const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return false;
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
  if (errno != EINPROGRESS) return false;
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 5000) != 1) return false;
  int err = 0;
  socklen_t len = sizeof err;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

bool processExists(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

bool mountedAt(const std::string& path) { return netns::isMountPoint(path); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace taskmesh::runtime::testing
