#pragma once
// The seam between the task lifecycle and task networking (STYLE.md rule 9): one network
// namespace per task (awsvpc), with one IP from the runtime's subnet. The real
// implementation is CniNetwork (cni_network.h); lifecycle tests use a fake.
//
// Thread: every method is called on, and every callback runs on, the io_context the network
// was created with. Callbacks are never invoked from inside the call that registered them.

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace taskmesh::runtime {

struct TaskAttachment {
  std::string netnsPath;     // bind-mounted namespace file, e.g. /var/run/netns/tm-<taskid>
  std::string ipv4;          // "198.18.0.5"
  std::string prefixLength;  // "16"
  std::string gateway;       // "198.18.0.1"
  std::string macAddress;    // of eth0 inside the namespace
  std::string subnetCidr;    // "198.18.0.0/16"
};

class TaskNetwork {
 public:
  virtual ~TaskNetwork() = default;

  // Creates the namespace for `taskId` and attaches it (eth0 + lo up, an IP leased).
  // On failure everything created so far is released before `done` is called.
  virtual void setup(const std::string& taskId,
                     std::function<void(Result<TaskAttachment>)> done) = 0;

  // Detaches and deletes the namespace, releasing the veth and the IP lease. Idempotent.
  virtual void teardown(const std::string& taskId, std::function<void(Result<void>)> done) = 0;

  // At startup: releases every namespace, veth and lease a previous run left. Synchronous.
  virtual Result<std::vector<std::string>> removeOrphans() = 0;

  // The host side address tasks reach the runtime on (the bridge's gateway address).
  virtual std::string gatewayAddress() const = 0;
};

}  // namespace taskmesh::runtime
