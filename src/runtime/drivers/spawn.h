#pragma once
// Low-level helpers of ProcessSupervisor, shared with its synchronous command runner.
// Safe from any thread; they touch no shared state.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"
#include "runtime/drivers/process_supervisor.h"

namespace taskmesh::runtime::detail {

// File descriptors that replace a SpawnSpec's paths; -1 = use the path. They are dup2'd
// onto 0/1/2 in the child; the caller keeps ownership.
struct ChildFds {
  int in = -1;
  int out = -1;
  int err = -1;
};

// posix_spawnp with the signal mask emptied and every disposition reset to the default.
Result<pid_t> spawnChild(const SpawnSpec& spec, const ChildFds& fds);

// waitpid status → exit code (code, or 128+N for signal N).
int exitCodeFromStatus(int status);

// Appends `data` to `buf`, keeping at most the last `max` bytes.
void appendTail(std::string& buf, std::string_view data, size_t max);

// A pipe with both ends O_CLOEXEC. kIo on failure.
struct Pipe {
  int read = -1;
  int write = -1;
};
Result<Pipe> makePipe();

// Creates a pipe, writes `data` into it and closes the write end; returns the read end.
// kTooLarge above kMaxCommandStdin.
Result<int> stdinPipe(std::string_view data);

void closeFd(int& fd);

// A command started with its stdin fed from spec.stdinData and its stdout/stderr on pipes.
// The caller owns the read ends (`out`, `err`; `err` sees EOF at once when merged).
struct CommandChild {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
};
Result<CommandChild> spawnCommand(const CommandSpec& spec);

}  // namespace taskmesh::runtime::detail
