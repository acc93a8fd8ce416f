#include "raft/segment_repair.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "base/file.h"

namespace taskmesh::raft {
namespace {

uint64_t readLe(const std::string& b, uint64_t off, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}

}  // namespace

uint64_t completePrefixLength(const std::string& b) {
  const uint64_t size = b.size();
  if (size < 8) return size;
  uint64_t off = 8;
  while (off < size) {
    if (size - off < 16) return readLe(b, off, std::min<uint64_t>(8, size - off)) == 0 ? size : off;
    uint64_t n = readLe(b, off + 8, 8);
    if (n == 0) return size;  // zeros: the preallocated, never-written rest of the segment
    uint64_t headerEnd = off + 16;
    if (n > (size - headerEnd) / 16) return off;  // entry headers run past the end
    uint64_t dataEnd = headerEnd + 16 * n;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t len = readLe(b, headerEnd + 16 * i + 12, 4);
      dataEnd += (len + 7) / 8 * 8;
      if (dataEnd > size) return off;  // data runs past the end
    }
    off = dataEnd;
  }
  return size;
}

Result<std::vector<SegmentRepair>> repairOpenSegments(const std::string& dir) {
  std::vector<SegmentRepair> repairs;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return repairs;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with("open-") || !entry.is_regular_file()) continue;
    auto bytes = readFile(entry.path().string());
    if (!bytes) return makeError(bytes.error());
    uint64_t keep = completePrefixLength(*bytes);
    if (keep == bytes->size()) continue;
    if (::truncate(entry.path().c_str(), static_cast<off_t>(keep)) != 0) {
      return makeError(ErrorCode::kIo, "cannot truncate torn log segment " + entry.path().string() +
                                           ": " + std::strerror(errno));
    }
    repairs.push_back({entry.path().string(), bytes->size(), keep});
  }
  if (ec) return makeError(ErrorCode::kIo, "cannot list " + dir + ": " + ec.message());
  return repairs;
}

}  // namespace taskmesh::raft
