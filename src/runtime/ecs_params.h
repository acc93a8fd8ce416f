#pragma once
// Typed reads of an ECS API request's members. Every error is InvalidParameterException (or
// ClientException where ECS uses that) naming the member. Private to src/runtime.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "ecs/api_error.h"
#include "runtime/registry.h"

namespace taskmesh::runtime::detail {

using nlohmann::json;

class Params {
 public:
  explicit Params(const json& body) : body_(body) {}

  bool has(const char* key) const {
    return body_.is_object() && body_.contains(key) && !body_[key].is_null();
  }
  ecs::ApiResult<std::string> str(const char* key, bool required = false) const {
    if (!has(key)) {
      if (required) return ecs::invalidParameter(std::string(key) + " must be specified.");
      return std::string();
    }
    if (!body_[key].is_string()) {
      return ecs::invalidParameter(std::string(key) + " must be a string.");
    }
    return body_[key].get<std::string>();
  }
  ecs::ApiResult<int> integer(const char* key, int fallback, int min, int max) const {
    if (!has(key)) return fallback;
    if (!body_[key].is_number_integer()) {
      return ecs::invalidParameter(std::string(key) + " must be an integer.");
    }
    auto v = body_[key].get<long long>();
    if (v < min || v > max) {
      return ecs::invalidParameter(std::string(key) + " must be between " + std::to_string(min) +
                                   " and " + std::to_string(max) + ".");
    }
    return static_cast<int>(v);
  }
  ecs::ApiResult<bool> boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!body_[key].is_boolean())
      return ecs::invalidParameter(std::string(key) + " must be a boolean.");
    return body_[key].get<bool>();
  }
  ecs::ApiResult<std::vector<std::string>> strings(const char* key, bool required = false) const {
    std::vector<std::string> out;
    if (!has(key)) {
      if (required) return ecs::invalidParameter(std::string(key) + " must be specified.");
      return out;
    }
    if (!body_[key].is_array()) {
      return ecs::invalidParameter(std::string(key) + " must be a list of strings.");
    }
    for (const auto& e : body_[key]) {
      if (!e.is_string()) {
        return ecs::invalidParameter(std::string(key) + " must be a list of strings.");
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  // An object or array member as JSON (`fallback` when absent); `kind` is "object"/"array".
  ecs::ApiResult<json> value(const char* key, const json& fallback) const {
    if (!has(key)) return fallback;
    if (body_[key].type() != fallback.type()) {
      return ecs::invalidParameter(std::string(key) + " must be " +
                                   (fallback.is_array() ? "a list." : "a structure."));
    }
    return body_[key];
  }
  bool includes(const char* what) const {
    auto inc = strings("include");
    if (!inc) return false;
    for (const auto& s : *inc) {
      if (s == what) return true;
    }
    return false;
  }

 private:
  const json& body_;
};

// ECS's rule for names (clusters, services, startedBy): 1..max letters, digits, '-' and '_'.
inline bool validName(const std::string& s, size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// One page of `items` after `nextToken` (an offset this API issued), at most `maxResults`.
struct Page {
  std::vector<std::string> items;
  std::string nextToken;
};
ecs::ApiResult<Page> paginate(const std::vector<std::string>& items, const Params& params);

// Tags as ECS accepts them: [{key, value}], at most 50, keys 1-128, values ≤ 256, no "aws:".
ecs::ApiResult<json> validTags(const Params& params);

// The ACTIVE cluster named by params["cluster"] ("default" when absent), or
// ClusterNotFoundException.
ecs::ApiResult<ClusterRecord*> requireCluster(Registry& registry, const Params& params);

}  // namespace taskmesh::runtime::detail
