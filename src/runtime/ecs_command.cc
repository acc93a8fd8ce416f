#include "runtime/ecs_command.h"

#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "base/json.h"
#include "base/log.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "runtime/drivers/cni_network.h"
#include "runtime/drivers/process_supervisor.h"
#include "runtime/drivers/runc_engine.h"
#include "runtime/ecs_api.h"

namespace taskmesh::runtime {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(15);

int fail(const std::string& what, const Error& e) {
  std::cerr << "taskmesh ecs: " << what << ": " << e.message << "\n";
  return 1;
}

// A coroutine free function (g++ 12 mishandles capturing lambda coroutines).
Awaitable<net::HttpResponse> serveApi(EcsApi* api, net::HttpRequest& request) {
  co_return api->handle(request);
}

struct Drivers {
  std::unique_ptr<ProcessSupervisor> supervisor;
  std::unique_ptr<RuncEngine> engine;
  std::unique_ptr<CniNetwork> network;
};

// Creates the drivers and removes whatever a previous run left (containers first, then the
// namespaces they lived in).
Result<Drivers> openDrivers(asio::io_context& io, const RuntimeOptions& o) {
  Drivers d;
  auto sup = ProcessSupervisor::create(io);
  if (!sup) return makeError(sup.error());
  d.supervisor = std::move(*sup);
  auto engine = RuncEngine::create(
      io, *d.supervisor,
      RuncEngineOptions{.root = o.dataDir + "/runc", .bundlesDir = o.dataDir + "/bundles"});
  if (!engine) return makeError(engine.error());
  d.engine = std::move(*engine);
  auto net = CniNetwork::create(
      io, *d.supervisor,
      CniNetworkOptions{
          .dataDir = o.dataDir + "/network", .bridgeName = o.bridge, .subnet = o.subnet});
  if (!net) return makeError(net.error());
  d.network = std::move(*net);
  auto containers = d.engine->removeOrphans();
  if (!containers) return makeError(containers.error());
  auto namespaces = d.network->removeOrphans();
  if (!namespaces) return makeError(namespaces.error());
  if (!containers->empty() || !namespaces->empty()) {
    log::get("ecs")->info("removed what the previous run left: containers={} namespaces={}",
                          containers->size(), namespaces->size());
  }
  return d;
}

}  // namespace

int runEcs(const RuntimeOptions& options) {
  if (!log::setLevel(options.logLevel)) {
    std::cerr << "taskmesh ecs: unknown -log-level \"" << options.logLevel << "\"\n";
    return 2;
  }
  RuntimeOptions o = options;
  std::error_code ec;
  std::filesystem::create_directories(o.dataDir, ec);
  if (ec) return fail("-data-dir " + o.dataDir, Error{ErrorCode::kIo, ec.message()});
  o.dataDir = std::filesystem::absolute(o.dataDir).lexically_normal().string();
  asio::io_context io;
  auto drivers = openDrivers(io, o);
  if (!drivers) return fail("startup", drivers.error());
  auto registry = Registry::open(io, o.dataDir, ArnScheme{o.region, o.accountId});
  if (!registry) return fail("state", registry.error());
  Runtime runtime(io, **registry, *drivers->engine, *drivers->network, o);
  runtime.start();
  EcsApi api(runtime, ApiAccess::kFull);
  EcsApi taskApi(runtime, ApiAccess::kReadOnly);
  net::HttpHandler handler = [&api](net::HttpRequest& r) { return serveApi(&api, r); };
  net::HttpHandler taskHandler = [&taskApi](net::HttpRequest& r) { return serveApi(&taskApi, r); };
  net::HttpServer apiServer(io, net::HttpServerOptions{.maxBodyBytes = 1 << 20}, handler);
  auto apiPort = apiServer.listen(o.apiAddr);
  if (!apiPort) return fail("-api-addr", apiPort.error());
  // Tasks reach the runtime (metadata v4, and the ECS API) on the bridge's gateway address.
  net::HttpServer gatewayServer(io, net::HttpServerOptions{.freeBind = true}, taskHandler);
  std::string gatewayAddr =
      drivers->network->gatewayAddress() + ":" + std::to_string(o.metadataPort);
  auto gwPort = gatewayServer.listen(gatewayAddr);
  if (!gwPort) return fail("metadata endpoint " + gatewayAddr, gwPort.error());
  std::printf("taskmesh ecs: ECS API on %s:%u, task metadata on http://%s/v4/, data in %s\n",
              net::splitHostPort(o.apiAddr)->first.c_str(), *apiPort, gatewayAddr.c_str(),
              o.dataDir.c_str());
  std::fflush(stdout);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    log::get("ecs")->info("stopping every task");
    apiServer.stop();
    runtime.shutdown(kShutdownGrace, [&] {
      gatewayServer.stop();
      io.stop();
    });
  });
  io.run();
  // Final sweep: whatever did not stop in time is killed, and the engine's bundles and cgroup
  // parent and the network's namespaces and leases go too, so that nothing outlives the
  // runtime; then the bridge.
  auto containers = drivers->engine->removeOrphans();
  if (!containers) log::get("ecs")->warn("final sweep: {}", containers.error().message);
  auto namespaces = drivers->network->removeOrphans();
  if (!namespaces) log::get("ecs")->warn("final sweep: {}", namespaces.error().message);
  auto bridge = drivers->network->removeBridge();
  if (!bridge) log::get("ecs")->warn("bridge left in place: {}", bridge.error().message);
  return 0;
}

namespace {

Result<std::string> getInternal(const std::string& apiAddr, const std::string& path) {
  net::HttpClientRequest req{.method = "GET", .url = "http://" + apiAddr + path};
  auto resp = net::httpRequest(req);
  if (!resp) return makeError(resp.error());
  if (resp->status != 200) {
    return makeError(ErrorCode::kNotFound, std::to_string(resp->status) + " " + resp->body);
  }
  return resp->body;
}

}  // namespace

int printLogs(const std::string& apiAddr, const std::string& task, const std::string& container) {
  auto body = getInternal(apiAddr, "/taskmesh/v1/tasks/" + net::percentEncodePathSegment(task) +
                                       "/logs/" + net::percentEncodePathSegment(container));
  if (!body) return fail("logs", body.error());
  std::fwrite(body->data(), 1, body->size(), stdout);
  return 0;
}

int printTimeline(const std::string& apiAddr, const std::string& task) {
  auto body = getInternal(
      apiAddr, "/taskmesh/v1/tasks/" + net::percentEncodePathSegment(task) + "/timeline");
  if (!body) return fail("timeline", body.error());
  auto doc = parseJsonBounded(*body);
  if (!doc || !doc->is_object()) {
    return fail("timeline", Error{ErrorCode::kInvalidArgument, "the runtime sent no JSON"});
  }
  std::printf("%s (%s)\n", stringField(*doc, "taskArn").c_str(),
              stringField(*doc, "lastStatus").c_str());
  double first = 0;
  for (const auto& e : doc->value("events", nlohmann::json::array())) {
    double at = e.value("at", 0.0);
    if (first == 0) first = at;
    auto secs = static_cast<time_t>(at);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%H:%M:%S", &tm);
    int ms = static_cast<int>((at - static_cast<double>(secs)) * 1000);
    std::printf("%s.%03dZ  +%8.3fs  %-16s %-18s %s\n", when, ms, at - first,
                stringField(e, "subject").c_str(), stringField(e, "event").c_str(),
                stringField(e, "detail").c_str());
  }
  return 0;
}

}  // namespace taskmesh::runtime
