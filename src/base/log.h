#pragma once
// One logger per module (STYLE.md rule 15). Loggers are created on first use and are
// thread-safe (spdlog's _mt sinks). Log lines use key=value fields; never a secret.

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace taskmesh::log {

// Returns the logger for `module` ("server", "raft", "http", ...). Never null.
std::shared_ptr<spdlog::logger> get(std::string_view module);

// Sets the level of every logger, present and future. Accepts Consul's names
// (trace, debug, info, warn, err, error). Returns false for an unknown name.
bool setLevel(std::string_view level);

}  // namespace taskmesh::log
