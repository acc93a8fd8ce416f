#include "api/fields.h"

#include <algorithm>
#include <cctype>

namespace taskmesh::api {
// Go's encoding/json matches names case-insensitively; we also skip '_' (snake_case).
bool sameFieldName(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  for (;;) {
    while (i < a.size() && a[i] == '_') ++i;
    while (j < b.size() && b[j] == '_') ++j;
    if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[j])))
      return false;
    ++i;
    ++j;
  }
}

Error decodeError(const std::string& path, const std::string& what) {
  return Error{ErrorCode::kInvalidArgument,
               "Request decode failed: " + (path.empty() ? what : path + ": " + what)};
}

std::string typeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "array";
    case Json::value_t::object:
      return "object";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "number";
    default:
      return "value";
  }
}

const Json* Fields::find(std::string_view name) const {
  if (!obj_.is_object()) return nullptr;
  auto exact = obj_.find(std::string(name));
  if (exact != obj_.end()) return &*exact;
  for (auto it = obj_.begin(); it != obj_.end(); ++it) {
    if (sameFieldName(it.key(), name)) return &*it;
  }
  return nullptr;
}
std::string Fields::at(std::string_view name) const {
  return path_.empty() ? std::string(name) : path_ + "." + std::string(name);
}
Result<std::string> Fields::str(std::string_view name) const {
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string())
    return makeError(decodeError(at(name), "expected a string, got " + typeName(*v)));
  return v->get<std::string>();
}
Result<int64_t> Fields::integer(std::string_view name, int64_t min, int64_t max) const {
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return int64_t{0};
  if (!v->is_number_integer() && !v->is_number_unsigned()) {
    return makeError(decodeError(at(name), "expected an integer, got " + typeName(*v)));
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return makeError(decodeError(at(name), "out of range"));
  }
  int64_t x = v->get<int64_t>();
  if (x < min || x > max) return makeError(decodeError(at(name), "out of range"));
  return x;
}
Result<bool> Fields::boolean(std::string_view name) const {
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_boolean())
    return makeError(decodeError(at(name), "expected a bool, got " + typeName(*v)));
  return v->get<bool>();
}
Result<std::map<std::string, std::string>> Fields::stringMap(std::string_view name) const {
  std::map<std::string, std::string> out;
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_object())
    return makeError(decodeError(at(name), "expected an object, got " + typeName(*v)));
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_string()) {
      return makeError(decodeError(at(name) + "[\"" + it.key() + "\"]",
                                   "expected a string, got " + typeName(*it)));
    }
    out[it.key()] = it->get<std::string>();
  }
  return out;
}
Result<std::vector<std::string>> Fields::stringList(std::string_view name) const {
  std::vector<std::string> out;
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array())
    return makeError(decodeError(at(name), "expected an array, got " + typeName(*v)));
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) {
      return makeError(decodeError(at(name) + "[" + std::to_string(i) + "]",
                                   "expected a string, got " + typeName((*v)[i])));
    }
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}
Result<Json> Fields::object(std::string_view name) const {
  const Json* v = find(name);
  if (v == nullptr || v->is_null()) return Json();
  if (!v->is_object())
    return makeError(decodeError(at(name), "expected an object, got " + typeName(*v)));
  return *v;
}

}  // namespace taskmesh::api
