#include "aws/json_fields.h"

namespace taskmesh::aws::detail {
namespace {

const nlohmann::json& emptyArray() {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  return kEmpty;
}

}  // namespace

std::string fieldPath(const std::string& where, std::string_view key) {
  return where.empty() ? std::string(key) : where + "." + std::string(key);
}

Result<std::string> optionalString(const nlohmann::json& obj, std::string_view key,
                                   const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return makeError(ErrorCode::kInvalidArgument, fieldPath(where, key) + " is not a string");
  }
  return it->get<std::string>();
}

Result<std::string> requiredString(const nlohmann::json& obj, std::string_view key,
                                   const std::string& where) {
  auto value = optionalString(obj, key, where);
  if (value && value->empty()) {
    return makeError(ErrorCode::kInvalidArgument, fieldPath(where, key) + " is missing or empty");
  }
  return value;
}

Result<const nlohmann::json*> optionalArray(const nlohmann::json& obj, std::string_view key,
                                            const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return &emptyArray();
  if (!it->is_array()) {
    return makeError(ErrorCode::kInvalidArgument, fieldPath(where, key) + " is not an array");
  }
  return &*it;
}

}  // namespace taskmesh::aws::detail
