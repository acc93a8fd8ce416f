#include "proxy/worker.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "base/log.h"
#include "proxy/connection.h"

namespace taskmesh::proxy {
namespace {

using boost::system::error_code;
using tcp = boost::asio::ip::tcp;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("proxy");
  return l;
}

// Handlers run with little stack (no deep recursion; TLS and logging use a few KiB). Sanitizer
// builds need far more for their redzones.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kStackBytes = 8 << 20;
#else
constexpr size_t kStackBytes = 256 << 10;
#endif
// Pipe buffers kept for reuse per worker; beyond this they go back to the allocator.
constexpr size_t kMaxFreeBuffers = 64;

}  // namespace

Worker::Worker(int id, std::chrono::milliseconds handshakeTimeout)
    : id_(id),
      handshakeTimeout_(handshakeTimeout),
      guard_(io_.get_executor()),
      epfd_(::epoll_create1(EPOLL_CLOEXEC)),
      epoll_(io_) {
  boost::system::error_code ec;
  if (epfd_ >= 0) epoll_.assign(epfd_, ec);
  if (epfd_ < 0 || ec) logger()->error("worker={} cannot create its epoll set", id_);
}

Worker::~Worker() {
  stop();
  // The thread has ended (or never started): nothing runs concurrently any more. Delete what
  // is left (connections only remain if the thread never ran).
  while (connections_) release(connections_);
  listeners_.clear();
  for (char* b : freeBuffers_) delete[] b;
}

bool Worker::start() {
  if (!epoll_.is_open()) return false;
  boost::asio::post(io_, [this] { watchEpoll(); });
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  started_ = pthread_create(&thread_, &attr, &Worker::threadMain, this) == 0;
  pthread_attr_destroy(&attr);
  return started_;
}

void* Worker::threadMain(void* self) {
  auto* w = static_cast<Worker*>(self);
  std::string name = "tm-worker-" + std::to_string(w->id_);
  pthread_setname_np(pthread_self(), name.c_str());
  w->io_.run();
  return nullptr;
}

void Worker::stop() {
  if (!started_) return;
  boost::asio::post(io_, [this] {
    closeListeners();
    abortConnections();
    error_code ignored;
    epoll_.close(ignored);
    guard_.reset();  // run() returns once the last completion has run
  });
  pthread_join(thread_, nullptr);
  started_ = false;
}

void Worker::setRuntime(std::shared_ptr<const Runtime> runtime) {
  boost::asio::post(io_, [this, rt = std::move(runtime)]() mutable { runtime_ = std::move(rt); });
}

void Worker::addListener(ListenerSpec spec, int fd, bool v6) {
  boost::asio::post(io_, [this, spec = std::move(spec), fd, v6]() mutable {
    error_code ec;
    auto l = std::make_unique<Listener>(Listener{.spec = std::move(spec),
                                                 .acceptor = tcp::acceptor(io_),
                                                 .retry = boost::asio::steady_timer(io_)});
    l->acceptor.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      logger()->error("worker={} listener={} cannot adopt socket: {}", id_, l->spec.name,
                      ec.message());
      return;
    }
    if (!accepting_) return;  // draining: the acceptor closes with `l`
    Listener* raw = listeners_.emplace_back(std::move(l)).get();
    accept(raw);
  });
}

void Worker::removeListener(const std::string& key) {
  boost::asio::post(io_, [this, key] {
    for (auto& l : listeners_) {
      if (l->spec.key == key) closeListener(l.get());
    }
    eraseIdle();
  });
}

void Worker::closeListeners() {
  // Runs on the worker thread (posted by the main thread or called by stop()).
  auto work = [this] {
    accepting_ = false;
    for (auto& l : listeners_) closeListener(l.get());
    eraseIdle();
  };
  if (io_.get_executor().running_in_this_thread()) return work();
  boost::asio::post(io_, work);
}

void Worker::abortConnections() {
  auto work = [this] {
    for (Connection* c = connections_; c;) {
      Connection* next = c->next;  // abort() may delete c
      c->abort();
      c = next;
    }
  };
  if (io_.get_executor().running_in_this_thread()) return work();
  boost::asio::post(io_, work);
}

void Worker::closeListener(Listener* l) {
  if (l->closing) return;
  l->closing = true;
  error_code ec;
  l->acceptor.close(ec);
  l->retry.cancel();
}

void Worker::eraseIdle() {
  // A closed listener stays until its outstanding accept or retry completion has run.
  listeners_.remove_if([](const auto& l) { return l->closing && !l->pending; });
}

void Worker::accept(Listener* l) {
  l->pending = true;
  l->acceptor.async_accept(
      [this, l](const error_code& ec, tcp::socket socket) { onAccept(l, ec, std::move(socket)); });
}

void Worker::onAccept(Listener* l, const error_code& ec, tcp::socket socket) {
  l->pending = false;
  if (l->closing) return eraseIdle();
  if (ec) {
    // EMFILE and friends: back off briefly instead of spinning.
    logger()->warn("worker={} listener={} accept failed: {}", id_, l->spec.name, ec.message());
    l->pending = true;
    l->retry.expires_after(std::chrono::milliseconds(50));
    l->retry.async_wait([this, l](const error_code&) {
      l->pending = false;
      if (l->closing) return eraseIdle();
      accept(l);
    });
    return;
  }
  accept(l);
  CounterSlot& counters = l->spec.stats->slot(id_);
  if (!runtime_ || !accepting_) {
    counters.add(Counter::kDraining);
    return;  // `socket` closes here
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  int fd = socket.release(ignored);  // from now on the connection's, in our epoll set
  if (fd < 0) return;
  int one = 1;
  ::ioctl(fd, FIONBIO, &one);
  Connection* c;
  if (l->spec.kind == ListenerKind::kPublic) {
    c = new PublicConnection(*this, counters, runtime_, fd);
  } else {
    c = new UpstreamConnection(*this, counters, runtime_, fd, l->spec.name);
  }
  c->next = connections_;
  if (connections_) connections_->prev = c;
  connections_ = c;
  c->launch();
}

void Worker::release(Connection* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (connections_ == c) connections_ = c->next;
  c->prev = c->next = nullptr;
  if (dispatching_) {
    zombies_.push_back(c);
  } else {
    delete c;
  }
}

bool Worker::watch(int fd, Side* side) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = side;
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Worker::watchEpoll() {
  epoll_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](const error_code& ec) {
    if (!ec) return dispatchEpoll();
    if (ec != boost::asio::error::operation_aborted) {
      logger()->error("worker={} epoll wait failed: {}", id_, ec.message());
    }
  });
}

void Worker::dispatchEpoll() {
  constexpr int kBatch = 128;
  epoll_event events[kBatch];
  dispatching_ = true;
  for (;;) {
    int n = ::epoll_wait(epfd_, events, kBatch, 0);
    for (int i = 0; i < n; ++i) {
      auto* side = static_cast<Side*>(events[i].data.ptr);
      side->owner->onEvents(*side, events[i].events);
    }
    // Connections closed in this batch may still have had events in it; now they are gone
    // from the set (their sockets are closed) and can go.
    for (Connection* c : zombies_) delete c;
    zombies_.clear();
    if (n < kBatch) break;
  }
  dispatching_ = false;
  watchEpoll();
}

char* Worker::acquireBuffers() {
  if (!freeBuffers_.empty()) {
    char* b = freeBuffers_.back();
    freeBuffers_.pop_back();
    return b;
  }
  return new char[2 * kPumpBufferBytes];
}

void Worker::releaseBuffers(char* buffers) {
  if (freeBuffers_.size() < kMaxFreeBuffers) {
    freeBuffers_.push_back(buffers);
  } else {
    delete[] buffers;
  }
}

}  // namespace taskmesh::proxy
