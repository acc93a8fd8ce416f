#pragma once
// Repairs a torn tail in libraft's open log segments before libraft reads them.
//
// libraft 0.15 aborts (double free) when an open segment ends inside a batch, which is what a
// crash leaves behind on a filesystem that did not keep the segment's preallocated size. We
// cut such a segment back to the end of its last complete batch; libraft itself already drops
// a complete-but-corrupt last batch by its checksums. Only the torn batch is lost: it was
// never acknowledged, because a write is acknowledged only after its batch is fsync'd.
//
// Segment format (libraft uv, format version 1): 8-byte version, then batches of
//   [4-byte header CRC][4-byte data CRC][8-byte entry count n][n × 16-byte entry header:
//   8 term, 1 type, 3 unused, 4 data length][entry data, each padded to 8 bytes].

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace taskmesh::raft {

struct SegmentRepair {
  std::string file;
  uint64_t oldSize = 0;
  uint64_t newSize = 0;
};

// Scans every "open-*" file in `dir`; returns what was truncated (empty when nothing was).
Result<std::vector<SegmentRepair>> repairOpenSegments(const std::string& dir);

// The length of the complete batches in `bytes` (a whole open segment), i.e. where a torn tail
// begins; bytes.size() when there is none. Exposed for tests.
uint64_t completePrefixLength(const std::string& bytes);

}  // namespace taskmesh::raft
