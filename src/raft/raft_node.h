#pragma once
// The replicated log under the store (DESIGN.md §3): libraft with its libuv I/O, on a
// thread of its own.
//
// Thread: the Raft thread owns libraft, its uv loop and the calls into StateStore::apply /
// snapshot / restore. propose() and the accessors are safe from any thread. Callbacks
// (ProposeDone, Hooks) run on the Raft thread and must only hand work off (post), not block.
// Durability: a proposal completes only after its entry is committed, which means written
// and fsync'd on a quorum (one voter now: this server), and applied.
// Nothing here assumes one voter: commits, leadership and readiness come from libraft.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/result.h"
#include "raft/forked_encoder.h"
#include "store/state_store.h"

struct raft;
struct raft_io;
struct raft_fsm;
struct raft_buffer;
struct raft_io_async_work;
struct raft_uv_transport;
struct uv_loop_s;
struct uv_async_s;
struct uv_timer_s;
struct uv_check_s;

namespace taskmesh::raft {

struct RaftOptions {
  std::string dataDir;     // holds the log segments and snapshots
  uint64_t id = 1;         // this server's Raft ID
  std::string address;     // "IP:PORT" other servers reach for Raft traffic
  bool bootstrap = false;  // on a pristine data dir, start a cluster of this one voter
  // Snapshot policy, Consul's (raft_snapshot_threshold, raft_snapshot_interval): every
  // interval, staggered at random up to twice that, take a snapshot if at least `threshold`
  // entries were applied since the last one. Whatever the interval, one is taken as soon as
  // kSnapshotBacklogFactor × threshold entries pile up: that bounds the log held in memory
  // and replayed on restart. A snapshot pauses applying only for a fork() (logged as
  // fork_ms; ~11 ms at 260,000 keys); the encoding runs in the forked child.
  unsigned snapshotThreshold = 16384;
  std::chrono::milliseconds snapshotInterval{30000};
  unsigned snapshotTrailing = 4096;  // entries kept in the log after a snapshot
  static constexpr unsigned kSnapshotBacklogFactor = 8;
  unsigned snapshotBound() const { return snapshotThreshold * kSnapshotBacklogFactor; }
};

struct Hooks {
  // Every applied command, client-proposed or replayed, in log order.
  std::function<void(const store::ApplyResult&)> applied;
  // This server became leader and every earlier entry is applied (after a barrier).
  std::function<void()> leaderReady;
  // End of one turn of the Raft thread's loop: every callback of the entries committed in
  // this turn (applied hooks, ProposeDone) has run. Lets the owner hand them on in one batch.
  std::function<void()> turnDone;
};

using ProposeDone = std::function<void(Result<store::ApplyResult>)>;

class RaftNode {
 public:
  RaftNode(store::StateStore& store, RaftOptions options, Hooks hooks);
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Opens the log, replays it into the store and starts the Raft thread.
  Result<void> start();
  // Stops the Raft thread; pending proposals complete with kUnavailable.
  void stop();

  // Queues an encoded command. `done` runs on the Raft thread once the command is applied
  // (or rejected: not leader, shutting down).
  void propose(std::string command, ProposeDone done);

  bool isLeader() const { return leaderReady_.load(std::memory_order_acquire); }
  bool knownLeader() const { return knownLeader_.load(std::memory_order_acquire); }
  std::string leaderAddress() const;
  std::string address() const { return options_.address; }

 private:
  struct Pending {
    std::string command;
    ProposeDone done;
  };
  struct ApplyRequest;

  void threadMain();
  void drainQueue();
  void pollState();
  void armSnapshotTimer();
  void snapshotDue();
  uint64_t entriesSinceSnapshot() const;  // Raft thread
  static int fsmApply(struct ::raft_fsm* fsm, const struct ::raft_buffer* buf, void** result);
  static int fsmSnapshot(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[], unsigned* n);
  static int queueAsyncWork(struct ::raft_io* io, struct ::raft_io_async_work* req,
                            void (*cb)(struct ::raft_io_async_work*, int));
  static int fsmSnapshotAsync(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[], unsigned* n);
  static int fsmSnapshotFinalize(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[], unsigned* n);
  static int fsmRestore(struct ::raft_fsm* fsm, struct ::raft_buffer* buf);

  store::StateStore& store_;
  RaftOptions options_;
  Hooks hooks_;

  // Owned by the Raft thread after start().
  std::unique_ptr<struct ::raft> raft_;
  std::unique_ptr<struct ::raft_io> io_;
  std::unique_ptr<struct ::raft_fsm> fsm_;
  std::unique_ptr<struct ::raft_uv_transport> transport_;
  std::unique_ptr<::uv_loop_s> loop_;
  std::unique_ptr<::uv_async_s> wake_;
  std::unique_ptr<::uv_timer_s> poll_;
  std::unique_ptr<::uv_check_s> turn_;
  std::unique_ptr<::uv_timer_s> snapshotTimer_;
  store::ApplyResult lastResult_;  // result of the entry being applied, read by its callback
  // The snapshot being taken: fsmSnapshot (Raft thread) forks the child that encodes the
  // tables as they are at that moment; fsmSnapshotAsync (a libuv worker) collects its bytes;
  // libraft orders the two. fsmSnapshotFinalize drops a child never collected.
  std::optional<ForkedEncoder> snapshotEncoder_;
  bool barrierPending_ = false;
  int lastState_ = 0;

  std::mutex mu_;  // guards queue_, stopping_, leaderAddress_
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::string leaderAddress_;

  std::atomic<bool> leaderReady_{false};
  std::atomic<bool> knownLeader_{false};
  std::thread thread_;
};

}  // namespace taskmesh::raft
