// watch_latency: wake-up latency of many watchers on one key, for taskmesh blocking queries
// and etcd watches (over etcd's JSON gateway), measured with the same client.
//
//   watch_latency --target taskmesh|etcd --port P --watchers N [--rounds R]
//                 [--server-pid PID] [--key K] [--timeout-s S]
//
// One TCP connection per watcher, raw HTTP/1.1 (no client library in between).
//   taskmesh: GET /v1/kv/<K>?index=<current>&wait=60s, on a keep-alive connection.
//   etcd:     POST /v3/watch {"create_request":{"key":<K>}}: one streaming response per
//             watcher; the watcher is ready when etcd's "created" message arrives; each
//             change then arrives as one "events" message on the same stream.
// taskmesh watchers ask again (with the index they got back) only at the start of the next
// round, so that re-arming does not compete with the wake-ups being measured.
// A round: wait until every watcher is ready (taskmesh: its request is written; etcd: the
// watch is created), then until the server's CPU is idle (so it has parsed and registered
// every request: /proc/PID/stat), then write the key once from a separate connection. The
// figure per watcher is the time from that write's response (acknowledged) to the
// watcher's notification arriving; the time from sending the write is kept too.
//
// Threads: the watchers live on one io_context thread; main() drives the rounds and only
// reads the watchers' figures after that thread has been joined. Every wait is bounded by
// --timeout-s. Prints per-round lines and one "RESULT key=value ..." line; exits 1 if any
// watcher failed or was not notified.
#include <sys/resource.h>
#include <unistd.h>

#include <utility>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kConnectsInFlight = 256;
constexpr int64_t kNotArrived = INT64_MIN;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Options {
  bool etcd = false;
  uint16_t port = 0;
  size_t watchers = 1000;
  int rounds = 3;
  int serverPid = 0;
  std::string key = "bench/watched";
  int timeoutSec = 120;
};

std::string base64(const std::string& in) {
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += kChars[(n >> 18) & 63];
    out += kChars[(n >> 12) & 63];
    out += i + 1 < in.size() ? kChars[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kChars[n & 63] : '=';
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Value of header `name` (lower case) in the header block `head`, or nullopt.
std::optional<std::string> header(const std::string& head, const std::string& name) {
  std::string l = lower(head);
  size_t pos = l.find("\r\n" + name + ":");
  if (pos == std::string::npos) return std::nullopt;
  size_t start = pos + 3 + name.size();
  size_t end = head.find("\r\n", start);
  std::string v = head.substr(start, end - start);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
  return v;
}

int statusOf(const std::string& head) {
  // "HTTP/1.1 200 OK"
  if (head.size() < 12) return 0;
  return std::atoi(head.c_str() + 9);
}

struct Reply {
  int status = 0;
  std::string head;
  std::string body;
};

// One blocking request on its own connection (Connection: close), used by main() only.
std::optional<Reply> call(uint16_t port, const std::string& method, const std::string& target,
                          const std::string& body) {
  asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port), ec);
  if (ec) return std::nullopt;
  s.set_option(tcp::no_delay(true), ec);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                    "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  asio::write(s, asio::buffer(req), ec);
  if (ec) return std::nullopt;
  // Read the head, then exactly Content-Length bytes: the figure is taken when the
  // acknowledgement is complete, not when the server closes the connection.
  std::string in;
  std::array<char, 4096> buf;
  size_t headEnd = std::string::npos;
  size_t want = std::string::npos;
  while (want == std::string::npos || in.size() < want) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    in.append(buf.data(), n);
    if (headEnd == std::string::npos && (headEnd = in.find("\r\n\r\n")) != std::string::npos) {
      auto len = header(in.substr(0, headEnd), "content-length");
      if (!len) return std::nullopt;
      want = headEnd + 4 + std::strtoull(len->c_str(), nullptr, 10);
    }
    if (ec) break;
  }
  if (want == std::string::npos || in.size() < want) return std::nullopt;
  Reply r;
  r.head = in.substr(0, headEnd);
  r.status = statusOf(r.head);
  r.body = in.substr(headEnd + 4, want - headEnd - 4);
  return r;
}

// Shared between the io thread (writes) and main() (reads); counters only.
struct Progress {
  std::atomic<size_t> connected{0};
  std::atomic<size_t> ready{0};
  std::atomic<size_t> arrived{0};
  std::atomic<size_t> failed{0};
  std::atomic<size_t> spurious{0};
};

// One watcher: one connection. Lives on the io thread.
class Watcher {
 public:
  Watcher(asio::io_context& io, const Options& o, Progress& p, uint64_t index)
      : socket_(io), options_(o), progress_(p), index_(index) {
    arrivals_.assign(static_cast<size_t>(o.rounds), kNotArrived);
  }

  // `connected` runs once the attempt has finished, whatever its outcome.
  void start(const std::function<void()>& connected) {
    tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), options_.port);
    socket_.async_connect(ep, [this, connected](const boost::system::error_code& ec) {
      connected();
      if (ec) return fail();
      boost::system::error_code ignored;
      socket_.set_option(tcp::no_delay(true), ignored);
      progress_.connected.fetch_add(1);
      sendRequest(true);
      read();
    });
  }

  void close() {
    boost::system::error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);  // no TIME_WAIT pile-up
    socket_.close(ec);
  }

  // taskmesh: asks again with the index of the last notification. Not done on arrival, so
  // that the next round's requests do not compete with the current round's wake-ups.
  void rearm() {
    if (!options_.etcd && !failed_) sendRequest(true);
  }

  const std::vector<int64_t>& arrivals() const { return arrivals_; }
  bool failed() const { return failed_; }

 private:
  // counted: the write completes a round's setup (Progress::ready).
  void sendRequest(bool counted) {
    if (options_.etcd) {
      std::string body = "{\"create_request\":{\"key\":\"" + base64(options_.key) + "\"}}";
      out_ =
          "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
    } else {
      out_ = "GET /v1/kv/" + options_.key + "?index=" + std::to_string(index_) +
             "&wait=60s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    }
    asio::async_write(socket_, asio::buffer(out_),
                      [this, counted](const boost::system::error_code& ec, size_t) {
                        if (ec) return fail();
                        if (!options_.etcd && counted) progress_.ready.fetch_add(1);
                      });
  }

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [this](const boost::system::error_code& ec, size_t n) {
                              if (ec) return fail();
                              int64_t t = nowNs();
                              in_.append(buf_.data(), n);
                              bool ok = options_.etcd ? scanEtcd(t) : scanTaskmesh(t);
                              if (!ok) return fail();
                              read();
                            });
  }

  void arrive(int64_t t) {
    if (round_ < arrivals_.size()) arrivals_[round_] = t;
    ++round_;
    progress_.arrived.fetch_add(1);
  }

  // Complete responses in in_: each one whose index moved is a notification.
  bool scanTaskmesh(int64_t t) {
    for (;;) {
      size_t headEnd = in_.find("\r\n\r\n");
      if (headEnd == std::string::npos) return true;
      std::string head = in_.substr(0, headEnd);
      auto len = header(head, "content-length");
      if (!len) return false;
      size_t total = headEnd + 4 + std::strtoull(len->c_str(), nullptr, 10);
      if (in_.size() < total) return true;
      in_.erase(0, total);
      if (statusOf(head) != 200) return false;
      auto idx = header(head, "x-consul-index");
      uint64_t index = idx ? std::strtoull(idx->c_str(), nullptr, 10) : 0;
      if (index > index_) {
        index_ = index;
        arrive(t);  // the next request goes out with rearm(), at the next round
      } else {
        progress_.spurious.fetch_add(1);  // wait expired or woke with nothing new
        sendRequest(false);
      }
    }
  }

  // etcd's stream: one JSON message per change; the first says the watch was created.
  bool scanEtcd(int64_t t) {
    if (!created_) {
      size_t pos = in_.find("\"created\":true");
      if (pos == std::string::npos) return in_.size() < 64 * 1024;
      created_ = true;
      progress_.ready.fetch_add(1);
      in_.erase(0, pos + 14);
    }
    for (;;) {
      size_t pos = in_.find("\"events\"");
      if (pos == std::string::npos) break;
      arrive(t);
      in_.erase(0, pos + 8);
    }
    if (in_.size() > 16) in_.erase(0, in_.size() - 16);  // keep a possible split marker
    return true;
  }

  void fail() {
    if (failed_) return;
    failed_ = true;
    progress_.failed.fetch_add(1);
  }

  tcp::socket socket_;
  const Options& options_;
  Progress& progress_;
  uint64_t index_;
  std::string out_;
  std::string in_;
  std::array<char, 4096> buf_;
  std::vector<int64_t> arrivals_;
  size_t round_ = 0;
  bool created_ = false;
  bool failed_ = false;
};

// utime + stime of `pid` in clock ticks, or -1.
long cpuTicks(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return utime + stime;
}

// This process's user + system CPU time so far, in ms.
double ownCpuMs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1000.0 + static_cast<double>(t.tv_usec) / 1000.0;
  };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// Waits until the server used at most 1 tick (10 ms) of CPU in each of two consecutive
// 250 ms windows, or `limit` passes. Returns the seconds waited.
double waitIdle(int pid, std::chrono::seconds limit) {
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  if (pid <= 0) return 0.3;
  long last = cpuTicks(pid);
  int quiet = 0;
  while (Clock::now() - start < limit && quiet < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    long now = cpuTicks(pid);
    quiet = (now >= 0 && now - last <= 1) ? quiet + 1 : 0;
    last = now;
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Waits until `counter` reaches `target` or `deadline`; true if reached.
bool waitFor(const std::atomic<size_t>& counter, size_t target, Clock::time_point deadline,
             const std::atomic<size_t>& failed) {
  while (counter.load() + failed.load() < target) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return counter.load() >= target;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string v = argv[i + 1];
    if (flag == "--target") {
      if (v != "taskmesh" && v != "etcd") return std::nullopt;
      o.etcd = v == "etcd";
    } else if (flag == "--port") {
      o.port = static_cast<uint16_t>(std::atoi(v.c_str()));
    } else if (flag == "--watchers") {
      o.watchers = std::strtoul(v.c_str(), nullptr, 10);
    } else if (flag == "--rounds") {
      o.rounds = std::atoi(v.c_str());
    } else if (flag == "--server-pid") {
      o.serverPid = std::atoi(v.c_str());
    } else if (flag == "--key") {
      o.key = v;
    } else if (flag == "--timeout-s") {
      o.timeoutSec = std::atoi(v.c_str());
    } else {
      return std::nullopt;
    }
  }
  if (argc % 2 == 0 || o.port == 0 || o.watchers == 0 || o.watchers > 100000 || o.rounds < 1 ||
      o.rounds > 100 || o.timeoutSec < 1 || o.key.empty())
    return std::nullopt;
  return o;
}

bool raiseFileLimit(size_t need) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= need) return true;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) return false;
  rl.rlim_cur = need;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

// Writes the key once; returns {sent, acknowledged} in ns, or nullopt.
std::optional<std::pair<int64_t, int64_t>> writeKey(const Options& o, int round) {
  std::string value = "round-" + std::to_string(round);
  std::string target = o.etcd ? "/v3/kv/put" : "/v1/kv/" + o.key;
  std::string body =
      o.etcd ? "{\"key\":\"" + base64(o.key) + "\",\"value\":\"" + base64(value) + "\"}" : value;
  int64_t sent = nowNs();
  auto r = call(o.port, o.etcd ? "POST" : "PUT", target, body);
  int64_t acked = nowNs();
  if (!r || r->status != 200) return std::nullopt;
  return std::make_pair(sent, acked);
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse(argc, argv);
  if (!parsed) {
    std::fprintf(stderr,
                 "usage: watch_latency --target taskmesh|etcd --port P --watchers N "
                 "[--rounds R] [--server-pid PID] [--key K] [--timeout-s S]\n");
    return 2;
  }
  const Options o = *parsed;
  if (!raiseFileLimit(o.watchers + 64)) {
    std::fprintf(stderr, "watch_latency: cannot raise RLIMIT_NOFILE to %zu (ulimit -Hn)\n",
                 o.watchers + 64);
    return 2;
  }
  auto deadline = Clock::now() + std::chrono::seconds(o.timeoutSec);

  // The key exists before anyone watches it; taskmesh watchers start from its index.
  auto first = writeKey(o, -1);
  if (!first) {
    std::fprintf(stderr, "watch_latency: initial write to 127.0.0.1:%u failed\n", o.port);
    return 1;
  }
  uint64_t index = 0;
  if (!o.etcd) {
    std::string target = "/v1/kv/" + o.key;
    auto r = call(o.port, "GET", target, "");
    auto idx = r ? header(r->head, "x-consul-index") : std::nullopt;
    if (!idx) {
      std::fprintf(stderr, "watch_latency: GET %s gave no X-Consul-Index\n", target.c_str());
      return 1;
    }
    index = std::strtoull(idx->c_str(), nullptr, 10);
  }

  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  Progress progress;
  std::vector<std::unique_ptr<Watcher>> watchers;
  watchers.reserve(o.watchers);
  for (size_t i = 0; i < o.watchers; ++i)
    watchers.push_back(std::make_unique<Watcher>(io, o, progress, index));
  std::thread ioThread([&io] { io.run(); });

  // At most kConnectsInFlight connection attempts at a time (the server's accept backlog).
  auto t0 = Clock::now();
  // `next` and `launch` are used on the io thread only and outlive it (joined below).
  size_t next = 0;
  std::function<void()> launch = [&watchers, &next, &launch] {
    if (next >= watchers.size()) return;
    Watcher& w = *watchers[next++];
    w.start(launch);
  };
  asio::post(io, [&launch] {
    for (size_t i = 0; i < kConnectsInFlight; ++i) launch();
  });
  bool allReady = waitFor(progress.ready, o.watchers, deadline, progress.failed);
  double setupSec = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("watchers=%zu connected=%zu ready=%zu failed=%zu setup_s=%.2f\n", o.watchers,
              progress.connected.load(), progress.ready.load(), progress.failed.load(), setupSec);

  std::vector<std::pair<int64_t, int64_t>> writes;
  double serverCpuMs = 0;  // the server's CPU time from each write until all were notified
  double clientCpuMs = 0;  // this process's CPU time over the same spans
  for (int round = 0; allReady && round < o.rounds; ++round) {
    if (round > 0 && !o.etcd) {
      asio::post(io, [&watchers] {
        for (auto& w : watchers) w->rearm();
      });
      size_t live = o.watchers - progress.failed.load();
      if (!waitFor(progress.ready, live * static_cast<size_t>(round + 1), deadline,
                   progress.failed)) {
        break;
      }
    }
    double idle = waitIdle(o.serverPid, std::chrono::seconds(20));
    long serverBefore = o.serverPid > 0 ? cpuTicks(o.serverPid) : 0;
    double clientBefore = ownCpuMs();
    auto w = writeKey(o, round);
    if (!w) {
      std::fprintf(stderr, "watch_latency: write in round %d failed\n", round);
      break;
    }
    writes.push_back(*w);
    size_t target = o.watchers * static_cast<size_t>(round + 1);
    bool all = waitFor(progress.arrived, target, deadline, progress.failed);
    long serverAfter = o.serverPid > 0 ? cpuTicks(o.serverPid) : 0;
    double serverMs = static_cast<double>(serverAfter - serverBefore) * 1000.0 /
                      static_cast<double>(sysconf(_SC_CLK_TCK));
    double clientMs = ownCpuMs() - clientBefore;
    serverCpuMs += serverMs;
    clientCpuMs += clientMs;
    std::printf(
        "round=%d idle_wait_s=%.2f write_ms=%.2f notified=%zu/%zu server_cpu_ms=%.0f "
        "client_cpu_ms=%.0f\n",
        round, idle, static_cast<double>(w->second - w->first) / 1e6,
        progress.arrived.load() - o.watchers * static_cast<size_t>(round), o.watchers, serverMs,
        clientMs);
    if (!all) break;
  }

  asio::post(io, [&watchers] {
    for (auto& w : watchers) w->close();
  });
  guard.reset();
  io.stop();
  ioThread.join();

  // Figures, now that the io thread is gone.
  std::vector<double> fromAck;
  std::vector<double> fromSend;
  size_t missing = 0;
  size_t failed = 0;
  for (const auto& w : watchers) {
    if (w->failed()) ++failed;
    for (size_t r = 0; r < writes.size(); ++r) {
      int64_t t = w->arrivals()[r];
      if (t == kNotArrived) {
        ++missing;
        continue;
      }
      fromAck.push_back(static_cast<double>(t - writes[r].second) / 1e6);
      fromSend.push_back(static_cast<double>(t - writes[r].first) / 1e6);
    }
  }
  missing += o.watchers * (static_cast<size_t>(o.rounds) - writes.size());
  double writeMs = 0;
  for (const auto& w : writes) writeMs += static_cast<double>(w.second - w.first) / 1e6;
  if (!writes.empty()) writeMs /= static_cast<double>(writes.size());
  size_t early = static_cast<size_t>(
      std::count_if(fromAck.begin(), fromAck.end(), [](double v) { return v < 0; }));
  std::printf(
      "RESULT target=%s watchers=%zu rounds=%zu samples=%zu missing=%zu failed=%zu "
      "spurious=%zu before_ack=%zu setup_s=%.2f write_ms=%.3f p50_ms=%.3f p99_ms=%.3f "
      "max_ms=%.3f send_p50_ms=%.3f send_p99_ms=%.3f send_max_ms=%.3f "
      "server_cpu_ms_per_round=%.0f client_cpu_ms_per_round=%.0f\n",
      o.etcd ? "etcd" : "taskmesh", o.watchers, writes.size(), fromAck.size(), missing, failed,
      progress.spurious.load(), early, setupSec, writeMs, percentile(fromAck, 0.50),
      percentile(fromAck, 0.99), percentile(fromAck, 1.0), percentile(fromSend, 0.50),
      percentile(fromSend, 0.99), percentile(fromSend, 1.0),
      writes.empty() ? 0.0 : serverCpuMs / static_cast<double>(writes.size()),
      writes.empty() ? 0.0 : clientCpuMs / static_cast<double>(writes.size()));
  return missing == 0 && failed == 0 ? 0 : 1;
}
