#include "init/service_health.h"

#include <cstdio>
#include <cstdlib>

#include "base/duration.h"
#include "init/mesh_init.h"
#include "net/http.h"
#include "net/http_client.h"

namespace taskmesh::init {

int runServiceHealth(const ServiceHealthOptions& options) {
  auto timeout = parsePositiveDurationFlag("-timeout", options.timeout);
  if (!timeout) {
    std::fprintf(stderr, "service-health: %s\n", timeout.error().message.c_str());
    return kServiceHealthNotPassing;
  }
  const char* env = std::getenv("CONSUL_HTTP_ADDR");
  auto agent = resolveAgentAddress(options.httpAddr, env ? env : "", "-http-addr");
  if (!agent) {
    std::fprintf(stderr, "service-health: %s\n", agent.error().message.c_str());
    return kServiceHealthNotPassing;
  }
  net::HttpClientRequest req;
  req.url = agent->baseUrl + "/v1/agent/health/service/name/" +
            net::percentEncodePathSegment(options.service) + "?format=text";
  req.timeout = *timeout;
  auto resp = net::httpRequest(req);
  if (!resp) {
    std::fprintf(stderr, "service-health: %s\n", resp.error().message.c_str());
    return kServiceHealthNotPassing;
  }
  std::string body = resp->body.substr(0, 200);
  std::printf("%s %s\n", options.service.c_str(), body.c_str());
  return resp->status == 200 ? kServiceHealthPassing : kServiceHealthNotPassing;
}

}  // namespace taskmesh::init
