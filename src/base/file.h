#pragma once
// Files that other processes read must never be seen half-written.

#include <sys/types.h>
#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh {

// Writes `data` to `path` atomically: a temporary file in the same directory is written,
// fsync'd, given `mode`, and renamed over `path`; the directory is fsync'd too.
Result<void> writeFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);

// Reads a whole file. Errors name the path and the errno text.
Result<std::string> readFile(const std::string& path);

}  // namespace taskmesh
