#include "runtime/drivers/oci_bundle.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <system_error>

#include "base/file.h"

namespace taskmesh::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool validIdImpl(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  }
  return true;
}

// Absolute, and no ".." component.
bool cleanAbsolute(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  for (const auto& part : fs::path(p)) {
    if (part == "..") return false;
  }
  return true;
}

Result<void> invalid(const std::string& what) {
  return makeError(ErrorCode::kInvalidArgument, "container spec: " + what);
}

json mount(const char* dst, const char* type, const char* src, json options) {
  return json{{"destination", dst}, {"type", type}, {"source", src}, {"options", options}};
}

// What `runc spec` generates (minus the cgroup mount), then the host-image mounts.
json mounts(const ContainerSpec& spec, const OciOptions& options) {
  json m = json::array();
  m.push_back(json{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}});
  m.push_back(
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  m.push_back(mount("/dev/pts", "devpts", "devpts",
                    {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  m.push_back(
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  m.push_back(mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  m.push_back(mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  m.push_back(mount("/usr", "bind", "/usr", {"rbind", "ro"}));
  m.push_back(mount("/etc", "bind", "/etc", {"rbind", "ro"}));
  m.push_back(mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}));
  m.push_back(mount("/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}));
  // A tmpfs so the binary's mount point can be created inside the read-only /usr.
  m.push_back(mount("/usr/local/bin", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}));
  m.push_back(json{{"destination", kContainerBinaryPath},
                   {"type", "bind"},
                   {"source", options.hostBinary},
                   {"options", {"bind", "ro"}}});
  for (const auto& b : spec.mounts) {
    m.push_back(json{{"destination", b.destination},
                     {"type", "bind"},
                     {"source", b.source},
                     {"options", {"rbind", b.readOnly ? "ro" : "rw"}}});
  }
  return m;
}

// 65536, or less when our own hard limit is lower: raising a hard limit needs
// CAP_SYS_RESOURCE, which a sandboxed runtime may not have (runc then fails to start).
uint64_t nofileLimit() {
  constexpr uint64_t kWanted = 65536;
  rlimit current{};
  if (::getrlimit(RLIMIT_NOFILE, &current) != 0 || current.rlim_max == RLIM_INFINITY)
    return kWanted;
  return std::min<uint64_t>(kWanted, current.rlim_max);
}

json process(const ContainerSpec& spec) {
  uint64_t nofile = nofileLimit();
  json caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  return json{
      {"terminal", false},
      {"user", {{"uid", spec.uid}, {"gid", spec.gid}}},
      {"args", spec.args},
      {"env", spec.env},
      {"cwd", spec.cwd.empty() ? std::string("/") : spec.cwd},
      {"capabilities",
       {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
      {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", nofile}, {"soft", nofile}}}},
      {"noNewPrivileges", true},
  };
}

json linuxSection(const ContainerSpec& spec, const OciOptions& options) {
  json network = {{"type", "network"}};
  if (!spec.netnsPath.empty()) network["path"] = spec.netnsPath;
  return json{
      {"cgroupsPath", "/" + options.cgroupParent + "/" + spec.id},
      {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
      {"namespaces",
       {{{"type", "pid"}}, network, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}}},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
}

Result<void> makeDirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return makeError(ErrorCode::kIo, "cannot create " + path + ": " + ec.message());
  return {};
}

// rootfs/{usr,etc,...} mount points and the usr-merge symlinks the host has.
Result<void> writeRootfs(const std::string& rootfs) {
  for (const char* dir : {"usr", "etc", "proc", "dev", "sys", "tmp", "run"}) {
    if (auto r = makeDirs(rootfs + "/" + dir); !r) return r;
  }
  // runc gives a tmpfs the mode of the directory it is mounted on: /tmp must be 1777 for
  // containers that run as another user than root.
  std::error_code ec;
  fs::permissions(rootfs + "/tmp", fs::perms::all | fs::perms::sticky_bit, ec);
  if (ec) return makeError(ErrorCode::kIo, "cannot chmod " + rootfs + "/tmp: " + ec.message());
  for (const char* link : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string target = std::string("usr/") + link;
    if (!fs::is_directory("/" + target, ec)) continue;
    std::string path = rootfs + "/" + link;
    if (fs::is_symlink(path, ec)) continue;  // a bundle being rewritten
    fs::create_directory_symlink(target, path, ec);
    if (ec) return makeError(ErrorCode::kIo, "cannot create symlink " + path + ": " + ec.message());
  }
  return {};
}

}  // namespace

bool isValidContainerId(const std::string& id) { return validIdImpl(id); }

Result<std::vector<std::string>> listDir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) out.push_back(it->path().string());
  if (ec) return makeError(ErrorCode::kIo, "cannot list " + dir + ": " + ec.message());
  return out;
}

Result<void> validateContainerSpec(const ContainerSpec& spec) {
  if (!isValidContainerId(spec.id))
    return invalid("id \"" + spec.id + "\" is not [A-Za-z0-9_.-]{1,128}");
  if (spec.args.empty() || spec.args[0].empty()) return invalid("args is empty");
  if (!cleanAbsolute(spec.bundleDir)) return invalid("bundleDir must be an absolute path");
  if (!cleanAbsolute(spec.logPath)) return invalid("logPath must be an absolute path");
  if (!spec.cwd.empty() && spec.cwd[0] != '/') return invalid("cwd must be absolute");
  if (!spec.netnsPath.empty() && !cleanAbsolute(spec.netnsPath))
    return invalid("netnsPath must be an absolute path");
  for (const auto& e : spec.env) {
    if (e.find('=') == std::string::npos || e[0] == '=')
      return invalid("env entry \"" + e + "\" is not NAME=value");
  }
  for (const auto& m : spec.mounts) {
    if (!cleanAbsolute(m.source)) return invalid("mount source \"" + m.source + "\"");
    if (!cleanAbsolute(m.destination) || m.destination == "/")
      return invalid("mount destination \"" + m.destination + "\"");
  }
  return {};
}

nlohmann::json ociConfig(const ContainerSpec& spec, const OciOptions& options) {
  return json{
      {"ociVersion", "1.0.2"},
      {"process", process(spec)},
      {"root", {{"path", "rootfs"}, {"readonly", spec.readonlyRootfs}}},
      {"hostname", spec.hostname.empty() ? spec.id.substr(0, 63) : spec.hostname},
      {"mounts", mounts(spec, options)},
      {"linux", linuxSection(spec, options)},
  };
}

Result<void> writeBundle(const ContainerSpec& spec, const OciOptions& options) {
  if (auto r = writeRootfs(spec.bundleDir + "/rootfs"); !r) return r;
  for (const auto& m : spec.mounts) {
    std::error_code ec;
    if (fs::exists(m.source, ec)) continue;
    if (auto r = makeDirs(m.source); !r) return r;
  }
  std::string text;
  try {
    text = ociConfig(spec, options).dump(2);
  } catch (const std::exception& e) {  // invalid UTF-8 in an argument or env entry
    return makeError(ErrorCode::kInvalidArgument, std::string("container spec: ") + e.what());
  }
  return writeFileAtomic(spec.bundleDir + "/config.json", text, 0600);
}

Result<void> removeTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return makeError(ErrorCode::kIo, "cannot remove " + path + ": " + ec.message());
  return {};
}

}  // namespace taskmesh::runtime
