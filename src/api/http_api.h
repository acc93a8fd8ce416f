#pragma once
// The Consul-compatible HTTP API of `taskmesh server` (reference/consul-http-api.md).
//
// Thread: handle() and everything it calls run on the HTTP io_context's single thread, which
// also owns the WatchHub. Reads take the store's shared lock only inside Tables callbacks.
// Writes go through Cluster::apply (Raft) and answer once the command is applied.

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/query.h"
#include "base/result.h"
#include "net/asio.h"
#include "net/http.h"
#include "store/state_store.h"
#include "store/watch_hub.h"

namespace taskmesh::api {

// What the API needs from the consensus layer; src/server wires it to the Raft node.
struct Cluster {
  std::function<Awaitable<Result<store::ApplyResult>>(const store::Command&)> apply;
  std::function<bool()> isLeader;     // leader, with every earlier entry applied
  std::function<bool()> knownLeader;  // some server is known to lead
  std::function<std::string()> leaderAddress;
  std::function<std::vector<std::string>()> peers;
};

// The Connect CA operations that need keys, randomness or a clock, which the state machine
// must not touch; src/server provides them (server/connect_ca.h).
struct CaConfigUpdate {
  store::CaConfig config;
  bool forceWithoutCrossSigning = false;
};
struct ConnectHooks {
  // PUT /v1/connect/ca/configuration: validates nothing more, rotates the root, answers once
  // the new roots are applied.
  std::function<Awaitable<Result<void>>(const CaConfigUpdate&)> setCaConfig;
};

struct ServerInfo {
  std::string nodeName;
  std::string nodeId;
  std::string datacenter;
  std::string advertiseAddress;  // IP other nodes reach this server on
  uint16_t serverPort = 8300;
  std::string version;
  bool defaultIntentionAllow = true;  // -default-intention-policy; X-Consul-Default-ACL-Policy
};

inline constexpr size_t kMaxKVValueBytes = 512 * 1024;

class HttpApi {
 public:
  HttpApi(asio::io_context& io, store::StateStore& store, store::WatchHub& hub, Cluster cluster,
          ServerInfo info);

  Awaitable<net::HttpResponse> handle(net::HttpRequest& req);

  // Answers /v1/internal/<rest> (heartbeats; src/server owns them).
  using InternalHandler =
      std::function<net::HttpResponse(const net::HttpRequest&, std::string_view rest)>;
  void setInternalHandler(InternalHandler h) { internal_ = std::move(h); }
  void setConnectHooks(ConnectHooks h) { connectHooks_ = std::move(h); }

 private:
  // A read's answer and the index it reflects.
  struct Answer {
    uint64_t index = 0;
    net::HttpResponse response;
  };
  using Run = std::function<Answer(const store::Tables&)>;

  // Runs `run` now and, for ?index requests, again after every matching change until the
  // index moves past the requested one or ?wait runs out. Sets the X-Consul-* headers.
  //
  // g++ 12 destroys temporaries bound to coroutine parameters twice, so every coroutine here
  // takes references and callers pass named locals, never temporaries.
  Awaitable<net::HttpResponse> blocking(const net::HttpRequest& req, const store::WatchSpec& spec,
                                        const Run& run);
  Awaitable<net::HttpResponse> write(const store::Command& command, bool boolBody);
  void setReadHeaders(net::HttpResponse& r, uint64_t index, bool stale) const;

  Awaitable<net::HttpResponse> catalog(net::HttpRequest& req, std::string_view rest);
  Awaitable<net::HttpResponse> health(net::HttpRequest& req, std::string_view rest);
  Awaitable<net::HttpResponse> kv(net::HttpRequest& req, const std::string& key);
  Awaitable<net::HttpResponse> kvGet(net::HttpRequest& req, const std::string& key);
  net::HttpResponse status(const net::HttpRequest& req, std::string_view rest);
  // /v1/connect/* (connect_endpoint.cc): CA roots and configuration, intentions.
  Awaitable<net::HttpResponse> connect(net::HttpRequest& req, std::string_view rest);
  Awaitable<net::HttpResponse> caConfiguration(net::HttpRequest& req);
  Awaitable<net::HttpResponse> intentions(net::HttpRequest& req, std::string_view rest);
  Awaitable<net::HttpResponse> intentionExact(net::HttpRequest& req);
  void setPolicyHeader(net::HttpResponse& r) const;
  net::HttpResponse agent(const net::HttpRequest& req, std::string_view rest);

  // Answers of recent reads, keyed by path and query (minus index/wait), valid while the store
  // has applied nothing newer (`version` = Tables::lastIndex). Many watchers of one key, or
  // clients repeating one read, then share one encoding. HTTP thread only; cleared when full.
  struct CachedAnswer {
    uint64_t version = 0;
    Answer answer;
  };
  static constexpr size_t kMaxCachedAnswers = 1024;
  static constexpr size_t kMaxCachedBytes = 32 << 20;
  std::unordered_map<std::string, CachedAnswer> answers_;
  size_t answersBytes_ = 0;

  asio::io_context& io_;
  store::StateStore& store_;
  store::WatchHub& hub_;
  Cluster cluster_;
  ServerInfo info_;
  InternalHandler internal_;
  ConnectHooks connectHooks_;
};

net::HttpResponse errorResponse(const Error& e);
// 200 with `j` as compact JSON (invalid UTF-8 in strings replaced, never thrown on).
net::HttpResponse jsonResponse(const nlohmann::json& j);

}  // namespace taskmesh::api
