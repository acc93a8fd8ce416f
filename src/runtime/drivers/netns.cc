#include "runtime/drivers/netns.h"

#include <arpa/inet.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace taskmesh::runtime::netns {
namespace {

constexpr long kNsfsMagic = 0x6e736673;  // linux/magic.h NSFS_MAGIC

Result<void> sysError(const std::string& what, const std::string& path) {
  return makeError(ErrorCode::kIo, what + " " + path + ": " + std::strerror(errno));
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeMountPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = s[i + j];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

Result<void> makePrivateMountDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return makeError(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  if (!isMountPoint(dir)) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      return sysError("cannot bind-mount onto itself", dir);
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE | MS_REC, nullptr) != 0)
    return sysError("cannot make private", dir);
  return {};
}

Result<void> releaseMountDir(const std::string& dir) {
  if (!isMountPoint(dir)) return {};
  if (::umount2(dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    return sysError("cannot unmount", dir);
  return {};
}

bool isNamespaceFile(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kNsfsMagic;
}

bool isMountPoint(const std::string& path) {
  for (const auto& m : readMountInfo()) {
    if (m.mountPoint == path) return true;
  }
  return false;
}

std::vector<MountEntry> readMountInfo() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <major:minor> <root> <mount point> <options> [optional...] - <fstype> ..."
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountPoint, field;
    if (!(fields >> id >> parent >> dev >> root >> mountPoint)) continue;
    MountEntry e{unescapeMountPath(mountPoint), ""};
    while (fields >> field) {
      if (field == "-") {
        fields >> e.fsType;
        break;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<void> removeNamespaceFile(const std::string& path) {
  for (int i = 0; i < 16 && isNamespaceFile(path); ++i) {
    if (::umount2(path.c_str(), MNT_DETACH) != 0) {
      if (errno == EINVAL) break;  // a namespace file, but not a mount point of ours
      return sysError("cannot unmount", path);
    }
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sysError("cannot remove", path);
  return {};
}

Result<Subnet> parseSubnet(const std::string& cidr, int minPrefix, int maxPrefix) {
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument, "subnet \"" + cidr + "\": " + why);
  };
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return bad("not a CIDR (a.b.c.d/n)");
  std::string addr = cidr.substr(0, slash);
  std::string bits = cidr.substr(slash + 1);
  in_addr a{};
  if (::inet_pton(AF_INET, addr.c_str(), &a) != 1) return bad("not an IPv4 address");
  if (bits.empty() || bits.size() > 2 || bits.find_first_not_of("0123456789") != std::string::npos)
    return bad("bad prefix length");
  int prefix = std::stoi(bits);
  if (prefix < minPrefix || prefix > maxPrefix)
    return bad("prefix length must be " + std::to_string(minPrefix) + ".." +
               std::to_string(maxPrefix));
  uint32_t network = ntohl(a.s_addr);
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((network & ~mask) != 0) return bad("host bits are set");
  return Subnet{network, prefix, formatIpv4(network) + "/" + std::to_string(prefix)};
}

std::string formatIpv4(uint32_t hostOrder) {
  in_addr a{htonl(hostOrder)};
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

bool isIpv4(const std::string& text) {
  in_addr a{};
  return ::inet_pton(AF_INET, text.c_str(), &a) == 1;
}

}  // namespace taskmesh::runtime::netns
