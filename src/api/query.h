#pragma once
// Read-query parameters shared by every blocking endpoint (reference §4).

#include <chrono>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "net/http.h"

namespace taskmesh::api {

struct QueryOptions {
  uint64_t index = 0;  // ?index: block until the answer's index is greater
  std::chrono::milliseconds wait{std::chrono::minutes(5)};  // ?wait, clamped to 10 minutes
  bool stale = false;
  bool consistent = false;
  bool pretty = false;
};

inline constexpr std::chrono::milliseconds kMaxWait = std::chrono::minutes(10);

// Parses ?index, ?wait, ?stale, ?consistent, ?pretty. Errors use Consul's texts.
Result<QueryOptions> parseQueryOptions(const net::HttpRequest& req);

// Go's strconv.ParseBool, with Consul's rule that a present-but-empty value means true.
Result<bool> parseBoolParam(const net::HttpRequest& req, const std::string& name);

// Parses an unsigned decimal integer; errors name `what`.
Result<uint64_t> parseUint(const std::string& text, const std::string& what);

}  // namespace taskmesh::api
