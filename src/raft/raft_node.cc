#include "raft/raft_node.h"

#include <uv.h>

// libraft's headers have no extern "C" guards.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <malloc.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <random>

#include "base/log.h"
#include "raft/segment_repair.h"

namespace taskmesh::raft {
namespace {
std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("raft");
  return l;
}
constexpr uint64_t kPollMillis = 10;
// A snapshot's encoding takes about a second per 100,000 catalog instances on this project's
// 2-core machines; a child far beyond that is stuck, and is killed.
constexpr std::chrono::minutes kSnapshotEncodeTimeout{10};
}  // namespace

struct RaftNode::ApplyRequest {
  struct ::raft_apply req;
  ProposeDone done;
};

namespace {
struct BarrierRequest {
  struct ::raft_barrier req;
  RaftNode* node;
};
}  // namespace

RaftNode::RaftNode(store::StateStore& store, RaftOptions options, Hooks hooks)
    : store_(store), options_(std::move(options)), hooks_(std::move(hooks)) {}

RaftNode::~RaftNode() { stop(); }

std::string RaftNode::leaderAddress() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu_));
  return leaderAddress_;
}

Result<void> RaftNode::start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dataDir, ec);
  if (ec) {
    return makeError(ErrorCode::kIo,
                     "cannot create data dir " + options_.dataDir + ": " + ec.message());
  }
  auto repaired = repairOpenSegments(options_.dataDir);
  if (!repaired) return makeError(repaired.error());
  for (const auto& r : *repaired) {
    logger()->warn("torn log tail cut file={} size={} kept={} (an unacknowledged write was lost)",
                   r.file, r.oldSize, r.newSize);
  }
  std::promise<Result<void>> started;
  auto future = started.get_future();
  thread_ = std::thread([this, &started] {
    raft_ = std::make_unique<struct ::raft>();
    io_ = std::make_unique<struct ::raft_io>();
    fsm_ = std::make_unique<struct ::raft_fsm>();
    transport_ = std::make_unique<struct ::raft_uv_transport>();
    loop_ = std::make_unique<uv_loop_s>();
    wake_ = std::make_unique<uv_async_s>();
    poll_ = std::make_unique<uv_timer_s>();
    turn_ = std::make_unique<uv_check_s>();
    snapshotTimer_ = std::make_unique<uv_timer_s>();
    auto fail = [&](const std::string& what, int rv, const char* detail) {
      std::string reason = detail != nullptr && *detail != '\0' ? detail : raft_strerror(rv);
      started.set_value(makeError(ErrorCode::kIo, what + ": " + reason));
    };
    uv_loop_init(loop_.get());
    int rv = raft_uv_tcp_init(transport_.get(), loop_.get());
    if (rv != 0) return fail("raft transport", rv, nullptr);
    rv = raft_uv_init(io_.get(), loop_.get(), options_.dataDir.c_str(), transport_.get());
    if (rv != 0) return fail("raft log in " + options_.dataDir, rv, io_->errmsg);
    if (io_->version < 2 || io_->async_work == nullptr) {
      // libraft 0.15's uv I/O does not offer async work; provide it on libuv's thread pool.
      io_->version = 2;
      io_->async_work = &RaftNode::queueAsyncWork;
    }
    std::memset(fsm_.get(), 0, sizeof(struct ::raft_fsm));
    fsm_->version = 3;
    fsm_->data = this;
    fsm_->apply = &RaftNode::fsmApply;
    fsm_->snapshot = &RaftNode::fsmSnapshot;
    fsm_->snapshot_finalize = &RaftNode::fsmSnapshotFinalize;
    fsm_->snapshot_async = &RaftNode::fsmSnapshotAsync;
    fsm_->restore = &RaftNode::fsmRestore;
    rv = raft_init(raft_.get(), io_.get(), fsm_.get(), options_.id, options_.address.c_str());
    if (rv != 0) return fail("raft init", rv, raft_errmsg(raft_.get()));
    raft_->data = this;
    if (options_.bootstrap) {
      struct ::raft_configuration conf;
      raft_configuration_init(&conf);
      raft_configuration_add(&conf, options_.id, options_.address.c_str(), RAFT_VOTER);
      rv = raft_bootstrap(raft_.get(), &conf);
      raft_configuration_close(&conf);
      if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
        return fail("raft bootstrap", rv, raft_errmsg(raft_.get()));
    }
    // libraft snapshots by itself only at the backlog bound; snapshotDue() lowers its
    // threshold when the interval has passed (see RaftOptions).
    raft_set_snapshot_threshold(raft_.get(), options_.snapshotBound());
    raft_set_snapshot_trailing(raft_.get(), options_.snapshotTrailing);
    rv = raft_start(raft_.get());
    if (rv != 0) {
      return fail("raft start (is " + options_.address + " already in use?)", rv,
                  raft_errmsg(raft_.get()));
    }
    wake_->data = this;
    uv_async_init(loop_.get(), wake_.get(),
                  [](uv_async_t* h) { static_cast<RaftNode*>(h->data)->drainQueue(); });
    turn_->data = this;
    uv_check_init(loop_.get(), turn_.get());
    uv_check_start(turn_.get(), [](uv_check_t* h) {
      auto* self = static_cast<RaftNode*>(h->data);
      if (self->hooks_.turnDone) self->hooks_.turnDone();
    });
    poll_->data = this;
    uv_timer_init(loop_.get(), poll_.get());
    uv_timer_start(
        poll_.get(), [](uv_timer_t* h) { static_cast<RaftNode*>(h->data)->pollState(); }, 0,
        kPollMillis);
    snapshotTimer_->data = this;
    uv_timer_init(loop_.get(), snapshotTimer_.get());
    armSnapshotTimer();
    started.set_value(Result<void>{});
    threadMain();
  });
  Result<void> r = future.get();
  if (!r) {
    thread_.join();
    return r;
  }
  logger()->info("raft started id={} address={} data_dir={}", options_.id, options_.address,
                 options_.dataDir);
  return r;
}

void RaftNode::threadMain() {
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  uv_loop_close(loop_.get());
}

void RaftNode::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !thread_.joinable()) return;
    stopping_ = true;
  }
  uv_async_send(wake_.get());
  thread_.join();
  logger()->info("raft stopped");
}

void RaftNode::propose(std::string command, ProposeDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && thread_.joinable()) {
      queue_.push_back({std::move(command), std::move(done)});
      uv_async_send(wake_.get());
      return;
    }
  }
  done(makeError(ErrorCode::kUnavailable, "server is shutting down"));
}

void RaftNode::drainQueue() {
  std::deque<Pending> batch;
  bool stopping;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
    stopping = stopping_;
  }
  if (stopping) {
    for (auto& p : batch) p.done(makeError(ErrorCode::kUnavailable, "server is shutting down"));
    leaderReady_ = false;
    knownLeader_ = false;
    uv_timer_stop(poll_.get());
    uv_timer_stop(snapshotTimer_.get());
    uv_check_stop(turn_.get());
    raft_close(raft_.get(), [](struct ::raft* r) {
      auto* self = static_cast<RaftNode*>(r->data);
      raft_uv_close(self->io_.get());
      raft_uv_tcp_close(self->transport_.get());
      uv_close(reinterpret_cast<uv_handle_t*>(self->wake_.get()), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(self->poll_.get()), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(self->turn_.get()), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(self->snapshotTimer_.get()), nullptr);
    });
    return;
  }
  for (auto& p : batch) {
    if (raft_state(raft_.get()) != RAFT_LEADER) {
      p.done(makeError(ErrorCode::kUnavailable, "No cluster leader"));
      continue;
    }
    struct ::raft_buffer buf;
    buf.len = p.command.size();
    buf.base = raft_malloc(buf.len);
    std::memcpy(buf.base, p.command.data(), buf.len);
    auto* req = new ApplyRequest;
    req->req.data = req;
    req->done = std::move(p.done);
    int rv = raft_apply(
        raft_.get(), &req->req, &buf, 1, [](struct ::raft_apply* r, int status, void* result) {
          auto* ar = static_cast<ApplyRequest*>(r->data);
          if (status != 0) {
            ar->done(
                makeError(ErrorCode::kUnavailable, std::string("raft: ") + raft_strerror(status)));
          } else {
            ar->done(*static_cast<store::ApplyResult*>(result));
          }
          delete ar;
        });
    if (rv != 0) {
      raft_free(buf.base);
      req->done(makeError(ErrorCode::kUnavailable, std::string("raft: ") + raft_strerror(rv)));
      delete req;
    }
  }
}

void RaftNode::pollState() {
  int state = raft_state(raft_.get());
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(raft_.get(), &id, &address);
  knownLeader_ = id != 0;
  {
    std::lock_guard lock(mu_);
    leaderAddress_ = address ? address : "";
  }
  if (state != lastState_) {
    static const char* kNames[] = {"unavailable", "follower", "candidate", "leader"};
    logger()->info("raft state={}", state >= 0 && state <= 3 ? kNames[state] : "unknown");
    lastState_ = state;
  }
  if (state != RAFT_LEADER) {
    leaderReady_ = false;
    return;
  }
  if (leaderReady_ || barrierPending_) return;
  barrierPending_ = true;
  auto* req = new BarrierRequest;
  req->req.data = req;
  req->node = this;
  int rv = raft_barrier(raft_.get(), &req->req, [](struct ::raft_barrier* r, int status) {
    auto* br = static_cast<BarrierRequest*>(r->data);
    RaftNode* self = br->node;
    delete br;
    self->barrierPending_ = false;
    if (status != 0) return;  // lost leadership; the next poll retries
    self->leaderReady_ = true;
    logger()->info("leader ready last_applied={}", raft_last_applied(self->raft_.get()));
    if (self->hooks_.leaderReady) self->hooks_.leaderReady();
  });
  if (rv != 0) {
    delete req;
    barrierPending_ = false;
  }
}

void RaftNode::armSnapshotTimer() {
  // Staggered like Consul's: a random point in [interval, 2 × interval), so that servers
  // started together do not snapshot together.
  static thread_local std::minstd_rand rng(std::random_device{}());
  auto interval = static_cast<uint64_t>(std::max<int64_t>(options_.snapshotInterval.count(), 1));
  uint64_t delay = interval + rng() % interval;
  uv_timer_start(
      snapshotTimer_.get(), [](uv_timer_t* h) { static_cast<RaftNode*>(h->data)->snapshotDue(); },
      delay, 0);
}

uint64_t RaftNode::entriesSinceSnapshot() const {
  return raft_last_applied(raft_.get()) - raft_->log.snapshot.last_index;
}

void RaftNode::snapshotDue() {
  if (entriesSinceSnapshot() >= options_.snapshotThreshold) {
    // libraft checks its threshold after each batch it applies: the next write snapshots.
    // fsmSnapshot puts the backlog bound back.
    raft_set_snapshot_threshold(raft_.get(), options_.snapshotThreshold);
  }
  armSnapshotTimer();
}

int RaftNode::fsmApply(struct ::raft_fsm* fsm, const struct ::raft_buffer* buf, void** result) {
  auto* self = static_cast<RaftNode*>(fsm->data);
  uint64_t index = raft_last_applied(self->raft_.get()) + 1;
  auto command =
      store::decodeCommand(std::string_view(static_cast<const char*>(buf->base), buf->len));
  if (!command) {
    // A log entry this build cannot read: keep the log moving and say so loudly.
    logger()->error("skipping undecodable log entry index={} error=\"{}\"", index,
                    command.error().message);
    self->lastResult_ = store::ApplyResult{index, false, command.error(), {}};
  } else {
    self->lastResult_ = self->store_.apply(index, *command);
  }
  if (self->hooks_.applied) self->hooks_.applied(self->lastResult_);
  *result = &self->lastResult_;
  return 0;
}

namespace {
struct AsyncWork {
  uv_work_t work;
  struct ::raft_io_async_work* req;
  raft_io_async_work_cb cb;
  int status;
};
}  // namespace

int RaftNode::queueAsyncWork(struct ::raft_io* io, struct ::raft_io_async_work* req,
                             raft_io_async_work_cb cb) {
  // raft_init points io->data at the raft instance, whose data is this node.
  auto* self = static_cast<RaftNode*>(static_cast<struct ::raft*>(io->data)->data);
  auto* w = new AsyncWork{};
  w->work.data = w;
  w->req = req;
  w->cb = cb;
  int rv = uv_queue_work(
      self->loop_.get(), &w->work,
      [](uv_work_t* work) {
        auto* aw = static_cast<AsyncWork*>(work->data);
        aw->status = aw->req->work(aw->req);
      },
      [](uv_work_t* work, int status) {
        auto* aw = static_cast<AsyncWork*>(work->data);
        aw->cb(aw->req, status != 0 ? RAFT_CANCELED : aw->status);
        delete aw;
      });
  if (rv != 0) {
    delete w;
    return RAFT_IOERR;
  }
  return 0;
}

// Snapshots are taken in two steps so that applying entries pauses only for a fork(), not for
// a copy of the tables nor their encoding: fsmSnapshot (Raft thread, where no apply can run
// concurrently) forks a child that encodes the tables as they are, fsmSnapshotAsync (a libuv
// worker) reads its bytes into the one buffer, fsmSnapshotFinalize (Raft thread) frees.
int RaftNode::fsmSnapshot(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[], unsigned* n) {
  auto* self = static_cast<RaftNode*>(fsm->data);
  struct ::raft* r = self->raft_.get();
  uint64_t backlog = self->entriesSinceSnapshot();
  auto started = std::chrono::steady_clock::now();
  const store::StateStore& store = self->store_;
  auto encoder = ForkedEncoder::start(
      [&store] { return store::StateStore::encodeSnapshot(store.tablesWithoutLock()); });
  if (!encoder) {
    // Retried after another threshold's worth of entries, or at the next interval.
    raft_set_snapshot_threshold(r,
                                static_cast<unsigned>(backlog) + self->options_.snapshotThreshold);
    logger()->error("snapshot not started error=\"{}\"", encoder.error().message);
    return RAFT_IOERR;
  }
  raft_set_snapshot_threshold(r, self->options_.snapshotBound());
  auto* array = static_cast<struct ::raft_buffer*>(raft_malloc(sizeof(struct ::raft_buffer)));
  if (array == nullptr) return RAFT_NOMEM;  // ~encoder kills the child
  array[0].base = nullptr;
  array[0].len = 0;
  self->snapshotEncoder_.emplace(std::move(*encoder));
  auto forkMicros = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  logger()->info("snapshot started index={} entries_since_last={} fork_ms={:.1f}",
                 raft_last_applied(r), backlog, static_cast<double>(forkMicros) / 1000.0);
  *bufs = array;
  *n = 1;
  return 0;
}

int RaftNode::fsmSnapshotAsync(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[], unsigned* n) {
  auto* self = static_cast<RaftNode*>(fsm->data);
  if (!self->snapshotEncoder_ || *n != 1) return RAFT_INVALID;
  auto started = std::chrono::steady_clock::now();
  auto bytes = self->snapshotEncoder_->finish(kSnapshotEncodeTimeout);
  if (!bytes) {
    logger()->error("snapshot failed error=\"{}\"", bytes.error().message);
    return RAFT_IOERR;
  }
  void* base = raft_malloc(bytes->size());
  if (base == nullptr) return RAFT_NOMEM;
  std::memcpy(base, bytes->data(), bytes->size());
  (*bufs)[0].base = base;
  (*bufs)[0].len = bytes->size();
  auto encodeMillis = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  logger()->info("snapshot taken bytes={} encode_ms={}", bytes->size(), encodeMillis);
  return 0;
}

int RaftNode::fsmSnapshotFinalize(struct ::raft_fsm* fsm, struct ::raft_buffer* bufs[],
                                  unsigned* n) {
  static_cast<RaftNode*>(fsm->data)->snapshotEncoder_.reset();
  for (unsigned i = 0; i < *n; ++i) raft_free((*bufs)[i].base);
  raft_free(*bufs);
  *bufs = nullptr;
  *n = 0;
  // A snapshot allocates and frees about the size of the state; glibc keeps such freed
  // memory in this thread's arena unless asked to give it back. (The release binary uses
  // jemalloc, which returns it by itself; this matters for builds on glibc's malloc.)
  ::malloc_trim(0);
  return 0;
}

int RaftNode::fsmRestore(struct ::raft_fsm* fsm, struct ::raft_buffer* buf) {
  auto* self = static_cast<RaftNode*>(fsm->data);
  auto r = self->store_.restore(std::string_view(static_cast<const char*>(buf->base), buf->len));
  if (!r) {
    logger()->error("snapshot restore failed error=\"{}\"", r.error().message);
    return RAFT_CORRUPT;
  }
  raft_free(buf->base);  // on success the FSM owns the buffer
  ::malloc_trim(0);
  logger()->info("snapshot restored bytes={}", buf->len);
  return 0;
}

}  // namespace taskmesh::raft
