#include "connect/intentions.h"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace taskmesh::connect {
namespace {

constexpr size_t kMaxDescriptionBytes = 512;
constexpr size_t kMaxMetaPairs = 64;
constexpr size_t kMaxMetaKeyBytes = 128;
constexpr size_t kMaxMetaValueBytes = 512;

// How many of (namespace, name) are exact: 2, 1 (name is "*") or 0 (namespace is "*"; its name
// must then be "*" too, which validateIntention() enforces).
int exactCount(const std::string& ns, const std::string& name) {
  if (ns == kWildcard) return 0;
  if (name == kWildcard) return 1;
  return 2;
}

bool applies(const std::string& ns, const std::string& name, std::string_view target) {
  return (ns == kDefaultNamespace || ns == kWildcard) && (name == kWildcard || name == target);
}

std::string displayName(const std::string& ns, const std::string& name) {
  return ns == kDefaultNamespace ? name : ns + "/" + name;
}

Result<void> validateNamespace(std::string_view field, const std::string& ns,
                               const std::string& name) {
  if (ns != kDefaultNamespace && ns != kWildcard) {
    return makeError(
        ErrorCode::kInvalidArgument,
        std::string(field) + " \"" + ns + "\" is not supported; use \"default\" or \"*\"");
  }
  if (ns == kWildcard && name != kWildcard) {
    return makeError(
        ErrorCode::kInvalidArgument,
        std::string(field) + " is \"*\", so the name must be \"*\" too, not \"" + name + "\"");
  }
  return {};
}

}  // namespace

int precedence(const Intention& intention) {
  // The destination picks the band (9, 6 or 3), the source the place within it.
  int band = 3 + 3 * exactCount(intention.destinationNs, intention.destinationName);
  return band - (2 - exactCount(intention.sourceNs, intention.sourceName));
}

void sortForEvaluation(std::vector<Intention>& intentions) {
  auto key = [](const Intention& x) {
    return std::make_tuple(-precedence(x), x.action == IntentionAction::kDeny ? 0 : 1,
                           std::cref(x.sourceNs), std::cref(x.sourceName),
                           std::cref(x.destinationNs), std::cref(x.destinationName));
  };
  std::stable_sort(intentions.begin(), intentions.end(),
                   [&](const Intention& a, const Intention& b) { return key(a) < key(b); });
}

std::vector<Intention> match(const std::vector<Intention>& all, MatchBy by, std::string_view name) {
  std::vector<Intention> out;
  for (const Intention& x : all) {
    bool hit = by == MatchBy::kSource ? applies(x.sourceNs, x.sourceName, name)
                                      : applies(x.destinationNs, x.destinationName, name);
    if (hit) out.push_back(x);
  }
  sortForEvaluation(out);
  return out;
}

Decision authorize(const std::vector<Intention>& all, std::string_view source,
                   std::string_view destination, bool defaultAllow) {
  for (Intention& x : match(all, MatchBy::kDestination, destination)) {
    if (!applies(x.sourceNs, x.sourceName, source)) continue;
    std::string reason = "Matched intention: " + displayName(x.sourceNs, x.sourceName) + " => " +
                         displayName(x.destinationNs, x.destinationName) + " (" +
                         actionName(x.action) + ")";
    bool allowed = x.action == IntentionAction::kAllow;
    return Decision{allowed, std::move(x), std::move(reason)};
  }
  return Decision{
      defaultAllow, std::nullopt,
      std::string("No matching intention, default policy ") + (defaultAllow ? "allow" : "deny")};
}

Result<IntentionAction> parseAction(std::string_view text) {
  if (text == "allow") return IntentionAction::kAllow;
  if (text == "deny") return IntentionAction::kDeny;
  return makeError(
      ErrorCode::kInvalidArgument,
      "intention action \"" + std::string(text.substr(0, 64)) + "\" is not \"allow\" or \"deny\"");
}

const char* actionName(IntentionAction action) {
  return action == IntentionAction::kDeny ? "deny" : "allow";
}

Result<void> validateIntentionName(std::string_view field, std::string_view name) {
  std::string f(field);
  if (name.empty()) return makeError(ErrorCode::kInvalidArgument, f + " is empty");
  if (name == kWildcard) return {};
  if (name.size() > kMaxIntentionNameBytes) {
    return makeError(ErrorCode::kInvalidArgument,
                     f + " is longer than " + std::to_string(kMaxIntentionNameBytes) + " bytes");
  }
  if (name.find('*') != std::string_view::npos) {
    return makeError(
        ErrorCode::kInvalidArgument,
        f + " \"" + std::string(name) + "\": partial wildcards are not supported; use \"*\" alone");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return makeError(ErrorCode::kInvalidArgument,
                       f + " \"" + std::string(name) + "\" has a character outside [A-Za-z0-9._-]");
    }
  }
  return {};
}

Result<void> validateIntention(const Intention& x) {
  if (auto ok = validateIntentionName("SourceName", x.sourceName); !ok) return ok;
  if (auto ok = validateIntentionName("DestinationName", x.destinationName); !ok) return ok;
  if (auto ok = validateNamespace("SourceNS", x.sourceNs, x.sourceName); !ok) return ok;
  if (auto ok = validateNamespace("DestinationNS", x.destinationNs, x.destinationName); !ok) {
    return ok;
  }
  if (x.sourceType != "consul") {
    return makeError(ErrorCode::kInvalidArgument,
                     "SourceType \"" + x.sourceType + "\" is not supported; use \"consul\"");
  }
  if (x.description.size() > kMaxDescriptionBytes) {
    return makeError(
        ErrorCode::kInvalidArgument,
        "Description is longer than " + std::to_string(kMaxDescriptionBytes) + " bytes");
  }
  if (x.meta.size() > kMaxMetaPairs) {
    return makeError(ErrorCode::kInvalidArgument,
                     "Meta has more than " + std::to_string(kMaxMetaPairs) + " pairs");
  }
  for (const auto& [key, value] : x.meta) {
    if (key.empty() || key.size() > kMaxMetaKeyBytes) {
      return makeError(ErrorCode::kInvalidArgument,
                       "Meta key \"" + key.substr(0, 64) + "\" is empty or longer than " +
                           std::to_string(kMaxMetaKeyBytes) + " bytes");
    }
    if (value.size() > kMaxMetaValueBytes) {
      return makeError(ErrorCode::kInvalidArgument,
                       "Meta value of \"" + key + "\" is longer than " +
                           std::to_string(kMaxMetaValueBytes) + " bytes");
    }
  }
  return {};
}

}  // namespace taskmesh::connect
