#include "raft/forked_encoder.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace taskmesh::raft {
namespace {

using std::chrono::milliseconds;

TEST(ForkedEncoder, EncodesTheMemoryAsItWasAtFork) {
  std::string state = "as at fork";
  auto enc = ForkedEncoder::start([&state] {
    std::this_thread::sleep_for(milliseconds(100));  // the parent writes meanwhile
    return state;
  });
  ASSERT_TRUE(enc.has_value()) << enc.error().message;
  state = "written after fork";
  auto out = enc->finish(milliseconds(10000));
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(*out, "as at fork");
}

TEST(ForkedEncoder, CarriesOutputLargerThanThePipe) {
  std::string big(9 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 % 251);
  auto enc = ForkedEncoder::start([&big] { return big; });
  ASSERT_TRUE(enc.has_value());
  auto out = enc->finish(milliseconds(30000));
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_TRUE(*out == big) << "got " << out->size() << " bytes of " << big.size();
}

TEST(ForkedEncoder, EmptyOutputIsNotAnError) {
  auto enc = ForkedEncoder::start([] { return std::string(); });
  ASSERT_TRUE(enc.has_value());
  auto out = enc->finish(milliseconds(10000));
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(*out, "");
}

TEST(ForkedEncoder, AnEncoderThatThrowsIsAnErrorNotOutput) {
  auto enc = ForkedEncoder::start([]() -> std::string { throw std::runtime_error("bad"); });
  ASSERT_TRUE(enc.has_value());
  auto out = enc->finish(milliseconds(10000));
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message.find("failed to encode"), std::string::npos) << out.error().message;
}

TEST(ForkedEncoder, AStuckChildIsKilledAtTheTimeout) {
  auto enc = ForkedEncoder::start([] {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return std::string("late");
  });
  ASSERT_TRUE(enc.has_value());
  auto began = std::chrono::steady_clock::now();
  auto out = enc->finish(milliseconds(200));
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(10));
  // Reaped: a second finish reports misuse instead of waiting.
  EXPECT_FALSE(enc->finish(milliseconds(10)).has_value());
}

TEST(ForkedEncoder, TheChildHoldsNoneOfTheParentsDescriptors) {
  // A listening socket of the parent must not stay open in the child (or a restarted server
  // could not bind its port while a snapshot is being encoded).
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  auto enc = ForkedEncoder::start([sock] {
    int type = 0;
    socklen_t len = sizeof type;
    bool open = ::getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    return std::string(open ? "open" : "closed");
  });
  ASSERT_TRUE(enc.has_value());
  auto out = enc->finish(milliseconds(10000));
  ::close(sock);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(*out, "closed");
}

TEST(ForkedEncoder, DroppingAnUnfinishedEncoderKillsItsChild) {
  pid_t child = 0;
  {
    auto enc = ForkedEncoder::start([] {
      std::this_thread::sleep_for(std::chrono::seconds(30));
      return std::string();
    });
    ASSERT_TRUE(enc.has_value());
    // The only child of this test process right now.
    child = ::waitpid(-1, nullptr, WNOHANG);
    EXPECT_EQ(child, 0) << "the child ended early";
  }
  // Reaped by the destructor: no child is left to wait for.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
}  // namespace taskmesh::raft
