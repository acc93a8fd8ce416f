#include "proxy/admin.h"

namespace taskmesh::proxy {

using nlohmann::json;

json configDump(const Runtime& runtime) {
  json j = connect::toJson(runtime.snapshot);
  if (auto leaf = j.find("Leaf"); leaf != j.end() && leaf->is_object()) {
    leaf->erase("PrivateKeyPEM");
  }
  return j;
}

json clusters(const Runtime& runtime, SteadyTime now) {
  json out = json::array();
  for (const auto& u : runtime.upstreams) {
    json endpoints = json::array();
    for (const auto& e : u.endpoints) {
      const EndpointState& s = *e.state;
      bool ejected = s.ejected(now);
      json ep = {{"Address", e.config.address},
                 {"Port", e.config.port},
                 {"Node", e.config.node},
                 {"ServiceID", e.config.serviceId},
                 {"State", ejected ? "ejected" : "healthy"},
                 {"ActiveConnections", s.active()},
                 {"Failures", s.failures()},
                 {"ConsecutiveFailures", s.consecutiveFailures()},
                 {"Ejections", s.ejections()}};
      if (ejected) {
        ep["EjectedForMs"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(s.ejectedUntil() - now).count();
      }
      endpoints.push_back(std::move(ep));
    }
    out.push_back({{"Name", u.config->destinationName},
                   {"Datacenter", u.config->datacenter},
                   {"Listener", u.listenerName},
                   {"LocalBindAddress", u.config->localBindAddress},
                   {"LocalBindPort", u.config->localBindPort},
                   {"SpiffeID", u.config->spiffeId},
                   {"Endpoints", std::move(endpoints)}});
  }
  return out;
}

}  // namespace taskmesh::proxy
