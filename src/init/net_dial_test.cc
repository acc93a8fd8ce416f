#include "init/net_dial.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>

#include "net/asio.h"

namespace taskmesh::init {
namespace {

using tcp = asio::ip::tcp;

TEST(NetDial, ListeningPortIsZero) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  NetDialOptions o;
  o.address = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  EXPECT_EQ(runNetDial(o), 0);
}

TEST(NetDial, ClosedPortIsTwo) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  NetDialOptions o;
  o.address = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  acceptor.close();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(runNetDial(o), 2);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(o.address), std::string::npos) << err;
}

TEST(NetDial, BadAddressOrTimeoutIsTwoWithAMessage) {
  struct Case {
    NetDialOptions options;
    const char* expected;
  };
  for (const Case& c :
       {Case{{"127.0.0.1", "1s"}, "missing port"}, Case{{"127.0.0.1:http", "1s"}, "invalid port"},
        Case{{":20000", "1s"}, "missing host"}, Case{{"127.0.0.1:0", "1s"}, "invalid port"},
        Case{{"127.0.0.1:20000", "soon"}, "invalid -timeout"},
        Case{{"127.0.0.1:20000", "-1s"}, "must be positive"}}) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(runNetDial(c.options), 2) << c.options.address;
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(c.expected), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace taskmesh::init
