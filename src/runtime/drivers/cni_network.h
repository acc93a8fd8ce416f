#pragma once
// TaskNetwork on the standard CNI plugins (bridge + host-local + loopback): every task gets
// a network namespace file at <dataDir>/netns/<taskId> (created with `unshare --net=FILE`),
// lo up, and eth0 on a bridge of our own with an IP leased from the subnet (leases in
// <dataDir>/ipam). Nothing is written outside dataDir except the bridge and the veths the
// bridge plugin creates; no iptables rules (ipMasq is off).
//
// Thread: that of TaskNetwork (the io_context of the supervisor). Ownership: borrows the
// supervisor, which must outlive the network; pending callbacks are dropped when the
// network is destroyed (what they created is then removed by the next removeOrphans()).
//
// Cleanup guarantees: teardown() leaves no namespace file, mount, veth or lease of the task;
// removeOrphans() does that for every task found in <dataDir>/netns and deletes every lease
// whose task has no namespace; removeBridge() removes the bridge (once it has no ports)
// and the private mount of <dataDir>/netns.

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/drivers/netns.h"
#include "runtime/drivers/process_supervisor.h"
#include "runtime/task_network.h"

namespace taskmesh::runtime {

struct CniNetworkOptions {
  std::string dataDir;                   // absolute; this network's own directory; required
  std::string bridgeName = "tmecs0";     // [A-Za-z0-9_.-]{1,15}
  std::string subnet = "198.18.0.0/16";  // prefix 8..28
  std::string cniPath = "/usr/lib/cni";
  std::string networkName = "taskmesh";  // the CNI network name; names the IPAM directory
  std::string unsharePath = "/usr/bin/unshare";
  std::string ipPath = "/usr/sbin/ip";             // for removeBridge()
  std::chrono::milliseconds pluginTimeout{10000};  // per plugin or helper run
};

class CniNetwork : public TaskNetwork {
 public:
  // Validates the options (kInvalidArgument naming the option) and checks that the plugins
  // and unshare are executable. Touches nothing on the host.
  static Result<std::unique_ptr<CniNetwork>> create(asio::io_context& io,
                                                    ProcessSupervisor& supervisor,
                                                    CniNetworkOptions options);

  // taskId must be [A-Za-z0-9_.-]{1,128}; kConflict if its namespace file already exists.
  // Errors name the step ("create namespace", "loopback ADD", "bridge ADD") and the
  // plugin's message.
  void setup(const std::string& taskId, std::function<void(Result<TaskAttachment>)> done) override;
  // CNI DEL bridge and loopback (a namespace file that is no longer mounted is passed as no
  // namespace, so the lease is still released), unmount, unlink. Every step runs even if an
  // earlier one failed; `done` gets the first error.
  void teardown(const std::string& taskId, std::function<void(Result<void>)> done) override;
  // Blocks (at most pluginTimeout per plugin run). Returns the task ids it tore down.
  Result<std::vector<std::string>> removeOrphans() override;
  std::string gatewayAddress() const override;

  // Blocks. Deletes the bridge if it exists and has no ports left (kConflict naming them
  // otherwise), and releases the private mount of <dataDir>/netns once it is empty.
  Result<void> removeBridge();

  std::string netnsPath(const std::string& taskId) const;
  const CniNetworkOptions& options() const { return options_; }

  struct Setup;  // one setup() in flight (cni_network.cc)

 private:
  CniNetwork(asio::io_context& io, ProcessSupervisor& supervisor, CniNetworkOptions options,
             netns::Subnet subnet);
  enum class Plugin { kLoopback, kBridge };
  CommandSpec pluginCommand(Plugin plugin, const char* command, const std::string& taskId,
                            const std::string& netnsPath) const;
  nlohmann::json pluginConfig(Plugin plugin) const;
  void runPlugin(Plugin plugin, const char* command, const std::string& taskId,
                 const std::string& netnsPath, std::function<void(Result<nlohmann::json>)> done);
  void createNamespace(const std::shared_ptr<Setup>& s);
  void addLoopback(const std::shared_ptr<Setup>& s);
  void addBridge(const std::shared_ptr<Setup>& s);
  void rollback(const std::shared_ptr<Setup>& s, Error error);
  Result<void> teardownSync(const std::string& taskId);
  void removeStaleLeases();

  asio::io_context& io_;
  ProcessSupervisor& supervisor_;
  CniNetworkOptions options_;
  netns::Subnet subnet_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // handlers hold a weak_ptr
};

// The attachment described by a bridge plugin ADD result; kInternal naming the missing field.
Result<TaskAttachment> parseCniResult(const nlohmann::json& result, const std::string& netnsPath,
                                      const std::string& subnetCidr);

// The message of a failed plugin run: "msg (details)" from its CNI error JSON on stdout,
// else its stderr/stdout tail.
std::string cniErrorMessage(const CommandResult& r);

}  // namespace taskmesh::runtime
