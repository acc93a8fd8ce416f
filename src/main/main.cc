// taskmesh: one binary, one subcommand per role (DESIGN.md §1). main only parses flags and
// dispatches to each module's run().
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "init/discover_servers.h"
#include "init/mesh_init.h"
#include "init/net_dial.h"
#include "init/service_health.h"
#include "proxy/proxy.h"
#include "runtime/ecs_command.h"
#include "server/server.h"
#include "up/task_definition_command.h"
#include "up/up_command.h"

namespace {

// Consul's flags are single-dash long options (-data-dir); CLI11 wants --data-dir. Both
// spellings are accepted.
std::vector<std::string> normaliseFlags(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && a.size() > 2 && a[0] == '-' && a[1] != '-' &&
        !std::isdigit(static_cast<unsigned char>(a[1]))) {
      a = "-" + a;
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"taskmesh: a service mesh for container tasks"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "taskmesh 0.1.0 (Consul API 1.16 compatible)");

  taskmesh::server::ServerOptions server;
  auto* serverCmd =
      app.add_subcommand("server", "Run a control-plane server (Consul-compatible API)");
  serverCmd->add_option("--data-dir", server.dataDir, "Directory for the Raft log and snapshots")
      ->required();
  serverCmd->add_option("--http-addr", server.httpAddr, "HTTP API address")->capture_default_str();
  serverCmd->add_option("--bind", server.bindAddr, "Address for server-to-server (Raft) traffic")
      ->capture_default_str();
  serverCmd->add_option("--advertise", server.advertiseAddr, "Address advertised to other nodes");
  serverCmd->add_option("--server-port", server.serverPort, "Raft port")->capture_default_str();
  serverCmd->add_flag("--bootstrap", server.bootstrap,
                      "Bootstrap a new cluster with this server as its voter");
  serverCmd->add_option("--node", server.node, "Node name (default: host name)");
  serverCmd->add_option("--datacenter", server.datacenter, "Datacenter name")
      ->capture_default_str();
  serverCmd->add_option("--log-level", server.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();
  serverCmd
      ->add_option("--node-failure-timeout", server.nodeFailureTimeout,
                   "Silence after which an agent's serfHealth turns critical")
      ->capture_default_str();
  serverCmd
      ->add_option("--reconnect-timeout", server.reconnectTimeout,
                   "How long a failed node stays before it is reaped")
      ->capture_default_str();
  serverCmd
      ->add_option("--raft-snapshot-threshold", server.raftSnapshotThreshold,
                   "Raft entries since the last snapshot that make the next one due")
      ->check(CLI::Range(1u, 1u << 24))
      ->capture_default_str();
  serverCmd
      ->add_option("--raft-snapshot-interval", server.raftSnapshotInterval,
                   "How often a due snapshot is taken (staggered up to twice this); one is "
                   "taken anyway at 8x the threshold")
      ->capture_default_str();
  serverCmd
      ->add_option("--default-intention-policy", server.defaultIntentionPolicy,
                   "What a connection no intention matches gets: allow or deny "
                   "(Consul's acl.default_policy)")
      ->capture_default_str();

  taskmesh::agent::AgentOptions agent;
  auto* agentCmd = app.add_subcommand(
      "agent", "Run the client agent of a task: local agent API, checks, sync with the servers");
  agentCmd->add_option("--retry-join", agent.retryJoin, "Server address HOST[:PORT] (repeatable)");
  agentCmd->add_option("--retry-join-file", agent.retryJoinFile,
                       "File with server addresses (as written by discover-servers)");
  agentCmd->add_option("--node", agent.node, "Node name (default: host name)");
  agentCmd->add_option("--data-dir", agent.dataDir, "Directory for the agent's state")->required();
  agentCmd->add_option("--http-addr", agent.httpAddr, "Local HTTP API address")
      ->capture_default_str();
  agentCmd->add_option("--advertise", agent.advertise,
                       "Address of this node (default: first non-loopback IPv4)");
  agentCmd->add_option("--datacenter", agent.datacenter, "Datacenter name")->capture_default_str();
  agentCmd->add_flag("--leave-on-terminate", agent.leaveOnTerminate,
                     "Deregister the node on SIGTERM/SIGINT before exiting");
  agentCmd->add_flag("--enable-script-checks,--enable-local-script-checks",
                     agent.enableScriptChecks, "Allow script (Args) checks");
  agentCmd
      ->add_option("--sync-interval", agent.syncInterval,
                   "Period of the full anti-entropy sync (Go duration)")
      ->capture_default_str();
  agentCmd->add_option("--log-level", agent.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();

  taskmesh::init::DiscoverServersOptions discover;
  auto* discoverCmd = app.add_subcommand(
      "discover-servers", "Wait for the server task in ECS and write its IP to a file");
  discoverCmd->add_option("--cluster", discover.cluster,
                          "ECS cluster (default: from the task metadata endpoint)");
  discoverCmd->add_option("--service-name", discover.serviceName, "ECS service of the server");
  discoverCmd->add_option("--family", discover.family, "Task definition family of the server");
  discoverCmd->add_option("--container", discover.container, "Name of the server container")
      ->capture_default_str();
  discoverCmd->add_option("--out", discover.out, "File to write the server IP to")
      ->capture_default_str();
  discoverCmd->add_option("--timeout", discover.timeout, "How long to wait (Go duration)")
      ->capture_default_str();
  discoverCmd->add_option("--endpoint", discover.endpoint,
                          "ECS API endpoint (default: AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL)");
  discoverCmd->add_option("--region", discover.region,
                          "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the task ARN)");
  discoverCmd->add_option("--log-level", discover.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();

  taskmesh::init::NetDialOptions dial;
  auto* dialCmd = app.add_subcommand(
      "net-dial", "Exit 0 if a TCP connection to HOST:PORT succeeds, 2 otherwise");
  dialCmd->add_option("address", dial.address, "HOST:PORT")->required();
  dialCmd->add_option("--timeout", dial.timeout, "Connect timeout (Go duration)")
      ->capture_default_str();

  taskmesh::init::ServiceHealthOptions health;
  auto* healthCmd = app.add_subcommand(
      "service-health", "Exit 0 if the local agent reports the service passing, 1 otherwise");
  healthCmd->add_option("service", health.service, "Service name")->required();
  healthCmd->add_option("--http-addr", health.httpAddr,
                        "Agent address (default: CONSUL_HTTP_ADDR, then 127.0.0.1:8500)");
  healthCmd->add_option("--timeout", health.timeout, "Request timeout (Go duration)")
      ->capture_default_str();

  // ---- mesh-init (src/init/mesh_init.h) ----
  taskmesh::init::MeshInitOptions meshInit;
  auto* meshInitCmd = app.add_subcommand(
      "mesh-init",
      "Register the task's service and sidecar with the local agent; write the proxy bootstrap");
  meshInitCmd->add_option("--timeout", meshInit.timeout, "Bound on the whole run (Go duration)")
      ->capture_default_str();
  meshInitCmd->add_option("--config-file", meshInit.configFile,
                          "Config JSON file (default: env TASKMESH_CONFIG_JSON)");
  meshInitCmd->add_option("--log-level", meshInit.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();
  // ---- end mesh-init ----

  // ---- proxy (src/proxy/proxy.h) ----
  taskmesh::proxy::ProxyOptions proxy;
  auto* proxyCmd = app.add_subcommand(
      "proxy", "Run a task's sidecar proxy: mTLS public listener, upstream listeners, admin API");
  proxyCmd->add_option("-c", proxy.bootstrapFile, "Bootstrap JSON file written by mesh-init");
  proxyCmd->add_option("--proxy-id", proxy.proxyId, "Proxy service ID (instead of -c)");
  proxyCmd->add_option("--http-addr", proxy.httpAddr,
                       "Local agent HOST:PORT (default: CONSUL_HTTP_ADDR, then 127.0.0.1:8500)");
  proxyCmd->add_option("--token", proxy.token, "ACL token (default: CONSUL_HTTP_TOKEN)");
  proxyCmd->add_option("--admin-addr", proxy.adminAddr,
                       "Admin API IP:PORT: /ready /stats /config_dump /clusters (default: "
                       "127.0.0.1:19000)");
  proxyCmd->add_option("--concurrency", proxy.concurrency, "Worker threads")->capture_default_str();
  proxyCmd
      ->add_option("--tls-resumption", proxy.tlsResumption,
                   "Resume TLS 1.3 sessions between sidecars: tickets last 10 min and only "
                   "under the configuration that issued them (false: every connection does a "
                   "full handshake)")
      ->capture_default_str();
  proxyCmd
      ->add_option("--drain-timeout", proxy.drainTimeout,
                   "On SIGTERM, how long open connections may finish (Go duration)")
      ->capture_default_str();
  proxyCmd->add_option("--log-level", proxy.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();
  // ---- end proxy ----

  taskmesh::runtime::RuntimeOptions ecs;
  auto* ecsCmd = app.add_subcommand(
      "ecs",
      "Run the local ECS-compatible runtime (runc containers, a network namespace per task)");
  ecsCmd->require_subcommand(0, 1);
  ecsCmd->add_option("--data-dir", ecs.dataDir, "Directory for the runtime's state, logs, bundles");
  ecsCmd->add_option("--api-addr", ecs.apiAddr, "ECS API address")->capture_default_str();
  ecsCmd->add_option("--region", ecs.region, "Region in ARNs")->capture_default_str();
  ecsCmd->add_option("--account-id", ecs.accountId, "Account in ARNs")->capture_default_str();
  ecsCmd->add_option("--subnet", ecs.subnet, "Task IPs come from this CIDR")->capture_default_str();
  ecsCmd->add_option("--bridge", ecs.bridge, "Name of the tasks' bridge")->capture_default_str();
  ecsCmd
      ->add_option("--metadata-port", ecs.metadataPort,
                   "Port of the task metadata endpoint on the bridge's gateway address")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  ecsCmd
      ->add_option("--stop-timeout", ecs.stopTimeoutSeconds,
                   "Seconds from SIGTERM to SIGKILL for containers without stopTimeout")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  ecsCmd->add_option("--log-level", ecs.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();
  std::string ecsClientAddr = "127.0.0.1:4566", ecsTask, ecsContainer;
  auto* ecsLogsCmd = ecsCmd->add_subcommand("logs", "Print a container's stdout and stderr");
  ecsLogsCmd->add_option("task", ecsTask, "Task id or ARN")->required();
  ecsLogsCmd->add_option("container", ecsContainer, "Container name")->required();
  ecsLogsCmd->add_option("--api-addr", ecsClientAddr, "The runtime's API address")
      ->capture_default_str();
  auto* ecsTimelineCmd =
      ecsCmd->add_subcommand("timeline", "Print every transition of a task and its containers");
  ecsTimelineCmd->add_option("task", ecsTask, "Task id or ARN")->required();
  ecsTimelineCmd->add_option("--api-addr", ecsClientAddr, "The runtime's API address")
      ->capture_default_str();

  taskmesh::up::TaskDefinitionOptions td;
  auto* tdCmd = app.add_subcommand(
      "task-definition",
      "Write the mesh task definition for an app (or the server's), for the local runtime or ECS");
  tdCmd->add_option("--app", td.appFile, "The app's task definition (RegisterTaskDefinition JSON)");
  tdCmd->add_option("--mesh-config", td.meshConfigFile,
                    "Mesh config JSON (service, proxy: the fields of TASKMESH_CONFIG_JSON)");
  tdCmd->add_flag("--server", td.server, "Write the server's task definition instead");
  tdCmd->add_option("--image", td.mesh.image, "Image of the taskmesh containers")
      ->capture_default_str();
  tdCmd
      ->add_option("--server-service", td.mesh.serverService,
                   "ECS service of the server task (for discover-servers)")
      ->capture_default_str();
  tdCmd->add_option("--family", td.serverTask.family, "Family of the server task")
      ->capture_default_str();
  tdCmd
      ->add_option("--default-intention-policy", td.serverTask.defaultIntentionPolicy,
                   "The server's default: allow or deny")
      ->capture_default_str();
  tdCmd->add_option("-o,--out", td.outFile, "Write here instead of stdout");

  taskmesh::up::UpOptions up;
  auto* upCmd = app.add_subcommand(
      "up", "Run a stack (examples/NAME) on the local ECS runtime until Ctrl-C; print T0-T4");
  upCmd->add_option("dir", up.dir, "Stack directory with stack.json")->required();
  upCmd->add_option("--api-addr", up.apiAddr, "ECS runtime to use, or to start")
      ->capture_default_str();
  upCmd->add_option("--data-dir", up.dataDir,
                    "Data dir of a runtime that up starts (default: a temp dir, removed)");
  upCmd->add_option("--subnet", up.subnet, "Task subnet of a runtime that up starts");
  upCmd->add_option("--timeout", up.timeout, "How long to wait for the mesh to be ready")
      ->capture_default_str();
  upCmd->add_option("--report", up.reportFile, "Write tasks and their T0-T4 here as JSON");
  upCmd->add_option("--image", up.image, "Image of the taskmesh containers")->capture_default_str();
  upCmd->add_option("--log-level", up.logLevel, "trace, debug, info, warn, err")
      ->capture_default_str();

  std::vector<std::string> args = normaliseFlags(argc, argv);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (ecsLogsCmd->parsed())
    return taskmesh::runtime::printLogs(ecsClientAddr, ecsTask, ecsContainer);
  if (ecsTimelineCmd->parsed()) return taskmesh::runtime::printTimeline(ecsClientAddr, ecsTask);
  if (ecsCmd->parsed()) {
    if (ecs.dataDir.empty()) {
      std::fprintf(stderr, "taskmesh ecs: -data-dir is required\n");
      return 2;
    }
    return taskmesh::runtime::runEcs(ecs);
  }
  if (tdCmd->parsed()) {
    td.serverTask.image = td.mesh.image;
    return taskmesh::up::runTaskDefinition(td);
  }
  if (upCmd->parsed()) return taskmesh::up::runUp(up);
  if (serverCmd->parsed()) return taskmesh::server::run(server);
  if (agentCmd->parsed()) return taskmesh::agent::run(agent);
  if (discoverCmd->parsed()) return taskmesh::init::runDiscoverServers(discover);
  if (dialCmd->parsed()) return taskmesh::init::runNetDial(dial);
  if (healthCmd->parsed()) return taskmesh::init::runServiceHealth(health);
  if (meshInitCmd->parsed()) return taskmesh::init::runMeshInit(meshInit);  // mesh-init
  if (proxyCmd->parsed()) return taskmesh::proxy::run(proxy);               // proxy
  return 2;
}
