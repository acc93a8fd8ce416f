#pragma once
// Service intentions with Consul's semantics: precedence, evaluation order, the
// /v1/connect/intentions/match selection and the allow/deny decision for a connection.
// Pure functions over values, safe from any thread. Names are matched exactly (case-sensitive);
// "*" is the wildcard; namespaces are "default" or "*".

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace taskmesh::connect {

inline constexpr std::string_view kWildcard = "*";
inline constexpr std::string_view kDefaultNamespace = "default";
inline constexpr size_t kMaxIntentionNameBytes = 128;

enum class IntentionAction { kAllow, kDeny };

// A plain copyable value; the state machine stores it as is.
struct Intention {
  std::string sourceNs = "default", sourceName, destinationNs = "default", destinationName;
  std::string sourceType = "consul";
  IntentionAction action = IntentionAction::kAllow;
  std::string description;
  std::map<std::string, std::string> meta;
  uint64_t createIndex = 0, modifyIndex = 0;

  bool operator==(const Intention&) const = default;
};

// Consul's precedence table (source ns/name, destination ns/name; E = exact, * = wildcard):
//   E/E→E/E 9   E/*→E/E 8   */*→E/E 7
//   E/E→E/* 6   E/*→E/* 5   */*→E/* 4
//   E/E→*/* 3   E/*→*/* 2   */*→*/* 1
int precedence(const Intention& intention);

// Highest precedence first; on equal precedence deny before allow; then by source namespace and
// name, destination namespace and name (a deterministic total order for distinct intentions).
void sortForEvaluation(std::vector<Intention>& intentions);

enum class MatchBy { kSource, kDestination };

// The intentions that apply when `name` (in the default namespace) is the source or the
// destination: that side's name is `name` or "*", its namespace "default" or "*". Sorted for
// evaluation (the /v1/connect/intentions/match semantics).
std::vector<Intention> match(const std::vector<Intention>& all, MatchBy by, std::string_view name);

struct Decision {
  bool allowed = false;
  std::optional<Intention> matched;  // the deciding intention; empty when the default applied
  // "Matched intention: web => db (allow)" or "No matching intention, default policy deny".
  std::string reason;
};

// Whether `source` may connect to `destination`: the first intention in evaluation order whose
// source and destination both apply decides; with none, `defaultAllow` does.
Decision authorize(const std::vector<Intention>& all, std::string_view source,
                   std::string_view destination, bool defaultAllow);

// "allow" / "deny" (exactly); the error names the value.
Result<IntentionAction> parseAction(std::string_view text);
const char* actionName(IntentionAction action);

// A source or destination name for a PUT: "*", or 1..128 bytes of [A-Za-z0-9._-]. Partial
// wildcards ("web*") are refused. `field` ("SourceName") names it in the error.
Result<void> validateIntentionName(std::string_view field, std::string_view name);

// A whole intention for a PUT: both names (validateIntentionName), namespaces "default" or "*"
// (a wildcard namespace needs a wildcard name), SourceType "consul", Description at most 512
// bytes, at most 64 Meta pairs with keys of at most 128 bytes and values of at most 512 bytes.
Result<void> validateIntention(const Intention& intention);

}  // namespace taskmesh::connect
