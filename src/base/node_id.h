#pragma once
// A node's ID (Consul's NodeID: 128 random bits in 8-4-4-4-12 hex form), kept in
// `<dataDir>/node-id` so that it survives restarts. Used by the server and the agent.

#include <cstddef>
#include <string>

#include "base/result.h"

namespace taskmesh {

// `chars` random lower-case hex characters (ECS task ids are 32 of them).
std::string randomHex(size_t chars);

// A fresh random UUID ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx").
std::string randomUuid();

// The ID stored in `<dataDir>/node-id`, or a new one written there atomically.
Result<std::string> loadOrCreateNodeId(const std::string& dataDir);

}  // namespace taskmesh
