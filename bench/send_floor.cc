// send_floor: the least a server can spend waking N long-poll watchers on this machine: one
// send() of a 300-byte answer on each of N connected loopback TCP sockets, from one thread,
// with nothing else (no parsing, no encoding, no event loop). The floor under the wake-up
// latency that bench/watch_latency measures (issue 2's 5 ms target at 10,000 watchers).
//
//   send_floor [N] [ROUNDS]      N ≤ (RLIMIT_NOFILE hard limit - 16) / 2; default 9000, 3
//
// Prints one line per round: the time of the N sends, per send, and of the N receives.
// Everything is on 127.0.0.1; every socket is closed at exit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 9000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  if (n <= 0 || rounds <= 0 || static_cast<rlim_t>(n) * 2 + 16 > rl.rlim_cur) {
    std::fprintf(stderr, "send_floor: N must be 1..%llu and ROUNDS positive\n",
                 static_cast<unsigned long long>((rl.rlim_cur - 16) / 2));
    return 2;
  }
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(ls, 4096) != 0 || ::getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    std::perror("send_floor: listener");
    return 1;
  }
  std::vector<int> clients, servers;
  for (int i = 0; i < n; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::perror("send_floor: connect");
      return 1;
    }
    int s = ::accept(ls, nullptr, nullptr);
    if (s < 0) {
      std::perror("send_floor: accept");
      return 1;
    }
    clients.push_back(c);
    servers.push_back(s);
  }
  const std::string answer(300, 'x');
  using Clock = std::chrono::steady_clock;
  for (int round = 0; round < rounds; ++round) {
    auto t0 = Clock::now();
    for (int s : servers) {
      if (::send(s, answer.data(), answer.size(), 0) != static_cast<ssize_t>(answer.size())) {
        std::perror("send_floor: send");
        return 1;
      }
    }
    auto t1 = Clock::now();
    char buf[512];
    for (int c : clients) {
      if (::recv(c, buf, sizeof buf, 0) <= 0) {
        std::perror("send_floor: recv");
        return 1;
      }
    }
    auto t2 = Clock::now();
    std::printf("watchers=%d send_all_ms=%.1f per_send_us=%.2f recv_all_ms=%.1f\n", n,
                std::chrono::duration<double, std::milli>(t1 - t0).count(),
                std::chrono::duration<double, std::micro>(t1 - t0).count() / n,
                std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  for (int fd : clients) ::close(fd);
  for (int fd : servers) ::close(fd);
  ::close(ls);
  return 0;
}
