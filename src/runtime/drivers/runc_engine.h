#pragma once
// ContainerEngine on runc (1.1): one detached container (`runc run -d`) per ContainerSpec,
// in a bundle written by oci_bundle.h. The container's stdout and stderr are runc's own,
// which are appended to spec.logPath; runc's error messages go to <bundle>/runc.log.
// The container's init becomes a child of this process once runc exits (the supervisor is
// a child subreaper), and its exit is reported through ProcessSupervisor::watch.
//
// Thread: that of ContainerEngine (the io_context of the supervisor). Ownership: borrows
// the supervisor, which must outlive the engine. `exited` callbacks are held by the
// supervisor, so they still fire after the engine is destroyed; every other pending callback
// is dropped when the engine is destroyed.

#include <chrono>
#include <memory>
#include <string>

#include "runtime/container_engine.h"
#include "runtime/drivers/process_supervisor.h"

namespace taskmesh::runtime {

struct RuncEngineOptions {
  std::string runcPath = "/usr/bin/runc";
  std::string root;        // runc --root: this runtime's container state; required
  std::string bundlesDir;  // every spec.bundleDir must be directly inside it; required
  std::string hostBinary;  // bound at /usr/local/bin/taskmesh; empty = /proc/self/exe resolved
  // linux.cgroupsPath = "/<cgroupParent>/<id>" in every hierarchy; empty =
  // "taskmesh-<hash of root>", so two runtimes never share a cgroup. removeOrphans() removes
  // the parent once it is empty.
  std::string cgroupParent;
  std::chrono::milliseconds commandTimeout{30000};  // for runc run/kill/delete/list
};

class RuncEngine : public ContainerEngine {
 public:
  // Validates the options (absolute paths, runc executable, hostBinary a file) and creates
  // root and bundlesDir. kInvalidArgument naming the option; kIo naming the path.
  static Result<std::unique_ptr<RuncEngine>> create(asio::io_context& io,
                                                    ProcessSupervisor& supervisor,
                                                    RuncEngineOptions options);

  void start(const ContainerSpec& spec, std::function<void(Result<pid_t>)> started,
             std::function<void(int exitCode)> exited) override;
  // `runc kill --all <id> <signal>`; "not running"/"does not exist" are ignored (logged).
  void signal(const std::string& id, int signal) override;
  // `runc exec --cwd / <id> args...`; at the timeout SIGTERM, then SIGKILL 1 s later.
  void exec(const std::string& id, const std::vector<std::string>& args,
            std::chrono::milliseconds timeout, std::function<void(ExecResult)> done) override;
  // `runc delete --force <id>`, then the bundle directory. A container runc does not know
  // is not an error (the bundle is still removed).
  void remove(const std::string& id, std::function<void(Result<void>)> done) override;
  // Blocks: for every container in root, `runc kill --all KILL` + `runc delete --force`;
  // then removes every entry of bundlesDir. Returns the container ids runc knew.
  Result<std::vector<std::string>> removeOrphans() override;

  const RuncEngineOptions& options() const { return options_; }

 private:
  RuncEngine(asio::io_context& io, ProcessSupervisor& supervisor, RuncEngineOptions options);
  std::vector<std::string> runc(std::initializer_list<std::string> args) const;
  void onRuncRunExit(const ContainerSpec& spec, int code, bool timedOut,
                     std::function<void(Result<pid_t>)> started,
                     std::function<void(int exitCode)> exited);
  // Wraps a callback so it is dropped once the engine is gone.
  template <typename F>
  auto guarded(F f);

  asio::io_context& io_;
  ProcessSupervisor& supervisor_;
  RuncEngineOptions options_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace taskmesh::runtime
