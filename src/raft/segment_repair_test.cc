#include "raft/segment_repair.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/file.h"

namespace taskmesh::raft {
namespace {

void putLe(std::string& b, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// One batch of entries with the given data lengths.
std::string batch(std::initializer_list<uint32_t> lengths) {
  std::string b;
  putLe(b, 0x11111111, 4);  // header CRC (not checked here)
  putLe(b, 0x22222222, 4);  // data CRC
  putLe(b, lengths.size(), 8);
  for (uint32_t len : lengths) {
    putLe(b, 7, 8);  // term
    putLe(b, 1, 4);  // type + unused
    putLe(b, len, 4);
  }
  for (uint32_t len : lengths) b.append((len + 7) / 8 * 8, 'x');
  return b;
}

std::string segment(std::initializer_list<std::string> batches) {
  std::string s;
  putLe(s, 1, 8);
  for (const auto& b : batches) s += b;
  return s;
}

TEST(SegmentRepair, CompleteSegmentsAreLeftAlone) {
  std::string s = segment({batch({23}), batch({408, 5})});
  EXPECT_EQ(completePrefixLength(s), s.size());
  std::string preallocated = s + std::string(4096, '\0');
  EXPECT_EQ(completePrefixLength(preallocated), preallocated.size());
  EXPECT_EQ(completePrefixLength(std::string(8192, '\0')), 8192u);
}

TEST(SegmentRepair, EveryCutInsideTheLastBatchIsFoundAtItsStart) {
  std::string first = segment({batch({23}), batch({16})});
  std::string last = batch({100, 3, 64});
  std::string s = first + last;
  for (size_t cut = first.size() + 1; cut < s.size(); ++cut) {
    EXPECT_EQ(completePrefixLength(s.substr(0, cut)), first.size()) << cut;
  }
}

TEST(SegmentRepair, AbsurdEntryCountIsATornTail) {
  std::string s = segment({batch({8})});
  size_t good = s.size();
  putLe(s, 0, 8);
  putLe(s, 1ULL << 60, 8);
  EXPECT_EQ(completePrefixLength(s), good);
}

TEST(SegmentRepair, TruncatesOnlyTornOpenSegments) {
  auto dir = std::filesystem::temp_directory_path() / ("segrepair-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string good = segment({batch({23})});
  std::string torn = good + batch({64}).substr(0, 30);
  ASSERT_TRUE(writeFileAtomic((dir / "open-1").string(), torn).has_value());
  ASSERT_TRUE(writeFileAtomic((dir / "open-2").string(), good).has_value());
  ASSERT_TRUE(
      writeFileAtomic((dir / "0000000000000001-0000000000000002").string(), torn).has_value());
  auto r = repairOpenSegments(dir.string());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].newSize, good.size());
  EXPECT_EQ(std::filesystem::file_size(dir / "open-1"), good.size());
  EXPECT_EQ(std::filesystem::file_size(dir / "open-2"), good.size());
  EXPECT_EQ(std::filesystem::file_size(dir / "0000000000000001-0000000000000002"), torn.size());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace taskmesh::raft
