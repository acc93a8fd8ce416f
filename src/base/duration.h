#pragma once
// Durations in Go's time.ParseDuration syntax ("300ms", "10s", "1.5h", "2h45m"), the form
// Consul users write for wait, Interval, Timeout and TTL.

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"

namespace taskmesh {

// Parses a Go duration. Units: ns, us, µs, ms, s, m, h. A bare "0" is allowed. Negative
// values are accepted (callers that need a positive value check it). Errors name the input.
Result<std::chrono::nanoseconds> parseDuration(std::string_view text);

// A command-line flag that must be a positive Go duration, in milliseconds. Errors name the
// flag: "-timeout: time: invalid duration \"x\"", "-timeout must be positive, got \"0s\"".
Result<std::chrono::milliseconds> parsePositiveDurationFlag(std::string_view flag,
                                                            std::string_view text);

// Formats like Go's Duration.String(): "1m30s", "250ms", "0s".
std::string formatDuration(std::chrono::nanoseconds d);

// Unix seconds as RFC 3339 in UTC, as Consul writes certificate times: "2024-01-04T00:00:00Z".
std::string formatRfc3339(int64_t unixSeconds);

}  // namespace taskmesh
