#include "proxy/options.h"

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "base/file.h"
#include "base/json.h"
#include "net/http_server.h"

namespace taskmesh::proxy {
namespace {

using nlohmann::json;

Result<ProxyConfig> invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, std::move(message));
}

// The fields of the bootstrap file the proxy reads; the others mesh-init writes
// (serviceId, serviceName, publicListenerPort, localServicePort, upstreams) are tolerated.
struct Bootstrap {
  std::string proxyId, agentHttpAddr, token, adminAddr;
};

Result<Bootstrap> readBootstrap(const std::string& path) {
  auto fail = [&](const std::string& what) -> Result<Bootstrap> {
    return makeError(ErrorCode::kInvalidArgument, "bootstrap file " + path + ": " + what);
  };
  auto text = readFile(path);
  if (!text) {
    return makeError(ErrorCode::kIo, "cannot read bootstrap file: " + text.error().message);
  }
  auto j = parseJsonBounded(*text);
  if (!j) return fail("invalid JSON: " + j.error().message);
  if (!j->is_object()) return fail("expected a JSON object");
  Bootstrap b;
  struct Field {
    const char* key;
    std::string* out;
    bool required;
  };
  for (const Field& f :
       {Field{"proxyId", &b.proxyId, true}, Field{"agentHttpAddr", &b.agentHttpAddr, true},
        Field{"token", &b.token, false}, Field{"adminAddr", &b.adminAddr, false}}) {
    auto it = j->find(f.key);
    if (it == j->end() || it->is_null()) {
      if (f.required) return fail(std::string(f.key) + ": is required");
      continue;
    }
    if (!it->is_string() || (f.required && it->get<std::string>().empty())) {
      return fail(std::string(f.key) +
                  (f.required ? ": expected a non-empty string" : ": expected a string"));
    }
    *f.out = it->get<std::string>();
  }
  return b;
}

Result<void> checkAdminAddr(const std::string& address, const std::string& source) {
  auto hp = net::splitHostPort(address);
  if (!hp) return makeError(ErrorCode::kInvalidArgument, source + ": " + hp.error().message);
  boost::system::error_code ec;
  boost::asio::ip::make_address(hp->first, ec);
  if (ec) {
    return makeError(ErrorCode::kInvalidArgument,
                     source + ": \"" + address + "\" must be an IP address and a port");
  }
  return {};
}

}  // namespace

ProxyEnvironment ProxyEnvironment::fromProcess() {
  ProxyEnvironment env;
  if (const char* v = std::getenv("CONSUL_HTTP_ADDR")) env.consulHttpAddr = v;
  if (const char* v = std::getenv("CONSUL_HTTP_TOKEN")) env.consulHttpToken = v;
  return env;
}

Result<std::string> parseAgentAddress(std::string_view address, std::string_view source) {
  std::string where(source);
  std::string a(address);
  if (a.starts_with("https://")) {
    return makeError(ErrorCode::kInvalidArgument,
                     where + ": \"" + a + "\": https is not supported for the local agent");
  }
  if (a.starts_with("http://")) a = a.substr(7);
  if (!a.empty() && a.back() == '/') a.pop_back();
  if (a.empty() || a.find('/') != std::string::npos) {
    return makeError(ErrorCode::kInvalidArgument,
                     where + ": \"" + std::string(address) + "\": expected HOST:PORT");
  }
  auto hp = net::splitHostPort(a);
  if (!hp || hp->second == 0) {
    return makeError(ErrorCode::kInvalidArgument,
                     where + ": \"" + std::string(address) + "\": expected HOST:PORT");
  }
  return a;
}

Result<ProxyConfig> resolveProxyConfig(const ProxyOptions& o, const ProxyEnvironment& env) {
  ProxyConfig c;
  Bootstrap b;
  if (!o.bootstrapFile.empty()) {
    auto read = readBootstrap(o.bootstrapFile);
    if (!read) return makeError(read.error());
    b = std::move(*read);
  }
  std::string bootstrapSource = "bootstrap file " + o.bootstrapFile + ": ";

  c.proxyId = !o.proxyId.empty() ? o.proxyId : b.proxyId;
  if (c.proxyId.empty()) return invalid("-proxy-id or -c BOOTSTRAP is required");

  std::string addr, source;
  if (!o.httpAddr.empty()) {
    addr = o.httpAddr, source = "-http-addr";
  } else if (!b.agentHttpAddr.empty()) {
    addr = b.agentHttpAddr, source = bootstrapSource + "agentHttpAddr";
  } else if (!env.consulHttpAddr.empty()) {
    addr = env.consulHttpAddr, source = "CONSUL_HTTP_ADDR";
  } else {
    addr = kDefaultAgentAddr, source = "default agent address";
  }
  auto agent = parseAgentAddress(addr, source);
  if (!agent) return makeError(agent.error());
  c.agentHostPort = *agent;

  c.token = !o.token.empty() ? o.token : !b.token.empty() ? b.token : env.consulHttpToken;

  if (!o.adminAddr.empty()) {
    c.adminAddr = o.adminAddr;
    if (auto ok = checkAdminAddr(c.adminAddr, "-admin-addr"); !ok) return makeError(ok.error());
  } else if (!b.adminAddr.empty()) {
    c.adminAddr = b.adminAddr;
    if (auto ok = checkAdminAddr(c.adminAddr, bootstrapSource + "adminAddr"); !ok) {
      return makeError(ok.error());
    }
  }

  if (o.concurrency < 1 || o.concurrency > kMaxConcurrency) {
    return invalid("--concurrency must be 1.." + std::to_string(kMaxConcurrency) + ", got " +
                   std::to_string(o.concurrency));
  }
  c.concurrency = o.concurrency;
  c.tlsResumption = o.tlsResumption;
  auto drain = parsePositiveDurationFlag("-drain-timeout", o.drainTimeout);
  if (!drain) return makeError(drain.error());
  c.drainTimeout = *drain;
  return c;
}

}  // namespace taskmesh::proxy
