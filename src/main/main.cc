// taskmesh: one binary, one subcommand per role (DESIGN.md §1). main only parses flags and
// dispatches to each module's run().
#include <CLI/CLI.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "server/server.h"

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

  std::vector<std::string> args = normaliseFlags(argc, argv);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serverCmd->parsed()) return taskmesh::server::run(server);
  return 2;
}
