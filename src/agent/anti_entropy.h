#pragma once
// Keeps the servers' view of this node equal to the LocalState (anti-entropy) and tells the
// servers the node is alive (heartbeats).
//
// - A change in the LocalState kicks a sync at once: only what is out of sync is sent, one
//   catalog write per changed service (with its checks) — milliseconds from change to server.
// - Every `fullSyncInterval` (and after any failure or a heartbeat answer saying the node is
//   unknown, e.g. after it was reaped) a full sync reads the node back from the servers and
//   repairs every difference, including entries on the node that the agent does not own.
// - Failures back off (100 ms doubling to 10 s, with jitter) and retry for as long as the agent
//   runs: an outage of any length loses nothing, because the LocalState stays the truth.
// - Heartbeats: PUT /v1/internal/heartbeat/<node> at the interval the server asks for.
//
// Thread: the agent's io_context. An entry is marked in sync only if it still equals what was
// sent when the answer arrives, so changes made during a write are never lost.

#include <chrono>
#include <map>
#include <string>

#include "agent/local_state.h"
#include "agent/server_link.h"
#include "base/result.h"
#include "net/asio.h"
#include "store/types.h"

namespace taskmesh::agent {

struct AntiEntropyOptions {
  std::chrono::milliseconds fullSyncInterval{60000};
  std::chrono::milliseconds maxBackoff{10000};
};

class AntiEntropy {
 public:
  AntiEntropy(asio::io_context& io, LocalState& state, ServerLink& servers, store::Node node,
              AntiEntropyOptions options);

  void start();
  void stop();
  // Something in the LocalState changed: sync now (or right after the sync in flight).
  void kick();
  // Reads the node back from the servers at the next sync.
  void requestFullSync();
  // Deregisters the node (and so all its services and checks) from the servers.
  Awaitable<Result<void>> leave(std::chrono::milliseconds timeout);

  const store::Node& node() const { return node_; }
  // Fully in sync with the servers at least once, and nothing pending now.
  bool inSync() const { return synced_ && state_.allInSync() && nodeInSync_; }
  bool joined() const { return joined_; }

 private:
  Awaitable<void> loop();
  Awaitable<void> heartbeats();
  Awaitable<Result<void>> syncChanges();
  Awaitable<Result<void>> readBack();
  Awaitable<Result<void>> put(const std::string& target, const nlohmann::json& body);

  asio::io_context& io_;
  LocalState& state_;
  ServerLink& servers_;
  store::Node node_;
  AntiEntropyOptions options_;
  asio::steady_timer wake_;
  asio::steady_timer heartbeatTimer_;
  bool kicked_ = false;
  bool fullRequested_ = true;
  bool nodeInSync_ = false;
  bool synced_ = false;
  bool joined_ = false;
  bool stopped_ = false;
};

}  // namespace taskmesh::agent
