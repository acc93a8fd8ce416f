#include "runtime/drivers/cni_network.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "runtime/drivers/oci_bundle.h"

namespace taskmesh::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kCniVersion = "1.0.0";

auto logger() {
  static auto l = log::get("runtime.cni");
  return l;
}

bool validName(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  }
  return true;
}

Result<void> checkOptions(const CniNetworkOptions& o) {
  auto bad = [](const std::string& what) {
    return makeError(ErrorCode::kInvalidArgument, "cni network: " + what);
  };
  if (o.dataDir.empty() || o.dataDir[0] != '/') return bad("dataDir must be an absolute path");
  if (!validName(o.bridgeName, 15)) return bad("bridgeName must be [A-Za-z0-9_.-]{1,15}");
  if (!validName(o.networkName, 64)) return bad("networkName must be [A-Za-z0-9_.-]{1,64}");
  for (const auto& exe :
       {o.cniPath + "/bridge", o.cniPath + "/host-local", o.cniPath + "/loopback", o.unsharePath}) {
    if (::access(exe.c_str(), X_OK) != 0) return bad(exe + " is not executable");
  }
  return {};
}

// The first line of a host-local lease file is the container id.
std::string leaseOwner(const std::string& path) {
  auto text = readFile(path);
  if (!text) return "";
  return text->substr(0, text->find_first_of("\r\n"));
}

}  // namespace

struct CniNetwork::Setup {
  std::string taskId;
  std::string path;  // the namespace file
  std::function<void(Result<TaskAttachment>)> done;
};

Result<std::unique_ptr<CniNetwork>> CniNetwork::create(asio::io_context& io,
                                                       ProcessSupervisor& supervisor,
                                                       CniNetworkOptions options) {
  if (auto r = checkOptions(options); !r) return makeError(r.error());
  auto subnet = netns::parseSubnet(options.subnet);
  if (!subnet) return makeError(subnet.error());
  return std::unique_ptr<CniNetwork>(
      new CniNetwork(io, supervisor, std::move(options), std::move(*subnet)));
}

CniNetwork::CniNetwork(asio::io_context& io, ProcessSupervisor& supervisor,
                       CniNetworkOptions options, netns::Subnet subnet)
    : io_(io), supervisor_(supervisor), options_(std::move(options)), subnet_(std::move(subnet)) {}

std::string CniNetwork::netnsPath(const std::string& taskId) const {
  return options_.dataDir + "/netns/" + taskId;
}

std::string CniNetwork::gatewayAddress() const { return netns::formatIpv4(subnet_.network + 1); }

json CniNetwork::pluginConfig(Plugin plugin) const {
  if (plugin == Plugin::kLoopback)
    return {{"cniVersion", kCniVersion}, {"name", options_.networkName}, {"type", "loopback"}};
  return {
      {"cniVersion", kCniVersion},
      {"name", options_.networkName},
      {"type", "bridge"},
      {"bridge", options_.bridgeName},
      {"isGateway", true},
      {"ipMasq", false},
      {"hairpinMode", true},
      {"ipam",
       {{"type", "host-local"},
        {"ranges", json::array({json::array({json{{"subnet", subnet_.cidr}}})})},
        {"dataDir", options_.dataDir + "/ipam"},
        {"routes", json::array({json{{"dst", subnet_.cidr}}})}}},
  };
}

CommandSpec CniNetwork::pluginCommand(Plugin plugin, const char* command, const std::string& taskId,
                                      const std::string& netnsPath) const {
  bool loopback = plugin == Plugin::kLoopback;
  // A file that is no longer a namespace (after a reboot, or half torn down) makes the
  // plugins fail ("unknown FS magic"); without one, DEL still releases the lease.
  bool haveNs = netns::isNamespaceFile(netnsPath);
  return CommandSpec{
      .argv = {options_.cniPath + (loopback ? "/loopback" : "/bridge")},
      .env = {std::string("CNI_COMMAND=") + command, "CNI_CONTAINERID=" + taskId,
              "CNI_NETNS=" + (haveNs ? netnsPath : std::string()),
              std::string("CNI_IFNAME=") + (loopback ? "lo" : "eth0"),
              "CNI_PATH=" + options_.cniPath, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
      .stdinData = pluginConfig(plugin).dump(),
      .timeout = options_.pluginTimeout,
  };
}

std::string cniErrorMessage(const CommandResult& r) {
  if (r.timedOut) return "timed out";
  auto doc = parseJsonBounded(r.out, 8);
  if (doc && doc->is_object() && doc->contains("msg")) {
    std::string msg = stringField(*doc, "msg");
    std::string details = stringField(*doc, "details");
    return details.empty() ? msg : msg + " (" + details + ")";
  }
  std::string text = !r.err.empty() ? r.err : r.out;
  if (text.size() > 1024) text = text.substr(text.size() - 1024);
  return "exit " + std::to_string(r.exitCode) + (text.empty() ? "" : ": " + text);
}

void CniNetwork::runPlugin(Plugin plugin, const char* command, const std::string& taskId,
                           const std::string& netnsPath, std::function<void(Result<json>)> done) {
  std::string what = std::string(plugin == Plugin::kLoopback ? "loopback " : "bridge ") + command;
  supervisor_.runCommand(
      pluginCommand(plugin, command, taskId, netnsPath),
      [what, done = std::move(done)](Result<CommandResult> r) {
        if (!r) return done(makeError(r.error().code, what + ": " + r.error().message));
        if (r->exitCode != 0 || r->timedOut)
          return done(makeError(ErrorCode::kUnavailable, what + ": " + cniErrorMessage(*r)));
        if (r->out.find_first_not_of(" \r\n\t") == std::string::npos) return done(json());
        auto doc = parseJsonBounded(r->out);
        if (!doc) return done(makeError(ErrorCode::kInternal, what + ": bad result JSON"));
        done(std::move(*doc));
      });
}

void CniNetwork::setup(const std::string& taskId,
                       std::function<void(Result<TaskAttachment>)> done) {
  auto s = std::make_shared<Setup>(Setup{taskId, netnsPath(taskId), std::move(done)});
  auto fail = [this, s](ErrorCode code, std::string msg) {
    asio::post(io_, [s, e = Error{code, std::move(msg)}] { s->done(makeError(e)); });
  };
  if (!isValidContainerId(taskId))
    return fail(ErrorCode::kInvalidArgument, "task id is not [A-Za-z0-9_.-]{1,128}");
  if (auto r = netns::makePrivateMountDir(options_.dataDir + "/netns"); !r)
    return fail(r.error().code, "create namespace: " + r.error().message);
  int fd = ::open(s->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) {
    auto code = errno == EEXIST ? ErrorCode::kConflict : ErrorCode::kIo;
    return fail(code, "create namespace: " + s->path + ": " + std::strerror(errno));
  }
  ::close(fd);
  createNamespace(s);
}

void CniNetwork::createNamespace(const std::shared_ptr<Setup>& s) {
  CommandSpec unshare{.argv = {options_.unsharePath, "--net=" + s->path, "true"},
                      .timeout = options_.pluginTimeout};
  supervisor_.runCommand(
      std::move(unshare), [this, s, alive = std::weak_ptr<int>(alive_)](Result<CommandResult> r) {
        if (alive.expired()) return;
        if (!r) return rollback(s, {r.error().code, "create namespace: " + r.error().message});
        if (r->exitCode != 0 || !netns::isNamespaceFile(s->path)) {
          return rollback(
              s, {ErrorCode::kUnavailable, "create namespace: unshare: " + cniErrorMessage(*r)});
        }
        addLoopback(s);
      });
}

void CniNetwork::addLoopback(const std::shared_ptr<Setup>& s) {
  runPlugin(Plugin::kLoopback, "ADD", s->taskId, s->path,
            [this, s, alive = std::weak_ptr<int>(alive_)](Result<json> r) {
              if (alive.expired()) return;
              if (!r) return rollback(s, r.error());
              addBridge(s);
            });
}

void CniNetwork::addBridge(const std::shared_ptr<Setup>& s) {
  runPlugin(Plugin::kBridge, "ADD", s->taskId, s->path,
            [this, s, alive = std::weak_ptr<int>(alive_)](Result<json> r) {
              if (alive.expired()) return;
              if (!r) return rollback(s, r.error());
              auto attachment = parseCniResult(*r, s->path, subnet_.cidr);
              if (!attachment) return rollback(s, attachment.error());
              logger()->info("task network up task={} ip={}", s->taskId, attachment->ipv4);
              auto done = std::move(s->done);
              done(std::move(*attachment));
            });
}

void CniNetwork::rollback(const std::shared_ptr<Setup>& s, Error error) {
  logger()->warn("task network setup failed task={} error={}", s->taskId, error.message);
  teardown(s->taskId, [s, error](Result<void> cleaned) {
    Error e = error;
    if (!cleaned) e.message += " (cleanup also failed: " + cleaned.error().message + ")";
    auto done = std::move(s->done);
    done(makeError(std::move(e)));
  });
}

void CniNetwork::teardown(const std::string& taskId, std::function<void(Result<void>)> done) {
  if (!isValidContainerId(taskId)) {
    return asio::post(io_, [done] {
      done(makeError(ErrorCode::kInvalidArgument, "task id is not [A-Za-z0-9_.-]{1,128}"));
    });
  }
  std::string path = netnsPath(taskId);
  auto firstError = std::make_shared<Result<void>>();
  auto keep = [firstError](const Result<json>& r) {
    if (!r && *firstError) *firstError = makeError(r.error());
  };
  auto alive = std::weak_ptr<int>(alive_);
  runPlugin(Plugin::kBridge, "DEL", taskId, path, [=, this](Result<json> r) {
    keep(r);
    if (alive.expired()) return;
    runPlugin(Plugin::kLoopback, "DEL", taskId, path, [=](Result<json> r2) {
      keep(r2);
      auto removed = netns::removeNamespaceFile(path);
      if (!removed && *firstError) *firstError = removed;
      if (*firstError) logger()->info("task network down task={}", taskId);
      done(*firstError);
    });
  });
}

Result<void> CniNetwork::teardownSync(const std::string& taskId) {
  std::string path = netnsPath(taskId);
  Result<void> first;
  for (Plugin p : {Plugin::kBridge, Plugin::kLoopback}) {
    auto r = supervisor_.runCommandSync(pluginCommand(p, "DEL", taskId, path));
    std::string what = p == Plugin::kBridge ? "bridge DEL: " : "loopback DEL: ";
    if (!r && first) first = makeError(r.error().code, what + r.error().message);
    if (r && (r->exitCode != 0 || r->timedOut) && first)
      first = makeError(ErrorCode::kUnavailable, what + cniErrorMessage(*r));
  }
  auto removed = netns::removeNamespaceFile(path);
  if (!removed && first) first = removed;
  return first;
}

Result<std::vector<std::string>> CniNetwork::removeOrphans() {
  auto files = listDir(options_.dataDir + "/netns");
  if (!files) return makeError(files.error());
  std::vector<std::string> removed;
  for (const auto& file : *files) {
    std::string taskId = fs::path(file).filename().string();
    if (!isValidContainerId(taskId)) continue;
    if (auto r = teardownSync(taskId); !r)
      return makeError(r.error().code, "task " + taskId + ": " + r.error().message);
    logger()->info("removed orphan task network task={}", taskId);
    removed.push_back(taskId);
  }
  removeStaleLeases();
  return removed;
}

void CniNetwork::removeStaleLeases() {
  auto leases = listDir(options_.dataDir + "/ipam/" + options_.networkName);
  if (!leases) return;
  for (const auto& lease : *leases) {
    if (!netns::isIpv4(fs::path(lease).filename().string())) continue;  // lock, last_reserved
    std::string owner = leaseOwner(lease);
    std::error_code ec;
    if (isValidContainerId(owner) && fs::exists(netnsPath(owner), ec)) continue;
    if (::unlink(lease.c_str()) == 0) logger()->info("removed stale lease {}", lease);
  }
}

Result<void> CniNetwork::removeBridge() {
  std::string sys = "/sys/class/net/" + options_.bridgeName;
  std::error_code ec;
  if (fs::exists(sys, ec)) {
    auto ports = listDir(sys + "/brif");
    if (!ports) return makeError(ports.error());
    if (!ports->empty()) {
      return makeError(ErrorCode::kConflict, "bridge " + options_.bridgeName + " still has " +
                                                 std::to_string(ports->size()) + " port(s)");
    }
    auto r = supervisor_.runCommandSync(
        {.argv = {options_.ipPath, "link", "delete", "dev", options_.bridgeName, "type", "bridge"},
         .timeout = options_.pluginTimeout,
         .mergeStderr = true});
    if (!r) return makeError(r.error());
    if (r->exitCode != 0 && fs::exists(sys, ec)) {
      return makeError(ErrorCode::kUnavailable,
                       "ip link delete " + options_.bridgeName + ": " + r->out);
    }
  }
  auto left = listDir(options_.dataDir + "/netns");
  if (left && left->empty()) return netns::releaseMountDir(options_.dataDir + "/netns");
  return {};
}

Result<TaskAttachment> parseCniResult(const json& result, const std::string& netnsPath,
                                      const std::string& subnetCidr) {
  auto bad = [](const std::string& what) {
    return makeError(ErrorCode::kInternal, "bridge ADD: result has no " + what);
  };
  if (!result.is_object() || !result.contains("ips") || !result["ips"].is_array() ||
      result["ips"].empty())
    return bad("ips");
  const json& ip = result["ips"][0];
  std::string address = stringField(ip, "address");
  size_t slash = address.find('/');
  if (slash == std::string::npos || !netns::isIpv4(address.substr(0, slash)))
    return bad("IPv4 ips[0].address");
  TaskAttachment a{.netnsPath = netnsPath,
                   .ipv4 = address.substr(0, slash),
                   .prefixLength = address.substr(slash + 1),
                   .gateway = stringField(ip, "gateway"),
                   .subnetCidr = subnetCidr};
  const json* ifaces = result.contains("interfaces") ? &result["interfaces"] : nullptr;
  if (ifaces && ifaces->is_array()) {
    for (const auto& i : *ifaces) {
      if (stringField(i, "name") == "eth0" && !stringField(i, "sandbox").empty())
        a.macAddress = stringField(i, "mac");
    }
  }
  if (a.macAddress.empty()) return bad("eth0 interface with a mac");
  return a;
}

}  // namespace taskmesh::runtime
