#pragma once
// Typed, case-insensitive access to the fields of one JSON object from a request body, with
// Consul's error texts ("Request decode failed: Service.Port: expected an integer, got string").
// Field names match as Go's encoding/json matches them (case-insensitively); underscores are
// ignored as well, so the snake_case spellings that Consul's agent accepts ("enable_tag_override")
// find their field. Absent and null fields give the type's zero value. Never throws.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace taskmesh::api {

using Json = nlohmann::json;

// True when a JSON key names the field `name` (case and underscores ignored).
bool sameFieldName(std::string_view key, std::string_view name);

// kInvalidArgument "Request decode failed: <path>: <what>" (no path: just <what>).
Error decodeError(const std::string& path, const std::string& what);
// "string", "number", "object", ... as Go names JSON types in its errors.
std::string typeName(const Json& j);

class Fields {
 public:
  // `obj` must outlive the Fields. `path` prefixes field names in errors ("" at the top).
  Fields(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  const Json* find(std::string_view name) const;
  // The path of a field in error messages: "<path>.<name>".
  std::string at(std::string_view name) const;

  Result<std::string> str(std::string_view name) const;
  Result<int64_t> integer(std::string_view name, int64_t min, int64_t max) const;
  Result<bool> boolean(std::string_view name) const;
  Result<std::map<std::string, std::string>> stringMap(std::string_view name) const;
  Result<std::vector<std::string>> stringList(std::string_view name) const;
  // An object-valued field kept as JSON; null when absent.
  Result<Json> object(std::string_view name) const;

 private:
  const Json& obj_;
  std::string path_;
};

// Declares `var` from a Result-returning expression, returning its error from the enclosing
// function (which must return a Result).
#define TM_TRY(var, expr)                          \
  auto var##_r = (expr);                           \
  if (!var##_r) return makeError(var##_r.error()); \
  auto var = std::move(*var##_r)

}  // namespace taskmesh::api
