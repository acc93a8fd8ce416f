#include "connect/spiffe.h"

#include <array>
#include <cctype>

namespace taskmesh::connect {
namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr size_t kMaxTrustDomainBytes = 255;

bool isSegmentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// Quotes `text` for an error message, cut to a readable length.
std::string quoted(std::string_view text) {
  constexpr size_t kShown = 80;
  if (text.size() <= kShown) return "\"" + std::string(text) + "\"";
  return "\"" + std::string(text.substr(0, kShown)) + "...\"";
}

Result<void> validateSegment(std::string_view uri, std::string_view what, std::string_view seg) {
  if (seg.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) + ": " + std::string(what) + " is empty");
  }
  if (seg == "." || seg == "..") {
    return makeError(
        ErrorCode::kInvalidArgument,
        "SPIFFE ID " + quoted(uri) + ": " + std::string(what) + " must not be " + quoted(seg));
  }
  for (char c : seg) {
    if (!isSegmentChar(c)) {
      return makeError(ErrorCode::kInvalidArgument, "SPIFFE ID " + quoted(uri) + ": " +
                                                        std::string(what) + " " + quoted(seg) +
                                                        " has a character outside [A-Za-z0-9._-]");
    }
  }
  return {};
}

}  // namespace

std::string ServiceId::uri() const {
  return std::string(kScheme) + trustDomain + "/ns/" + ns + "/dc/" + datacenter + "/svc/" + service;
}

std::string trustDomainFor(std::string_view clusterId) {
  std::string out;
  out.reserve(clusterId.size() + 7);
  for (char c : clusterId)
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  out += ".consul";
  return out;
}

std::string signingUri(std::string_view trustDomain) {
  return std::string(kScheme) + std::string(trustDomain);
}

Result<void> validateTrustDomain(std::string_view td) {
  if (td.empty()) return makeError(ErrorCode::kInvalidArgument, "trust domain is empty");
  if (td.size() > kMaxTrustDomainBytes) {
    return makeError(
        ErrorCode::kInvalidArgument,
        "trust domain is longer than " + std::to_string(kMaxTrustDomainBytes) + " bytes");
  }
  for (char c : td) {
    if (c >= 'A' && c <= 'Z') {
      return makeError(ErrorCode::kInvalidArgument,
                       "trust domain " + quoted(td) + " must be lower case");
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) {
      return makeError(ErrorCode::kInvalidArgument,
                       "trust domain " + quoted(td) + " has a character outside [a-z0-9._-]");
    }
  }
  return {};
}

Result<ServiceId> parseServiceUri(std::string_view uri) {
  if (uri.size() > kMaxSpiffeIdBytes) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID is longer than " + std::to_string(kMaxSpiffeIdBytes) + " bytes");
  }
  if (!uri.starts_with(kScheme)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) + ": scheme must be \"spiffe://\"");
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view host = rest.substr(0, slash);
  if (auto ok = validateTrustDomain(host); !ok) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) + ": " + ok.error().message);
  }
  if (slash == std::string_view::npos) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) +
                         " has no path; a service ID needs "
                         "/ns/<namespace>/dc/<datacenter>/svc/<service>");
  }
  // Split the path; a seventh segment is enough to know there are too many.
  std::string_view path = rest.substr(slash + 1);
  std::array<std::string_view, 7> seg{};
  size_t count = 0;
  while (count < seg.size()) {
    size_t next = path.find('/');
    seg[count++] = path.substr(0, next);
    if (next == std::string_view::npos) break;
    path = path.substr(next + 1);
  }
  bool shaped = count >= 6 && seg[0] == "ns" && seg[2] == "dc" && seg[4] == "svc";
  if (shaped && count > 6) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) +
                         ": path has extra segments after /ns/<namespace>/dc/<datacenter>/svc/"
                         "<service>");
  }
  if (!shaped) {
    return makeError(ErrorCode::kInvalidArgument,
                     "SPIFFE ID " + quoted(uri) +
                         ": path must be /ns/<namespace>/dc/<datacenter>/svc/<service>");
  }
  if (auto ok = validateSegment(uri, "namespace", seg[1]); !ok) return makeError(ok.error());
  if (auto ok = validateSegment(uri, "datacenter", seg[3]); !ok) return makeError(ok.error());
  if (auto ok = validateSegment(uri, "service", seg[5]); !ok) return makeError(ok.error());
  return ServiceId{.trustDomain = std::string(host),
                   .ns = std::string(seg[1]),
                   .datacenter = std::string(seg[3]),
                   .service = std::string(seg[5])};
}

}  // namespace taskmesh::connect
