#pragma once
// The OCI bundle of a "host image" container: a rootfs of empty mount points and symlinks,
// and a config.json (runtime-spec 1.0.2) that binds the host's /usr and /etc read-only.
// Used by RuncEngine; separate so the generated config can be tested without runc.
//
// Thread: none of its own; plain functions touching only the bundle directory.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "runtime/container_engine.h"

namespace taskmesh::runtime {

struct OciOptions {
  std::string hostBinary;    // bound read-only at kContainerBinaryPath
  std::string cgroupParent;  // linux.cgroupsPath = "/<cgroupParent>/<id>" (cgroupfs)
};

inline constexpr const char* kContainerBinaryPath = "/usr/local/bin/taskmesh";

// [A-Za-z0-9_.-]{1,128}, not "." or "..": safe as a runc id and as a file name.
bool isValidContainerId(const std::string& id);

// The entries of a directory (full paths); an empty list if it does not exist.
Result<std::vector<std::string>> listDir(const std::string& dir);

// kInvalidArgument naming the field: id charset, args, absolute paths, mount destinations.
Result<void> validateContainerSpec(const ContainerSpec& spec);

// The config.json document for `spec` (assumed valid).
nlohmann::json ociConfig(const ContainerSpec& spec, const OciOptions& options);

// Creates bundleDir/rootfs with its mount points and symlinks, creates missing bind-mount
// source directories, and writes bundleDir/config.json atomically. kIo naming the path.
Result<void> writeBundle(const ContainerSpec& spec, const OciOptions& options);

// Removes a directory tree (no symlink is followed). Missing is fine. kIo naming the path.
Result<void> removeTree(const std::string& path);

}  // namespace taskmesh::runtime
