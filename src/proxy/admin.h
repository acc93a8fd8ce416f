#pragma once
// The bodies of the admin endpoints that describe a Runtime. Pure functions of their arguments;
// the main thread calls them for /config_dump and /clusters (proxy.cc routes the requests).

#include <nlohmann/json.hpp>

#include "proxy/endpoints.h"
#include "proxy/runtime.h"

namespace taskmesh::proxy {

// The snapshot as the agent served it (Consul-style names), without the leaf's private key.
nlohmann::json configDump(const Runtime& runtime);

// Every upstream with its listener and endpoints: address, state ("healthy" / "ejected",
// with the milliseconds left), active connections, failures, ejections.
nlohmann::json clusters(const Runtime& runtime, SteadyTime now);

}  // namespace taskmesh::proxy
