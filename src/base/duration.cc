#include "base/duration.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <limits>

namespace taskmesh {
namespace {

struct Unit {
  std::string_view name;
  double nanos;
};
constexpr Unit kUnits[] = {{"ns", 1.0}, {"us", 1e3}, {"\xC2\xB5s", 1e3}, {"\xCE\xBCs", 1e3},
                           {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9}};

Result<std::chrono::nanoseconds> invalid(std::string_view text) {
  return makeError(ErrorCode::kInvalidArgument,
                   "time: invalid duration \"" + std::string(text) + "\"");
}

}  // namespace

Result<std::chrono::nanoseconds> parseDuration(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return invalid(text);
  double total = 0;
  while (!s.empty()) {
    // number: digits [. digits]
    size_t i = 0;
    double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i] - '0');
      ++i;
      digits = true;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      double scale = 0.1;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
        digits = true;
      }
    }
    if (!digits) return invalid(text);
    s.remove_prefix(i);
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      // Longest match first matters for "ms" vs "m": try two-byte names before one-byte ones.
      if (s.substr(0, u.name.size()) == u.name &&
          (unit == nullptr || u.name.size() > unit->name.size())) {
        unit = &u;
      }
    }
    if (unit == nullptr) {
      return makeError(
          ErrorCode::kInvalidArgument,
          "time: invalid duration \"" + std::string(text) + "\": missing or unknown unit");
    }
    s.remove_prefix(unit->name.size());
    total += value * unit->nanos;
    if (total > static_cast<double>(std::numeric_limits<int64_t>::max())) {
      return invalid(text);
    }
  }
  auto ns = static_cast<int64_t>(std::llround(total));
  return std::chrono::nanoseconds(negative ? -ns : ns);
}

std::string formatDuration(std::chrono::nanoseconds d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  auto fraction = [](uint64_t v, uint64_t unit) {
    std::string out = std::to_string(v / unit);
    uint64_t rest = v % unit;
    if (rest != 0) {
      std::string digits = std::to_string(rest);
      std::string frac = std::string(std::to_string(unit).size() - 1 - digits.size(), '0') + digits;
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
      out += "." + frac;
    }
    return out;
  };
  if (u < 1000) return sign + std::to_string(u) + "ns";
  if (u < 1000000) return sign + fraction(u, 1000) + "\xC2\xB5s";
  if (u < 1000000000) return sign + fraction(u, 1000000) + "ms";
  std::string out;
  uint64_t hours = u / 3600000000000ULL;
  u %= 3600000000000ULL;
  uint64_t minutes = u / 60000000000ULL;
  u %= 60000000000ULL;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += fraction(u, 1000000000) + "s";
  return sign + out;
}

Result<std::chrono::milliseconds> parsePositiveDurationFlag(std::string_view flag,
                                                            std::string_view text) {
  auto d = parseDuration(text);
  if (!d)
    return makeError(ErrorCode::kInvalidArgument, std::string(flag) + ": " + d.error().message);
  if (d->count() <= 0) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string(flag) + " must be positive, got \"" + std::string(text) + "\"");
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::string formatRfc3339(int64_t unixSeconds) {
  auto secs = static_cast<time_t>(unixSeconds);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace taskmesh
