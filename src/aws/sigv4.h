#pragma once
// AWS Signature Version 4 (reference/ecs.md §10): canonical request, string to sign, signing
// key (an HMAC-SHA256 chain) and the Authorization header. Pure functions: no I/O, no clock
// except in signRequest(), safe from any thread. Verified against AWS's published
// aws-sig-v4-test-suite (sigv4_test.cc).

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace taskmesh::aws {

struct Credentials {
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;  // empty for long-term keys
};

// A request as the signer sees it.
struct SignableRequest {
  std::string method = "GET";
  // The path, not percent-encoded ("/example space/"). The signer normalises it (drops empty,
  // "." and ".." segments, as for every service but S3) and percent-encodes it once.
  std::string path = "/";
  // Query parameters, decoded. Order does not matter; the signer sorts them.
  std::vector<std::pair<std::string, std::string>> query;
  // Every header to sign, as sent (any case; a repeated name is signed as one comma-joined
  // value in the order given). Must include Host.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct Signature {
  std::string canonicalRequest;
  std::string stringToSign;
  std::string signature;      // lower-case hex
  std::string authorization;  // the Authorization header value
};

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// Lower-case hex of SHA-256(data).
std::string sha256Hex(std::string_view data);

// Percent-encodes every byte except the RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~),
// with upper-case hex; '/' is kept when `keepSlash`.
std::string uriEncode(std::string_view text, bool keepSlash);

// Removes empty, "." and ".." segments; keeps a trailing slash. "" becomes "/".
std::string normalizePath(std::string_view path);

// Splits a raw query string ("a=1&b=%20") into decoded pairs. Errors name the bad escape.
Result<std::vector<std::pair<std::string, std::string>>> parseQuery(std::string_view rawQuery);

// The canonical request of `request` (all of its headers signed).
std::string canonicalRequest(const SignableRequest& request);

// "AWS4-HMAC-SHA256\n<amzDate>\n<scope>\n<hex sha256 of canonical request>".
std::string stringToSign(std::string_view amzDate, std::string_view credentialScope,
                         std::string_view canonicalRequest);

// The raw 32-byte key: HMAC chain "AWS4"+secret → date → region → service → "aws4_request".
std::string signingKey(std::string_view secretAccessKey, std::string_view date,
                       std::string_view region, std::string_view service);

// Signs `request` as it is (it must already carry X-Amz-Date = `amzDate`, and
// X-Amz-Security-Token if that is to be signed). `amzDate` is "YYYYMMDDTHHMMSSZ".
Result<Signature> computeSignature(const SignableRequest& request, const Credentials& credentials,
                                   std::string_view region, std::string_view service,
                                   std::string_view amzDate);

// Adds X-Amz-Date (from `now`), X-Amz-Security-Token (when the credentials have a session
// token) and Authorization to `request.headers`; the first two are signed.
Result<void> signRequest(SignableRequest& request, const Credentials& credentials,
                         std::string_view region, std::string_view service,
                         std::chrono::system_clock::time_point now);

// "YYYYMMDDTHHMMSSZ" in UTC.
std::string formatAmzDate(std::chrono::system_clock::time_point time);

}  // namespace taskmesh::aws
