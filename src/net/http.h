#pragma once
// Transport-neutral HTTP request/response values. The Beast-facing code lives only in
// http_server.cc / http_client.cc so that Beast templates compile in few translation units.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace taskmesh::net {

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // as received: path and query, still percent-encoded
  std::string path;    // percent-decoded path
  // Query parameters, percent-decoded. A parameter given without "=" maps to "". A repeated
  // parameter keeps every value in order (Consul's repeatable ?tag=).
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remoteAddress;  // "IP:port" of the peer (one value per TCP connection)

  bool has(std::string_view param) const { return query.find(std::string(param)) != query.end(); }
  // First value of `param`, or "" when absent.
  std::string param(std::string_view name) const;
  std::vector<std::string> params(std::string_view name) const;
  std::string header(std::string_view lowerName) const;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  static HttpResponse json(std::string body, int status = 200);
  // A plain-text body. Error bodies (status >= 400) often quote client input, so bytes that
  // are not valid UTF-8 are escaped as \xNN: the body is always valid UTF-8, as declared.
  static HttpResponse text(int status, std::string body);
};

// Splits a request target into a decoded path and decoded query parameters. Rejects bad
// percent escapes and NUL / line-feed characters in the path (Consul rejects %0a always).
Result<std::pair<std::string, std::multimap<std::string, std::string>>> parseTarget(
    std::string_view target);

// Returns `s` with every byte that is not part of a valid UTF-8 sequence (and every control
// character but \n and \t) written as \xNN.
std::string escapeInvalidUtf8(std::string_view s);

// Percent-encodes `s` for one path segment: everything but unreserved characters
// (A-Z a-z 0-9 - _ . ~) becomes %XX, '/' included.
std::string percentEncodePathSegment(std::string_view s);

// Percent-decodes `s` ('+' stays '+', as Go's PathUnescape does for paths).
Result<std::string> percentDecode(std::string_view s, bool plusIsSpace);

}  // namespace taskmesh::net
