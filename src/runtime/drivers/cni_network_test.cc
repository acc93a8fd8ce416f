#include "runtime/drivers/cni_network.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "runtime/drivers/test_support.h"

namespace taskmesh::runtime {
namespace {

namespace fs = std::filesystem;
using testing::runUntil;

class CniNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(slot_.ok()) << "no free test subnet";
    auto s = ProcessSupervisor::create(io_);
    ASSERT_TRUE(s) << s.error().message;
    sup_ = std::move(*s);
    net_ = makeNetwork(options());
  }
  void TearDown() override {
    if (!net_) net_ = makeNetwork(options());
    if (net_) {
      auto orphans = net_->removeOrphans();
      EXPECT_TRUE(orphans) << orphans.error().message;
      auto removed = net_->removeBridge();
      EXPECT_TRUE(removed) << removed.error().message;
    }
    EXPECT_FALSE(fs::exists("/sys/class/net/" + slot_.bridgeName()));
  }
  CniNetworkOptions options() const {
    return {.dataDir = dir_.path() + "/net",
            .bridgeName = slot_.bridgeName(),
            .subnet = slot_.subnet(),
            .networkName = "tmtest"};
  }
  std::unique_ptr<CniNetwork> makeNetwork(CniNetworkOptions o) {
    auto n = CniNetwork::create(io_, *sup_, std::move(o));
    EXPECT_TRUE(n) << n.error().message;
    return n ? std::move(*n) : nullptr;
  }
  Result<TaskAttachment> setup(const std::string& task) {
    std::optional<Result<TaskAttachment>> r;
    net_->setup(task, [&](Result<TaskAttachment> a) { r = std::move(a); });
    if (!runUntil(io_, [&] { return r.has_value(); }))
      return makeError(ErrorCode::kTimeout, "test deadline");
    return std::move(*r);
  }
  Result<void> teardown(const std::string& task) {
    std::optional<Result<void>> r;
    net_->teardown(task, [&](Result<void> a) { r = std::move(a); });
    if (!runUntil(io_, [&] { return r.has_value(); }))
      return makeError(ErrorCode::kTimeout, "test deadline");
    return *r;
  }
  std::string leaseDir() const { return dir_.path() + "/net/ipam/tmtest"; }
  size_t leaseCount() const {
    size_t n = 0;
    std::error_code ec;
    for (fs::directory_iterator it(leaseDir(), ec), end; !ec && it != end; it.increment(ec))
      n += netns::isIpv4(it->path().filename().string());
    return n;
  }
  size_t bridgePorts() const {
    size_t n = 0;
    std::error_code ec;
    std::string brif = "/sys/class/net/" + slot_.bridgeName() + "/brif";
    for (fs::directory_iterator it(brif, ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
  }
  // Nothing of `task` is left on the host.
  void expectGone(const std::string& task) {
    std::string path = dir_.path() + "/net/netns/" + task;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(testing::mountedAt(path));
  }

  testing::NetSlot slot_;
  testing::TempDir dir_;
  asio::io_context io_;
  std::unique_ptr<ProcessSupervisor> sup_;
  std::unique_ptr<CniNetwork> net_;
};

TEST(CniOptions, SubnetIsValidated) {
  EXPECT_TRUE(netns::parseSubnet("198.18.0.0/16"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.0"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.0/7"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.0/29"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.1/16"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.x/16"));
  EXPECT_FALSE(netns::parseSubnet("198.18.0.0/1a"));
  auto s = netns::parseSubnet("10.0.0.0/8");
  ASSERT_TRUE(s);
  EXPECT_EQ(netns::formatIpv4(s->network + 1), "10.0.0.1");
}

TEST(CniResult, ParsesBridgeAddResult) {
  auto doc = nlohmann::json::parse(R"({"cniVersion":"1.0.0","interfaces":[
    {"name":"br","mac":"aa:aa:aa:aa:aa:aa"},{"name":"veth1","mac":"bb:bb:bb:bb:bb:bb"},
    {"name":"eth0","mac":"cc:cc:cc:cc:cc:cc","sandbox":"/x"}],
    "ips":[{"interface":2,"address":"198.18.0.2/16","gateway":"198.18.0.1"}]})");
  auto a = parseCniResult(doc, "/x", "198.18.0.0/16");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->ipv4, "198.18.0.2");
  EXPECT_EQ(a->prefixLength, "16");
  EXPECT_EQ(a->gateway, "198.18.0.1");
  EXPECT_EQ(a->macAddress, "cc:cc:cc:cc:cc:cc");
  EXPECT_FALSE(parseCniResult(nlohmann::json::object(), "/x", "198.18.0.0/16"));
}

TEST_F(CniNetworkTest, CreateRejectsBadOptions) {
  auto o = options();
  o.subnet = "198.19.0.0/30";
  EXPECT_FALSE(CniNetwork::create(io_, *sup_, o));
  o = options();
  o.bridgeName = "much-too-long-bridge-name";
  EXPECT_FALSE(CniNetwork::create(io_, *sup_, o));
  o = options();
  o.dataDir = "relative";
  EXPECT_FALSE(CniNetwork::create(io_, *sup_, o));
}

TEST_F(CniNetworkTest, SetupAndTeardownLeaveNothingBehind) {
  auto start = std::chrono::steady_clock::now();
  auto a = setup("task-a");
  auto setupMs = testing::msSince(start);
  ASSERT_TRUE(a) << a.error().message;
  auto subnet = netns::parseSubnet(slot_.subnet());
  EXPECT_EQ(a->gateway, net_->gatewayAddress());
  EXPECT_EQ(a->gateway, netns::formatIpv4(subnet->network + 1));
  EXPECT_EQ(a->ipv4.rfind(netns::formatIpv4(subnet->network).substr(0, 10), 0), 0u) << a->ipv4;
  EXPECT_EQ(a->prefixLength, "24");
  EXPECT_EQ(a->subnetCidr, slot_.subnet());
  EXPECT_EQ(a->macAddress.size(), 17u);
  EXPECT_EQ(a->netnsPath, net_->netnsPath("task-a"));
  EXPECT_TRUE(netns::isNamespaceFile(a->netnsPath));
  EXPECT_EQ(bridgePorts(), 1u);
  EXPECT_EQ(leaseCount(), 1u);

  auto again = setup("task-a");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);

  start = std::chrono::steady_clock::now();
  auto down = teardown("task-a");
  auto teardownMs = testing::msSince(start);
  ASSERT_TRUE(down) << down.error().message;
  expectGone("task-a");
  EXPECT_EQ(bridgePorts(), 0u);
  EXPECT_EQ(leaseCount(), 0u);
  EXPECT_TRUE(teardown("task-a")) << "teardown is idempotent";
  std::cout << "[timing] CNI setup " << setupMs << " ms, teardown " << teardownMs << " ms\n";
}

TEST_F(CniNetworkTest, TwoTasksReachEachOtherAndLoopbackWorks) {
  auto a = setup("task-a");
  auto b = setup("task-b");
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_NE(a->ipv4, b->ipv4);

  int server = testing::socketInNamespace(a->netnsPath, SOCK_STREAM);
  ASSERT_GE(server, 0);
  int port = testing::listenOn(server, a->ipv4);
  ASSERT_GT(port, 0);
  int client = testing::socketInNamespace(b->netnsPath, SOCK_STREAM);
  ASSERT_GE(client, 0);
  EXPECT_TRUE(testing::connectTo(client, a->ipv4, port)) << "b cannot reach a over the bridge";
  ::close(client);
  ::close(server);

  int lo = testing::socketInNamespace(a->netnsPath, SOCK_STREAM);
  int loPort = testing::listenOn(lo, "127.0.0.1");
  ASSERT_GT(loPort, 0);
  int loClient = testing::socketInNamespace(a->netnsPath, SOCK_STREAM);
  EXPECT_TRUE(testing::connectTo(loClient, "127.0.0.1", loPort)) << "lo is not up";
  ::close(loClient);
  ::close(lo);

  // The task namespace is not the host's: the host cannot listen on the task's address.
  int host = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(testing::listenOn(host, a->ipv4), 0);
  ::close(host);

  EXPECT_TRUE(teardown("task-a"));
  EXPECT_TRUE(teardown("task-b"));
  EXPECT_EQ(bridgePorts(), 0u);
}

TEST_F(CniNetworkTest, RemoveOrphansAfterCrash) {
  ASSERT_TRUE(setup("crash-a"));
  ASSERT_TRUE(setup("crash-b"));
  net_.reset();  // "crash": no teardown
  // A lease whose task has no namespace at all (crash between IPAM and the netns file).
  std::ofstream(leaseDir() + "/198.19.250.250") << "ghost\r\neth0";
  net_ = makeNetwork(options());
  ASSERT_TRUE(net_);
  auto removed = net_->removeOrphans();
  ASSERT_TRUE(removed) << removed.error().message;
  std::sort(removed->begin(), removed->end());
  EXPECT_EQ(*removed, (std::vector<std::string>{"crash-a", "crash-b"}));
  expectGone("crash-a");
  expectGone("crash-b");
  EXPECT_EQ(bridgePorts(), 0u);
  EXPECT_EQ(leaseCount(), 0u);
  auto none = net_->removeOrphans();
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(CniNetworkTest, FailedSetupRollsBackAndNamesThePlugin) {
  // A cniPath whose bridge plugin fails the way plugins do: a CNI error on stdout.
  std::string cni = dir_.path() + "/cni";
  fs::create_directories(cni);
  for (const char* p : {"loopback", "host-local"})
    fs::create_symlink("/usr/lib/cni/" + std::string(p), cni + "/" + p);
  std::ofstream(cni + "/bridge")
      << "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\n"
         "echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"boom\",\"details\":\"d\"}'\n"
         "exit 1\n";
  fs::permissions(cni + "/bridge", fs::perms::owner_all);
  auto o = options();
  o.cniPath = cni;
  net_ = makeNetwork(o);
  ASSERT_TRUE(net_);
  auto a = setup("task-f");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("bridge ADD: boom (d)"), std::string::npos) << a.error().message;
  expectGone("task-f");
  net_ = makeNetwork(options());  // the real plugins for TearDown
}

}  // namespace
}  // namespace taskmesh::runtime
