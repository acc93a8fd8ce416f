#include "runtime/drivers/runc_engine.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "runtime/drivers/netns.h"
#include "runtime/drivers/oci_bundle.h"

namespace taskmesh::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr size_t kExecOutput = 4096;      // ExecResult::output bound
constexpr size_t kRuncMessageMax = 2048;  // runc error text carried into an Error

auto logger() {
  static auto l = log::get("runtime.runc");
  return l;
}

std::string parentOf(const std::string& path) { return fs::path(path).parent_path().string(); }

// FNV-1a, for a short stable name derived from the runc root.
std::string shortHash(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

// runc --log-format json writes one {"level","msg","time"} object per line: the last error
// message, else the raw tail.
std::string runcMessage(const std::string& logText) {
  std::string last;
  size_t pos = 0;
  while (pos < logText.size()) {
    size_t end = logText.find('\n', pos);
    if (end == std::string::npos) end = logText.size();
    auto line = parseJsonBounded(std::string_view(logText).substr(pos, end - pos), 4);
    if (line && stringField(*line, "level") == "error") last = stringField(*line, "msg");
    pos = end + 1;
  }
  if (last.empty()) last = logText.substr(logText.size() > 512 ? logText.size() - 512 : 0);
  if (last.size() > kRuncMessageMax) last.resize(kRuncMessageMax);
  return last;
}

// The text runc printed for a failed subcommand (it prints to stderr).
std::string commandMessage(const CommandResult& r) {
  std::string text = r.err.empty() ? r.out : r.err;
  return runcMessage(text);
}

// The pid runc wrote (decimal, no newline); 0 if it is not one.
pid_t parsePid(const std::string& text) {
  if (text.empty() || text.size() > 10) return 0;
  long v = 0;
  for (char c : text) {
    if (c == '\n') break;
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v > 0 && v <= INT32_MAX ? static_cast<pid_t>(v) : 0;
}

// `runc run` in flight: its deadline.
struct RuncWait {
  explicit RuncWait(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  bool timedOut = false;
};

bool isNotFound(const std::string& message) {
  return message.find("does not exist") != std::string::npos ||
         message.find("not running") != std::string::npos ||
         message.find("container not running") != std::string::npos;
}

// rmdir of <hierarchy>/<parent> in every cgroup hierarchy: succeeds only once no container
// cgroup is left under it, so it is safe at any time.
void removeCgroupParent(const std::string& parent) {
  for (const auto& m : netns::readMountInfo()) {
    if (m.fsType != "cgroup" && m.fsType != "cgroup2") continue;
    std::string dir = m.mountPoint + "/" + parent;
    if (::rmdir(dir.c_str()) == 0) logger()->debug("removed cgroup {}", dir);
  }
}

bool validName(const std::string& s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  }
  return true;
}

Result<void> checkOptions(RuncEngineOptions& o) {
  auto bad = [](const std::string& what) {
    return makeError(ErrorCode::kInvalidArgument, "runc engine: " + what);
  };
  if (o.root.empty() || o.root[0] != '/') return bad("root must be an absolute path");
  if (o.bundlesDir.empty() || o.bundlesDir[0] != '/')
    return bad("bundlesDir must be an absolute path");
  if (::access(o.runcPath.c_str(), X_OK) != 0)
    return bad("runcPath " + o.runcPath + " is not executable");
  std::error_code ec;
  if (o.hostBinary.empty()) o.hostBinary = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec || !fs::is_regular_file(o.hostBinary, ec))
    return bad("hostBinary \"" + o.hostBinary + "\" is not a file");
  if (o.cgroupParent.empty()) o.cgroupParent = "taskmesh-" + shortHash(o.root);
  if (!validName(o.cgroupParent)) return bad("cgroupParent must be [A-Za-z0-9_.-]{1,64}");
  for (const auto& dir : {o.root, o.bundlesDir}) {
    fs::create_directories(dir, ec);
    if (ec) return makeError(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  }
  return {};
}

}  // namespace

template <typename F>
auto RuncEngine::guarded(F f) {
  return [alive = std::weak_ptr<int>(alive_), f = std::move(f)](auto&&... args) mutable {
    if (!alive.expired()) f(std::forward<decltype(args)>(args)...);
  };
}

Result<std::unique_ptr<RuncEngine>> RuncEngine::create(asio::io_context& io,
                                                       ProcessSupervisor& supervisor,
                                                       RuncEngineOptions options) {
  if (auto r = checkOptions(options); !r) return makeError(r.error());
  return std::unique_ptr<RuncEngine>(new RuncEngine(io, supervisor, std::move(options)));
}

RuncEngine::RuncEngine(asio::io_context& io, ProcessSupervisor& supervisor,
                       RuncEngineOptions options)
    : io_(io), supervisor_(supervisor), options_(std::move(options)) {}

std::vector<std::string> RuncEngine::runc(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv{options_.runcPath, "--root", options_.root};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

void RuncEngine::start(const ContainerSpec& spec, std::function<void(Result<pid_t>)> started,
                       std::function<void(int exitCode)> exited) {
  auto fail = [&](Error e) {
    asio::post(io_, [cb = std::move(started), e = std::move(e)] { cb(makeError(e)); });
  };
  if (auto r = validateContainerSpec(spec); !r) return fail(r.error());
  if (parentOf(spec.bundleDir) != fs::path(options_.bundlesDir).lexically_normal().string())
    return fail({ErrorCode::kInvalidArgument,
                 "container spec: bundleDir must be directly inside " + options_.bundlesDir});
  std::error_code ec;
  fs::create_directories(parentOf(spec.logPath), ec);
  fs::remove(spec.bundleDir + "/init.pid", ec);
  fs::remove(spec.bundleDir + "/runc.log", ec);
  if (auto r = writeBundle(spec, {options_.hostBinary, options_.cgroupParent}); !r)
    return fail(r.error());
  SpawnSpec run{.argv = runc({"--log", spec.bundleDir + "/runc.log", "--log-format", "json", "run",
                              "--detach", "--pid-file", spec.bundleDir + "/init.pid", "--bundle",
                              spec.bundleDir, spec.id}),
                .stdoutPath = spec.logPath,
                .stderrPath = spec.logPath};
  auto wait = std::make_shared<RuncWait>(io_);
  auto onExit = guarded([this, spec, wait, started, exited](int code) mutable {
    wait->timer.cancel();
    onRuncRunExit(spec, code, wait->timedOut, std::move(started), std::move(exited));
  });
  auto pid = supervisor_.spawn(run, std::move(onExit));
  if (!pid) return fail(pid.error());
  logger()->debug("runc run id={} runc_pid={}", spec.id, *pid);
  wait->timer.expires_after(options_.commandTimeout);
  wait->timer.async_wait([wait, runcPid = *pid](boost::system::error_code e) {
    if (e) return;
    wait->timedOut = true;
    ::kill(runcPid, SIGKILL);  // still our unreaped child: the pid cannot have been reused
  });
}

void RuncEngine::onRuncRunExit(const ContainerSpec& spec, int code, bool timedOut,
                               std::function<void(Result<pid_t>)> started,
                               std::function<void(int exitCode)> exited) {
  if (code != 0) {
    auto log = readFile(spec.bundleDir + "/runc.log");
    std::string why = timedOut ? "runc run timed out" : "runc run exited " + std::to_string(code);
    if (log && !log->empty()) why += ": " + runcMessage(*log);
    if (timedOut) {  // runc was killed half-way: do not leave a half-created container
      supervisor_.runCommand(
          {.argv = runc({"delete", "--force", spec.id}), .timeout = options_.commandTimeout},
          [](Result<CommandResult>) {});
    }
    return started(makeError(ErrorCode::kUnavailable, "container " + spec.id + ": " + why));
  }
  auto text = readFile(spec.bundleDir + "/init.pid");
  pid_t pid = text ? parsePid(*text) : 0;
  if (pid <= 0) {
    std::string why = text ? "\"" + text->substr(0, 32) + "\"" : text.error().message;
    // runc says it started, but we cannot supervise it: do not leave it running.
    supervisor_.runCommand(
        {.argv = runc({"delete", "--force", spec.id}), .timeout = options_.commandTimeout},
        [](Result<CommandResult>) {});
    return started(
        makeError(ErrorCode::kInternal, "container " + spec.id + ": bad runc pid file: " + why));
  }
  supervisor_.watch(pid, std::move(exited));  // posts: exited runs after started
  logger()->info("container started id={} pid={}", spec.id, pid);
  started(pid);
}

// SIGKILL reaches every process of the container; any other signal only its first process,
// as `docker stop` (and so ECS) delivers the stop signal: an entrypoint that handles SIGTERM
// decides how its children stop (an nginx wrapper sends SIGQUIT for a graceful stop).
void RuncEngine::signal(const std::string& id, int signal) {
  CommandSpec kill{.argv = signal == SIGKILL ? runc({"kill", "--all", id, std::to_string(signal)})
                                             : runc({"kill", id, std::to_string(signal)}),
                   .timeout = options_.commandTimeout};
  supervisor_.runCommand(std::move(kill), [id, signal](Result<CommandResult> r) {
    if (!r) return logger()->warn("runc kill id={} failed: {}", id, r.error().message);
    if (r->exitCode == 0) return;
    std::string msg = commandMessage(*r);
    if (isNotFound(msg)) return logger()->debug("runc kill id={} ignored: {}", id, msg);
    logger()->warn("runc kill id={} signal={} exit={} error={}", id, signal, r->exitCode, msg);
  });
}

void RuncEngine::exec(const std::string& id, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout, std::function<void(ExecResult)> done) {
  CommandSpec cmd{.argv = runc({"exec", "--cwd", "/", id}),
                  .timeout = timeout,
                  .termGrace = 1s,
                  .maxOutput = kExecOutput,
                  .mergeStderr = true};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  supervisor_.runCommand(
      std::move(cmd), guarded([done](Result<CommandResult> r) {
        if (!r) return done(ExecResult{.output = r.error().message});
        done(ExecResult{
            .exitCode = r->exitCode, .timedOut = r->timedOut, .output = std::move(r->out)});
      }));
}

void RuncEngine::remove(const std::string& id, std::function<void(Result<void>)> done) {
  std::string bundle = options_.bundlesDir + "/" + id;
  if (!isValidContainerId(id)) {
    return asio::post(io_, [done] {
      done(makeError(ErrorCode::kInvalidArgument, "container id is not [A-Za-z0-9_.-]{1,128}"));
    });
  }
  CommandSpec del{.argv = runc({"delete", "--force", id}), .timeout = options_.commandTimeout};
  supervisor_.runCommand(
      std::move(del), guarded([id, bundle, done](Result<CommandResult> r) {
        if (!r) return done(makeError(r.error()));
        std::string msg = r->exitCode == 0 ? "" : commandMessage(*r);
        if (r->exitCode != 0 && !isNotFound(msg)) {
          return done(makeError(ErrorCode::kUnavailable, "runc delete " + id + ": " + msg));
        }
        done(removeTree(bundle));
      }));
}

Result<std::vector<std::string>> RuncEngine::removeOrphans() {
  auto list = supervisor_.runCommandSync(
      {.argv = runc({"list", "--format", "json"}), .timeout = options_.commandTimeout});
  if (!list) return makeError(list.error());
  if (list->exitCode != 0)
    return makeError(ErrorCode::kUnavailable, "runc list: " + commandMessage(*list));
  auto doc = parseJsonBounded(list->out, 8);
  if (!doc || !(doc->is_array() || doc->is_null()))
    return makeError(ErrorCode::kInternal, "runc list: unexpected output");
  std::vector<std::string> removed;
  for (const auto& c : doc->is_array() ? *doc : nlohmann::json::array()) {
    std::string id = stringField(c, "id");
    if (id.empty()) continue;
    auto kill = supervisor_.runCommandSync(
        {.argv = runc({"kill", "--all", id, "KILL"}), .timeout = options_.commandTimeout});
    auto del = supervisor_.runCommandSync(
        {.argv = runc({"delete", "--force", id}), .timeout = options_.commandTimeout});
    if (!del || del->exitCode != 0) {
      std::string why = !del ? del.error().message : commandMessage(*del);
      return makeError(ErrorCode::kUnavailable, "runc delete " + id + ": " + why);
    }
    logger()->info("removed orphan container id={} killed={}", id, kill && kill->exitCode == 0);
    removed.push_back(id);
  }
  removeCgroupParent(options_.cgroupParent);
  auto leftovers = listDir(options_.bundlesDir);
  if (!leftovers) return makeError(leftovers.error());
  for (const auto& path : *leftovers) {
    if (auto r = removeTree(path); !r) return makeError(r.error());
  }
  return removed;
}

}  // namespace taskmesh::runtime
