#pragma once
// Typed field access for JSON from outside (ECS API responses, the metadata endpoint): every
// accessor checks the type and names the field path in its error ("tasks[0].containers[1].name
// is not a string"). Private to src/aws.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh::aws::detail {

// "where.key", or "key" at the top level.
std::string fieldPath(const std::string& where, std::string_view key);

// obj[key] as a string; "" when absent or null.
Result<std::string> optionalString(const nlohmann::json& obj, std::string_view key,
                                   const std::string& where);
// obj[key] as a non-empty string.
Result<std::string> requiredString(const nlohmann::json& obj, std::string_view key,
                                   const std::string& where);
// obj[key] as an array; an empty array when absent or null. The pointer is into `obj`.
Result<const nlohmann::json*> optionalArray(const nlohmann::json& obj, std::string_view key,
                                            const std::string& where);

}  // namespace taskmesh::aws::detail
