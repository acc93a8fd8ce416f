#pragma once
// Starts, watches and reaps the processes of the runtime: runc, CNI plugins, and the init
// processes of containers (which `runc run -d` leaves behind; they become our children
// because the process is made a child subreaper).
//
// Thread: every method is called on, and every callback runs on, the io_context given to
// create(); that io_context is run by exactly one thread. Callbacks are never invoked from
// inside the call that registered them (they are posted).
//
// Process-wide: the supervisor reaps EVERY child of the process (waitpid(-1) on SIGCHLD), so
// at most one exists at a time (create() refuses a second) and, while it exists, no other
// code in the process may wait for children of its own. Exits of pids nobody watches are
// kept for kUnclaimedKeep (at most kMaxUnclaimed of them) so that a watch() issued right
// after still gets the status; older ones, and unknown orphans, are simply reaped.
//
// Ownership: the supervisor must outlive every engine or network that uses it. Destroying
// it SIGKILLs and reaps the short commands still running under runCommand() and drops every
// pending callback; processes started with spawn() or watched are left running.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/signal_set.hpp>

#include "base/result.h"
#include "net/asio.h"

namespace taskmesh::runtime {

// The exit code of a process: its exit status when it exited, 128+N when killed by signal N
// (Docker's convention), -1 when the status was lost (reaped before anyone watched it).
using ExitCallback = std::function<void(int exitCode)>;

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is a path or a name looked up in PATH; not empty
  std::vector<std::string> env;   // "NAME=value"; empty = inherit ours
  std::string stdinPath = "/dev/null";
  std::string stdoutPath;  // appended to (created 0640 if missing); empty = /dev/null
  std::string stderrPath;  // same; may equal stdoutPath
  std::string cwd;         // empty = ours
};

// A short command whose output is captured (runc subcommands, CNI plugins, ip).
struct CommandSpec {
  std::vector<std::string> argv;  // as SpawnSpec::argv
  std::vector<std::string> env;   // as SpawnSpec::env
  std::string stdinData;          // written to its stdin; at most kMaxCommandStdin bytes
  std::chrono::milliseconds timeout{10000};
  // 0: SIGKILL at the timeout. Otherwise SIGTERM at the timeout, SIGKILL `termGrace` later.
  std::chrono::milliseconds termGrace{0};
  size_t maxOutput = 64 * 1024;  // per stream; the tail is kept
  bool mergeStderr = false;      // stderr goes into `out` (interleaved as written)
};

struct CommandResult {
  int exitCode = -1;  // as ExitCallback
  bool timedOut = false;
  std::string out;  // stdout (and stderr when merged), at most maxOutput bytes (the tail)
  std::string err;  // stderr when not merged, at most maxOutput bytes (the tail)
};

inline constexpr size_t kMaxCommandStdin = 60 * 1024;  // fits in a pipe's default buffer
inline constexpr std::chrono::seconds kUnclaimedKeep{60};
inline constexpr size_t kMaxUnclaimed = 4096;

class ProcessSupervisor {
 public:
  // Makes the process a child subreaper and starts listening for SIGCHLD on `io`.
  // kConflict if another supervisor exists; kInternal if prctl fails.
  static Result<std::unique_ptr<ProcessSupervisor>> create(asio::io_context& io);
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  // Starts a process (posix_spawn; signal mask and dispositions reset to the defaults).
  // `onExit` gets its exit code once it exits. Errors name the binary and the errno text.
  Result<pid_t> spawn(const SpawnSpec& spec, ExitCallback onExit);

  // Calls `onExit` once `pid` exits. `pid` must be a child of this process or a process
  // that will be re-parented to it (a container's init after runc exits). If the pid does
  // not exist and its exit is not remembered, onExit(-1) is posted at once.
  void watch(pid_t pid, ExitCallback onExit);

  // Runs a short command with its output captured, killed after spec.timeout. `done` gets
  // the result (timedOut set when it was killed for it), or an error when it could not be
  // started at all.
  void runCommand(CommandSpec spec, std::function<void(Result<CommandResult>)> done);

  // The blocking form of runCommand, for startup cleanup (removeOrphans) only: it blocks the
  // io thread until the command ends, at most timeout + termGrace + 5 s (kTimeout after that;
  // the process is then left to the SIGCHLD handler).
  Result<CommandResult> runCommandSync(const CommandSpec& spec);

  // For tests and metrics: pids with a registered callback; remembered unclaimed exits.
  size_t watchedCount() const { return watchers_.size(); }
  size_t unclaimedCount() const { return unclaimed_.size(); }

  struct Command;  // one runCommand in flight (process_supervisor.cc)

 private:
  explicit ProcessSupervisor(asio::io_context& io);
  void armSigchld();
  void reapAll();
  void exited(pid_t pid, int exitCode);
  void pruneUnclaimed();
  void startCommand(const std::shared_ptr<Command>& cmd, const CommandSpec& spec);

  struct Unclaimed {
    int exitCode;
    std::chrono::steady_clock::time_point at;
  };

  asio::io_context& io_;
  asio::signal_set sigchld_;
  std::unordered_map<pid_t, ExitCallback> watchers_;
  std::unordered_map<pid_t, Unclaimed> unclaimed_;
  std::deque<pid_t> unclaimedOrder_;  // oldest first; may hold pids already claimed
  std::unordered_map<pid_t, std::weak_ptr<Command>> commands_;  // runCommand()s running
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);       // handlers hold a weak_ptr
};

}  // namespace taskmesh::runtime
