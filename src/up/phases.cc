#include "up/phases.h"

#include <cmath>
#include <cstdio>

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

// The time of the first event of `subject` named `event`.
std::optional<double> firstEvent(const json& events, const char* subject, const char* event) {
  if (!events.is_array()) return std::nullopt;
  for (const auto& e : events) {
    if (!e.is_object()) continue;
    auto s = e.find("subject"), ev = e.find("event");
    if (s == e.end() || ev == e.end() || !s->is_string() || !ev->is_string()) continue;
    if (*s == subject && *ev == event) {
      auto at = e.find("at");
      if (at != e.end() && at->is_number()) return at->get<double>();
    }
  }
  return std::nullopt;
}

long long ms(double seconds) { return std::llround(seconds * 1000.0); }

}  // namespace

bool TaskPhases::complete() const {
  for (const auto& x : t) {
    if (!x) return false;
  }
  return true;
}

json TaskPhases::toJson() const {
  json out = json::object();
  for (size_t i = 0; i < t.size(); ++i) {
    out["t" + std::to_string(i)] = t[i] ? json(*t[i]) : json(nullptr);
  }
  json phases = json::array();
  for (size_t i = 1; i < t.size(); ++i) {
    phases.push_back(t[i] && t[i - 1] ? json(ms(*t[i] - *t[i - 1])) : json(nullptr));
  }
  out["phasesMs"] = phases;
  out["totalMs"] = t[0] && t[4] ? json(ms(*t[4] - *t[0])) : json(nullptr);
  return out;
}

TaskPhases phasesFromTimeline(const json& events, std::optional<double> passingAt) {
  TaskPhases p;
  p.t[0] = firstEvent(events, "task", "PROVISIONING");
  p.t[1] = firstEvent(events, "discover-servers", "STOPPED");
  p.t[2] = firstEvent(events, "mesh-init", "STOPPED");
  p.t[3] = firstEvent(events, "sidecar-proxy", "HEALTHY");
  p.t[4] = passingAt;
  return p;
}

std::string formatPhases(const TaskPhases& p, const std::string& serviceName) {
  const char* what[5] = {
      "the runtime starts the task; discover-servers asks the ECS API for the server",
      "server IP written; consul-client and mesh-init start",
      "service and sidecar registered, proxy bootstrap written; sidecar-proxy starts",
      "sidecar-proxy HEALTHY (public listener open); the app containers start", nullptr};
  std::string t4 = serviceName + " passing in the catalog; upstream sidecars route to it";
  std::string out;
  char line[256];
  for (size_t i = 0; i < p.t.size(); ++i) {
    const char* text = i == 4 ? t4.c_str() : what[i];
    if (!p.t[i] || !p.t[0]) {
      std::snprintf(line, sizeof line, "  T%zu  %9s  %9s  %s\n", i, "-", "", text);
    } else if (i == 0) {
      std::snprintf(line, sizeof line, "  T0  %7s ms  %9s  %s\n", "+0", "", text);
    } else {
      std::string since = "+" + std::to_string(ms(*p.t[i] - *p.t[0]));
      std::string phase =
          p.t[i - 1] ? "(" + std::to_string(ms(*p.t[i] - *p.t[i - 1])) + " ms)" : "";
      std::snprintf(line, sizeof line, "  T%zu  %7s ms  %9s  %s\n", i, since.c_str(), phase.c_str(),
                    text);
    }
    out += line;
  }
  return out;
}

}  // namespace taskmesh::up
