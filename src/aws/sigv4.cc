#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "net/http.h"

namespace taskmesh::aws {
namespace {

std::string toHex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0f]);
  }
  return out;
}

std::string hmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

bool isUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims leading and trailing whitespace and collapses inner runs of spaces to one.
std::string canonicalHeaderValue(std::string_view value) {
  std::string out;
  bool pendingSpace = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pendingSpace = !out.empty();
      continue;
    }
    if (pendingSpace) out.push_back(' ');
    pendingSpace = false;
    out.push_back(c);
  }
  return out;
}

// Lower-case name → comma-joined canonical values, sorted by name.
std::map<std::string, std::string> canonicalHeaders(
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    auto [it, inserted] = out.emplace(lower(name), canonicalHeaderValue(value));
    if (!inserted) it->second += "," + canonicalHeaderValue(value);
  }
  return out;
}

std::string signedHeaderList(const std::map<std::string, std::string>& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

bool validAmzDate(std::string_view d) {
  if (d.size() != 16 || d[8] != 'T' || d[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(d[i]))) return false;
  }
  return true;
}

}  // namespace

std::string sha256Hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), out, &size, EVP_sha256(), nullptr);
  return toHex(out, size);
}

std::string uriEncode(std::string_view text, bool keepSlash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (isUnreserved(c) || (keepSlash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0x0f]);
    }
  }
  return out;
}

std::string normalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  std::string_view last;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view segment = path.substr(pos, slash - pos);
    last = segment;
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    pos = slash + 1;
  }
  std::string out;
  for (auto segment : segments) {
    out += '/';
    out += segment;
  }
  bool trailingSlash = last.empty() || last == "." || last == "..";
  if (out.empty() || trailingSlash) out += '/';
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> parseQuery(std::string_view rawQuery) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!rawQuery.empty()) {
    size_t amp = rawQuery.find('&');
    std::string_view pair = rawQuery.substr(0, amp);
    rawQuery = amp == std::string_view::npos ? std::string_view() : rawQuery.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto name = net::percentDecode(pair.substr(0, eq), false);
    if (!name) return makeError(name.error().code, "invalid query: " + name.error().message);
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = net::percentDecode(pair.substr(eq + 1), false);
      if (!v) return makeError(v.error().code, "invalid query: " + v.error().message);
      value = std::move(*v);
    }
    out.emplace_back(std::move(*name), std::move(value));
  }
  return out;
}

std::string canonicalRequest(const SignableRequest& request) {
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : request.query) {
    query.emplace_back(uriEncode(name, false), uriEncode(value, false));
  }
  std::sort(query.begin(), query.end());
  std::string canonicalQuery;
  for (const auto& [name, value] : query) {
    if (!canonicalQuery.empty()) canonicalQuery += '&';
    canonicalQuery.append(name).append("=").append(value);
  }
  auto headers = canonicalHeaders(request.headers);
  std::string out = request.method + "\n" + uriEncode(normalizePath(request.path), true) + "\n" +
                    canonicalQuery + "\n";
  for (const auto& [name, value] : headers) out.append(name).append(":").append(value) += '\n';
  out.append("\n").append(signedHeaderList(headers)).append("\n").append(sha256Hex(request.body));
  return out;
}

std::string stringToSign(std::string_view amzDate, std::string_view credentialScope,
                         std::string_view canonicalRequest) {
  std::string out(kAlgorithm);
  out += "\n";
  out += amzDate;
  out += "\n";
  out += credentialScope;
  out += "\n";
  out += sha256Hex(canonicalRequest);
  return out;
}

std::string signingKey(std::string_view secretAccessKey, std::string_view date,
                       std::string_view region, std::string_view service) {
  std::string key = hmacSha256("AWS4" + std::string(secretAccessKey), date);
  key = hmacSha256(key, region);
  key = hmacSha256(key, service);
  return hmacSha256(key, "aws4_request");
}

Result<Signature> computeSignature(const SignableRequest& request, const Credentials& credentials,
                                   std::string_view region, std::string_view service,
                                   std::string_view amzDate) {
  if (!validAmzDate(amzDate)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SigV4: X-Amz-Date \"" + std::string(amzDate) + "\" is not YYYYMMDDTHHMMSSZ");
  }
  if (credentials.accessKeyId.empty() || credentials.secretAccessKey.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "SigV4: empty access key ID or secret key");
  }
  if (region.empty() || service.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "SigV4: empty region or service");
  }
  auto headers = canonicalHeaders(request.headers);
  if (!headers.contains("host")) {
    return makeError(ErrorCode::kInvalidArgument, "SigV4: the request has no Host header");
  }
  std::string_view date = amzDate.substr(0, 8);
  std::string scope =
      std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
  Signature out;
  out.canonicalRequest = canonicalRequest(request);
  out.stringToSign = stringToSign(amzDate, scope, out.canonicalRequest);
  std::string key = signingKey(credentials.secretAccessKey, date, region, service);
  std::string mac = hmacSha256(key, out.stringToSign);
  out.signature = toHex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
  out.authorization = std::string(kAlgorithm) + " Credential=" + credentials.accessKeyId + "/" +
                      scope + ", SignedHeaders=" + signedHeaderList(headers) +
                      ", Signature=" + out.signature;
  return out;
}

Result<void> signRequest(SignableRequest& request, const Credentials& credentials,
                         std::string_view region, std::string_view service,
                         std::chrono::system_clock::time_point now) {
  std::string amzDate = formatAmzDate(now);
  auto& headers = request.headers;
  std::erase_if(headers, [](const auto& h) {
    std::string name = lower(h.first);
    return name == "x-amz-date" || name == "x-amz-security-token" || name == "authorization";
  });
  headers.emplace_back("X-Amz-Date", amzDate);
  if (!credentials.sessionToken.empty()) {
    headers.emplace_back("X-Amz-Security-Token", credentials.sessionToken);
  }
  auto signature = computeSignature(request, credentials, region, service, amzDate);
  if (!signature) return makeError(signature.error());
  headers.emplace_back("Authorization", std::move(signature->authorization));
  return {};
}

std::string formatAmzDate(std::chrono::system_clock::time_point time) {
  std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[17];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace taskmesh::aws
