#pragma once
// `taskmesh net-dial HOST:PORT`: a container health check that needs no shell tools (the
// consul-ecs net-dial of reference/consul-ecs.md §2.6). One TCP connect, bounded by -timeout.
//
// Threads: runs on the calling thread.

#include <string>

namespace taskmesh::init {

struct NetDialOptions {
  std::string address;         // HOST:PORT (positional, required)
  std::string timeout = "1s";  // -timeout (Go duration)
};

inline constexpr int kNetDialOk = 0;
inline constexpr int kNetDialFailed = 2;

// Exit code: 0 when the connection succeeds, 2 otherwise (unreachable, timed out, or a bad
// address or timeout, with a message on stderr naming it).
int runNetDial(const NetDialOptions& options);

}  // namespace taskmesh::init
