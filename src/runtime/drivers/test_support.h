#pragma once
// Test helpers of runtime_drivers_test: temp dirs, unique bridges/subnets, deadline loops.
// Tests run as root (as CI does) and never touch an interface they did not create.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "net/asio.h"

namespace taskmesh::runtime::testing {

// A fresh directory under /tmp, removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A /24 in 198.19.0.0/16 and a bridge name no other test process holds: the third octet is
// reserved with an flock on /tmp/taskmesh-drivers-test/<n>.lock for the life of the object,
// so parallel tests and a second build's run never collide.
class NetSlot {
 public:
  NetSlot();
  ~NetSlot();
  NetSlot(const NetSlot&) = delete;
  NetSlot& operator=(const NetSlot&) = delete;
  std::string subnet() const;      // "198.19.<n>.0/24"
  std::string bridgeName() const;  // "tmt<n>-<pid>" cut to 15 chars
  bool ok() const { return fd_ >= 0; }

 private:
  int n_ = -1;
  int fd_ = -1;
};

// Runs `io` until `done()` or the deadline; true if done() became true.
bool runUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A socket of `type` (SOCK_STREAM...) created inside the network namespace at `nsPath`
// (from a helper thread that setns()s); -1 on failure.
int socketInNamespace(const std::string& nsPath, int type);

// Listens on ip:0 (the socket already belongs to its namespace); returns the port or 0.
int listenOn(int fd, const std::string& ip);

// Connects (blocking with a 5 s deadline) and returns whether it succeeded.
bool connectTo(int fd, const std::string& ip, int port);

// Whether a process with this pid exists (including a zombie).
bool processExists(int pid);

// Whether `path` appears as a mount point in /proc/self/mountinfo.
bool mountedAt(const std::string& path);

std::string slurp(const std::string& path);

// Milliseconds since `start`.
long long msSince(std::chrono::steady_clock::time_point start);

}  // namespace taskmesh::runtime::testing
