#pragma once
// Helpers of CniNetwork: persistent network namespace files (bind mounts of nsfs, as
// `ip netns` makes them, but in a directory of our own) and IPv4 subnets.
//
// Thread: none of their own; plain system calls, safe from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace taskmesh::runtime::netns {

// Makes `dir` (created if missing) a mount point of its own with private propagation,
// binding it onto itself first if it is not one (what iproute2 does for /run/netns), so the
// namespace mounts inside never propagate to, or from, other mount namespaces.
Result<void> makePrivateMountDir(const std::string& dir);

// Undoes makePrivateMountDir when `dir` is a mount point (MNT_DETACH). Missing is fine.
Result<void> releaseMountDir(const std::string& dir);

// Whether `path` is a mounted namespace file (statfs f_type == NSFS_MAGIC).
bool isNamespaceFile(const std::string& path);

// Whether `path` is the mount point of some mount in /proc/self/mountinfo.
bool isMountPoint(const std::string& path);

struct MountEntry {
  std::string mountPoint;  // unescaped
  std::string fsType;      // "cgroup", "nsfs", ...
};
// The mounts of this process's mount namespace (/proc/self/mountinfo); empty if unreadable.
std::vector<MountEntry> readMountInfo();

// Unmounts a namespace file (every mount stacked on it, MNT_DETACH) and unlinks it.
// Missing or not mounted is fine. kIo naming the path and the errno text otherwise.
Result<void> removeNamespaceFile(const std::string& path);

struct Subnet {
  uint32_t network = 0;  // host byte order, host bits zero
  int prefix = 0;
  std::string cidr;  // canonical "a.b.c.d/n"
};

// "198.18.0.0/16" with the prefix in [minPrefix, maxPrefix] and no host bits set.
// kInvalidArgument naming what is wrong.
Result<Subnet> parseSubnet(const std::string& cidr, int minPrefix = 8, int maxPrefix = 28);

std::string formatIpv4(uint32_t hostOrder);

// Whether `text` is a dotted-quad IPv4 address.
bool isIpv4(const std::string& text);

}  // namespace taskmesh::runtime::netns
