#include "init/net_dial.h"

#include "base/duration.h"
#include "base/log.h"
#include "net/http_client.h"

namespace taskmesh::init {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("net-dial");
  return l;
}

}  // namespace

int runNetDial(const NetDialOptions& options) {
  auto timeout = parseDuration(options.timeout);
  if (!timeout || timeout->count() <= 0) {
    logger()->error("invalid -timeout \"{}\": {}", options.timeout,
                    timeout ? std::string("must be positive") : timeout.error().message);
    return kNetDialFailed;
  }
  auto dialed = net::dialTcp(options.address,
                             std::chrono::duration_cast<std::chrono::milliseconds>(*timeout));
  if (!dialed) {
    logger()->error("{}", dialed.error().message);
    return kNetDialFailed;
  }
  return kNetDialOk;
}

}  // namespace taskmesh::init
