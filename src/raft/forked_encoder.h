#pragma once
// Encodes in a child process forked from the calling thread, so that the caller never pauses
// for more than fork() itself. The Raft node uses it for snapshots: the child sees the tables
// exactly as they were at fork() (copy-on-write), encodes them and writes the bytes to a pipe,
// while the parent goes on applying entries. The same technique as Redis's BGSAVE.
//
// Contract for `encode` (it runs in the child, the only thread there):
//  - It must only read memory that no thread was modifying at fork(): start() is called on
//    the thread that owns that memory.
//  - It must not take locks other threads may have held at fork() (no logging, no
//    StateStore::read); malloc is safe (jemalloc and glibc re-initialise theirs in the child).
// The child closes every inherited file descriptor except the pipe and stdio, restores the
// default action of the termination signals, and is killed if the forking thread exits.
// Process-wide: finish() reaps the child itself, so it cannot share a process with code that
// reaps every child (runtime/drivers/process_supervisor.h does; it lives in `taskmesh ecs`,
// the server never has one).

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "base/result.h"

namespace taskmesh::raft {

class ForkedEncoder {
 public:
  // Forks; the child runs `encode` and exits. Fails only if the pipe or fork() fails.
  static Result<ForkedEncoder> start(const std::function<std::string()>& encode);

  // Any thread: reads the child's bytes to the end and reaps it. Once `timeout` passes the
  // child is killed and a kTimeout error returned. Call at most once.
  Result<std::string> finish(std::chrono::milliseconds timeout);

  ForkedEncoder(ForkedEncoder&& other) noexcept;
  ForkedEncoder& operator=(ForkedEncoder&&) = delete;
  ForkedEncoder(const ForkedEncoder&) = delete;
  ~ForkedEncoder();  // a child not finished is killed and reaped

 private:
  ForkedEncoder(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  void killAndReap();

  pid_t pid_ = -1;
  int fd_ = -1;  // read end of the child's pipe
};

}  // namespace taskmesh::raft
