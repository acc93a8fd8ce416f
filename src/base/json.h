#pragma once
// Bounded JSON / MessagePack decoding of untrusted bytes. nlohmann's readers recurse once per
// nesting level, so unbounded nesting could exhaust the stack; these stop at `maxDepth` and
// report an error instead. They never throw.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh {

inline constexpr size_t kMaxJsonDepth = 64;

Result<nlohmann::json> parseJsonBounded(std::string_view text, size_t maxDepth = kMaxJsonDepth);
Result<nlohmann::json> parseMsgpackBounded(std::string_view bytes, size_t maxDepth = kMaxJsonDepth);

// A JSON file, read and parsed as above. Errors name the file: "<path>: invalid JSON: ...".
Result<nlohmann::json> readJsonFile(const std::string& path);

// obj[key] when obj is an object and the value a string, else `fallback`. Never throws (unlike
// nlohmann's value(), which throws on a value of another type): for JSON from other processes.
inline std::string stringField(const nlohmann::json& obj, const char* key,
                               const std::string& fallback = "") {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace taskmesh
