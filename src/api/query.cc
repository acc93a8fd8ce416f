#include "api/query.h"

#include "base/duration.h"

namespace taskmesh::api {

Result<uint64_t> parseUint(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 20)
    return makeError(ErrorCode::kInvalidArgument, "Invalid " + what);
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return makeError(ErrorCode::kInvalidArgument, "Invalid " + what);
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return makeError(ErrorCode::kInvalidArgument, "Invalid " + what);
    v = next;
  }
  return v;
}

Result<bool> parseBoolParam(const net::HttpRequest& req, const std::string& name) {
  if (!req.has(name)) return false;
  std::string v = req.param(name);
  if (v.empty() || v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True")
    return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False")
    return false;
  return makeError(ErrorCode::kInvalidArgument, "Invalid value for ?" + name);
}

Result<QueryOptions> parseQueryOptions(const net::HttpRequest& req) {
  QueryOptions q;
  if (req.has("index")) {
    auto idx = parseUint(req.param("index"), "index");
    if (!idx) return makeError(idx.error());
    q.index = *idx;
  }
  if (req.has("wait")) {
    auto d = parseDuration(req.param("wait"));
    if (!d || d->count() < 0) return makeError(ErrorCode::kInvalidArgument, "Invalid wait time");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    if (ms.count() > 0) q.wait = std::min(ms, kMaxWait);
  }
  q.stale = req.has("stale");
  q.consistent = req.has("consistent");
  q.pretty = req.has("pretty");
  if (q.stale && q.consistent) {
    return makeError(ErrorCode::kInvalidArgument,
                     "Cannot specify ?stale with ?consistent, conflicting semantics.");
  }
  return q;
}

}  // namespace taskmesh::api
