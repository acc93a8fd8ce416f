#pragma once
// The seam between the task lifecycle and the thing that runs containers (STYLE.md rule 9).
// The real implementation is RuncEngine (runc_engine.h); lifecycle tests use a fake.
//
// Thread: every method is called on, and every callback runs on, the io_context the engine
// was created with. Callbacks are never invoked from inside the call that registered them.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace taskmesh::runtime {

struct BindMount {
  std::string source;       // host path (a directory or a file)
  std::string destination;  // absolute path inside the container
  bool readOnly = false;
};

// Everything needed to create and start one container. The image is always the local
// "host" image: a rootfs that binds the host's /usr and /etc read-only.
struct ContainerSpec {
  std::string id;                 // unique, [A-Za-z0-9_.-]; the runc container id
  std::string bundleDir;          // created by the engine; holds config.json and the rootfs
  std::vector<std::string> args;  // entryPoint + command, already resolved; never empty
  std::vector<std::string> env;   // "NAME=value"
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  bool readonlyRootfs = false;
  std::vector<BindMount> mounts;  // volumes, in order
  std::string netnsPath;          // the task's network namespace ("/var/run/netns/…")
  std::string logPath;            // stdout and stderr are appended here
  std::string hostname;
};

struct ExecResult {
  int exitCode = -1;  // the command's exit code; 128+N when killed by signal N
  bool timedOut = false;
  std::string output;  // stdout+stderr, at most 4 KiB (the tail is kept)
};

class ContainerEngine {
 public:
  virtual ~ContainerEngine() = default;

  // Creates and starts the container. `started` gets the pid of the container's first
  // process, or an error naming what failed (runc's own message included). If it started,
  // `exited` is called exactly once later with the exit code (128+N for signal N), even when
  // the container is stopped through signal() or the engine is shut down.
  virtual void start(const ContainerSpec& spec, std::function<void(Result<pid_t>)> started,
                     std::function<void(int exitCode)> exited) = 0;

  // Sends `signal` to the container's first process (SIGKILL: to all of its processes), as
  // `docker stop` does. Unknown or already exited ids are ignored.
  virtual void signal(const std::string& id, int signal) = 0;

  // Runs `args` inside the running container (for health checks). A run longer than
  // `timeout` is killed and reported with timedOut = true.
  virtual void exec(const std::string& id, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout, std::function<void(ExecResult)> done) = 0;

  // Deletes a container that has exited: its runc state and its bundle directory. Killing
  // first if it is still running. `done` gets an error only if something could not be removed.
  virtual void remove(const std::string& id, std::function<void(Result<void>)> done) = 0;

  // At startup, before anything else: kills and deletes every container a previous run of
  // the runtime left (after a crash or kill -9). Synchronous; returns the ids it removed.
  virtual Result<std::vector<std::string>> removeOrphans() = 0;
};

}  // namespace taskmesh::runtime
