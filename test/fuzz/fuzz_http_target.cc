// Request targets and read-query parameters: path decoding, ?index, ?wait (Go durations),
// ?stale/?consistent, ?passing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/query.h"
#include "base/duration.h"
#include "net/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string target(reinterpret_cast<const char*>(data), size);
  (void)taskmesh::parseDuration(target);
  auto parsed = taskmesh::net::parseTarget(target);
  if (!parsed.has_value()) return 0;
  taskmesh::net::HttpRequest req;
  req.method = "GET";
  req.target = target;
  req.path = parsed->first;
  req.query = parsed->second;
  (void)taskmesh::api::parseQueryOptions(req);
  (void)taskmesh::api::parseBoolParam(req, "passing");
  return 0;
}
