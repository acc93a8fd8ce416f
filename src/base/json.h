#pragma once
// Bounded JSON / MessagePack decoding of untrusted bytes. nlohmann's readers recurse once per
// nesting level, so unbounded nesting could exhaust the stack; these stop at `maxDepth` and
// report an error instead. They never throw.

#include <nlohmann/json.hpp>

#include <string_view>

#include "base/result.h"

namespace taskmesh {

inline constexpr size_t kMaxJsonDepth = 64;

Result<nlohmann::json> parseJsonBounded(std::string_view text, size_t maxDepth = kMaxJsonDepth);
Result<nlohmann::json> parseMsgpackBounded(std::string_view bytes, size_t maxDepth = kMaxJsonDepth);

}  // namespace taskmesh
