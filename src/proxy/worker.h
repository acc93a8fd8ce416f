#pragma once
// A worker: one thread, one io_context, its own SO_REUSEPORT listeners and the connections they
// accept. The kernel spreads new connections over the workers' listening sockets; a connection
// never leaves the worker that accepted it.
//
// Connection sockets are not Asio's: they sit in the worker's own epoll set (edge-triggered,
// registered once), whose descriptor Asio watches; when it is readable the worker drains it and
// hands each event to its connection (connection.h). Asio runs the rest: accepts, timers,
// posts from the main thread, name resolution.
//
// Threads: the public methods marked "main thread" post to the worker and return at once;
// everything else runs on the worker's thread. The worker's Runtime is replaced by a post, so
// the data path reads it without locks or atomics.

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "net/asio.h"
#include "proxy/runtime.h"
#include "proxy/stats.h"

namespace taskmesh::proxy {

class Connection;
struct Side;

enum class ListenerKind { kPublic, kUpstream };

struct ListenerSpec {
  std::string key;   // name + bind address: listeners are replaced when it changes
  std::string name;  // kPublicListener or upstreamListenerName()
  ListenerKind kind = ListenerKind::kPublic;
  ListenerStats* stats = nullptr;  // lives as long as the proxy's Stats
};

class Worker {
 public:
  Worker(int id, std::chrono::milliseconds handshakeTimeout);
  ~Worker();  // stop() and join
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int id() const { return id_; }

  // Main thread. Starts the thread (small stack).
  bool start();
  void setRuntime(std::shared_ptr<const Runtime> runtime);
  // Takes ownership of `fd`, a bound and listening TCP socket, and accepts on it.
  void addListener(ListenerSpec spec, int fd, bool v6);
  void removeListener(const std::string& key);
  // Closes every listener; connections continue. New connections are refused from now on.
  void closeListeners();
  // Closes every connection now.
  void abortConnections();
  // Closes listeners and connections, lets the thread finish, joins it. Idempotent.
  void stop();

  // Worker thread.
  boost::asio::io_context& io() { return io_; }
  // Adds a connection's socket to the epoll set (edge-triggered read and write); `side` comes
  // back with its events. Closing the socket removes it.
  bool watch(int fd, Side* side);
  std::chrono::milliseconds handshakeTimeout() const { return handshakeTimeout_; }
  char* acquireBuffers();  // 2 * kPumpBufferBytes
  void releaseBuffers(char* buffers);
  // Unlinks and deletes (after the current epoll batch, whose events may still name it).
  void release(Connection* connection);

 private:
  struct Listener {
    ListenerSpec spec;
    boost::asio::ip::tcp::acceptor acceptor;
    boost::asio::steady_timer retry;
    bool closing = false;
    bool pending = false;  // an accept or retry wait is outstanding
  };

  void accept(Listener* listener);
  void onAccept(Listener* listener, const boost::system::error_code& ec,
                boost::asio::ip::tcp::socket socket);
  void closeListener(Listener* listener);
  void eraseIdle();
  void watchEpoll();
  void dispatchEpoll();
  static void* threadMain(void* self);

  const int id_;
  const std::chrono::milliseconds handshakeTimeout_;
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  pthread_t thread_{};
  bool started_ = false;

  // Worker-thread state.
  int epfd_ = -1;
  boost::asio::posix::stream_descriptor epoll_;  // owns epfd_
  bool dispatching_ = false;
  std::vector<Connection*> zombies_;  // released during a batch, deleted after it
  std::shared_ptr<const Runtime> runtime_;
  bool accepting_ = true;
  std::list<std::unique_ptr<Listener>> listeners_;
  Connection* connections_ = nullptr;  // intrusive list head
  std::vector<char*> freeBuffers_;
};

}  // namespace taskmesh::proxy
