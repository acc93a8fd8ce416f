#include "up/phases.h"

#include <gtest/gtest.h>

namespace taskmesh::up {
namespace {

using json = nlohmann::json;

json event(double at, const char* subject, const char* name) {
  return json{{"at", at}, {"subject", subject}, {"event", name}, {"detail", ""}};
}

TEST(Phases, FromTheTimelineAndTheCatalog) {
  json events =
      json::array({event(10.0, "task", "PROVISIONING"), event(10.3, "discover-servers", "STOPPED"),
                   event(10.6, "mesh-init", "STOPPED"), event(10.8, "sidecar-proxy", "HEALTHY"),
                   event(11.0, "sidecar-proxy", "HEALTHY"),  // the first one counts
                   json("not an event"), json{{"at", "x"}, {"subject", 3}, {"event", "STOPPED"}}});
  TaskPhases p = phasesFromTimeline(events, 10.95);
  ASSERT_TRUE(p.complete());
  json j = p.toJson();
  EXPECT_EQ(j["phasesMs"], json::array({300, 300, 200, 150}));
  EXPECT_EQ(j["totalMs"], 950);
  std::string text = formatPhases(p, "web");
  EXPECT_NE(text.find("T4     +950 ms   (150 ms)  web passing"), std::string::npos) << text;
}

TEST(Phases, IncompleteUntilTheServicePasses) {
  json events = json::array({event(1.0, "task", "PROVISIONING")});
  TaskPhases p = phasesFromTimeline(events, std::nullopt);
  EXPECT_FALSE(p.complete());
  EXPECT_TRUE(p.toJson()["totalMs"].is_null());
  EXPECT_FALSE(phasesFromTimeline(json("garbage"), 2.0).complete());
}

}  // namespace
}  // namespace taskmesh::up
