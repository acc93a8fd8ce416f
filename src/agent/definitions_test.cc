#include "agent/definitions.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taskmesh::agent {
namespace {

using namespace std::chrono_literals;

Result<CheckDefinition> decodeCheck(const std::string& text, bool scripts = false) {
  DecodeOptions options;
  options.enableScriptChecks = scripts;
  return decodeCheckDefinition(Json::parse(text), "", options);
}

// The error message of a failed decode ("" when it succeeded, so EXPECT_THAT-style checks on
// the text fail visibly).
template <typename T>
std::string errorOf(const Result<T>& r) {
  if (r) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
  return r.error().message;
}

// Hands out `port` and remembers which sidecar asked.
struct FakePorts {
  int port = 21000;
  std::vector<std::string> asked;
  PortAllocator allocator() {
    return [this](const std::string& id) {
      asked.push_back(id);
      return port;
    };
  }
};

Result<std::vector<ServiceDefinition>> decodeService(const std::string& text, FakePorts& ports,
                                                     bool scripts = false) {
  DecodeOptions options;
  options.enableScriptChecks = scripts;
  return decodeServiceRegistration(Json::parse(text), options, ports.allocator());
}

TEST(CheckDefinitionTest, DurationsMayBeNanosecondNumbers) {
  // Consul's agent also takes time.Duration as JSON numbers (nanoseconds).
  auto c = decodeCheck(R"({"Name": "n", "TCP": "127.0.0.1:1", "Interval": 1500000000,
                           "Timeout": 250000000})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->interval, 1500ms);
  EXPECT_EQ(c->timeout, 250ms);
  EXPECT_NE(errorOf(decodeCheck(R"({"Name": "n", "TTL": -1})")).find("TTL"), std::string::npos);
}

TEST(ServiceDefinitionTest, EmptyCheckObjectMeansNoCheck) {
  FakePorts ports;
  auto defs = decodeService(R"({"Name": "web", "Check": {}})", ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 1u);
  EXPECT_TRUE(defs->front().checks.empty());
}

// --- checks: each kind, with its defaults -------------------------------------------------------

TEST(CheckDefinitionTest, HttpCheckWithMethodHeaderAndBody) {
  auto c = decodeCheck(R"({"Name": "api health", "HTTP": "http://127.0.0.1:8080/health",
                           "Method": "POST", "Header": {"X-Token": ["a", "b"], "Accept": ["*/*"]},
                           "Body": "{\"ping\":1}", "Interval": "5s", "Notes": "n"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CheckKind::kHttp);
  EXPECT_STREQ(kindName(c->kind), "http");
  EXPECT_EQ(c->id, "api health");  // ID defaults to Name
  EXPECT_EQ(c->name, "api health");
  EXPECT_EQ(c->serviceId, "");
  EXPECT_EQ(c->notes, "n");
  EXPECT_EQ(c->http, "http://127.0.0.1:8080/health");
  EXPECT_EQ(c->method, "POST");
  EXPECT_EQ(c->header.at("X-Token"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c->header.at("Accept"), (std::vector<std::string>{"*/*"}));
  EXPECT_EQ(c->body, "{\"ping\":1}");
  EXPECT_EQ(c->interval, Millis(5000));
  EXPECT_EQ(c->timeout, Millis(10000));  // default 10s
  EXPECT_EQ(c->initialStatus, "critical");
  EXPECT_EQ(c->outputMaxSize, 4096u);
}

TEST(CheckDefinitionTest, HttpMethodDefaultsToGet) {
  auto c = decodeCheck(R"({"Name": "h", "HTTP": "http://127.0.0.1/", "Interval": "1s"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->method, "GET");
  EXPECT_TRUE(c->header.empty());
}

TEST(CheckDefinitionTest, TcpCheckWithTimeout) {
  auto c = decodeCheck(
      R"({"ID": "db-port", "Name": "db", "TCP": "127.0.0.1:5432", "Interval": "10s",
          "Timeout": "2s"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CheckKind::kTcp);
  EXPECT_EQ(c->id, "db-port");
  EXPECT_EQ(c->tcp, "127.0.0.1:5432");
  EXPECT_EQ(c->interval, Millis(10000));
  EXPECT_EQ(c->timeout, Millis(2000));
}

TEST(CheckDefinitionTest, TtlCheckAndCheckIdSpelling) {
  auto c = decodeCheck(R"({"CheckID": "ttl-1", "Name": "t", "TTL": "30s", "ServiceID": "web"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CheckKind::kTtl);
  EXPECT_EQ(c->id, "ttl-1");
  EXPECT_EQ(c->serviceId, "web");
  EXPECT_EQ(c->ttl, Millis(30000));
  EXPECT_EQ(c->interval, Millis(0));
}

TEST(CheckDefinitionTest, ScriptCheckDefaultsTo30sTimeout) {
  auto c = decodeCheck(R"({"Name": "s", "Args": ["/bin/check", "-v"], "Interval": "1s"})",
                       /*scripts=*/true);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CheckKind::kScript);
  EXPECT_EQ(c->args, (std::vector<std::string>{"/bin/check", "-v"}));
  EXPECT_EQ(c->timeout, Millis(30000));

  auto alias = decodeCheck(R"({"Name": "s", "ScriptArgs": ["true"], "Interval": "1s"})", true);
  ASSERT_TRUE(alias) << alias.error().message;
  EXPECT_EQ(alias->args, (std::vector<std::string>{"true"}));
}

TEST(CheckDefinitionTest, AliasServiceCheck) {
  auto c = decodeCheck(R"({"Name": "a", "AliasService": "web-1"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CheckKind::kAlias);
  EXPECT_EQ(c->aliasService, "web-1");
  EXPECT_EQ(c->aliasNode, "");
}

TEST(CheckDefinitionTest, StatusAndThresholds) {
  auto c = decodeCheck(R"({"Name": "t", "TTL": "1s", "Status": "passing",
                           "SuccessBeforePassing": 2, "FailuresBeforeCritical": 3})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->initialStatus, "passing");
  EXPECT_EQ(c->successBeforePassing, 2);
  EXPECT_EQ(c->failuresBeforeCritical, 3);
  EXPECT_EQ(c->failuresBeforeWarning, 3);  // defaults to FailuresBeforeCritical

  auto given = decodeCheck(R"({"Name": "t", "TTL": "1s", "FailuresBeforeWarning": 1,
                               "FailuresBeforeCritical": 3})");
  ASSERT_TRUE(given) << given.error().message;
  EXPECT_EQ(given->failuresBeforeWarning, 1);

  // Consul cannot tell an explicit 0 from an absent field: 0 means "same as critical".
  auto zero = decodeCheck(R"({"Name": "t", "TTL": "1s", "FailuresBeforeWarning": 0,
                              "FailuresBeforeCritical": 3})");
  ASSERT_TRUE(zero) << zero.error().message;
  EXPECT_EQ(zero->failuresBeforeWarning, 3);
}

TEST(CheckDefinitionTest, SnakeCaseKeysAreAccepted) {
  auto c = decodeCheck(R"({"name": "x", "check_id": "x-1", "service_id": "web",
                           "http": "http://127.0.0.1:9/", "interval": "2s", "timeout": "1s",
                           "deregister_critical_service_after": "90m",
                           "success_before_passing": 2, "failures_before_critical": 4,
                           "failures_before_warning": 1, "output_max_size": 100})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->id, "x-1");
  EXPECT_EQ(c->serviceId, "web");
  EXPECT_EQ(c->kind, CheckKind::kHttp);
  EXPECT_EQ(c->interval, Millis(2000));
  EXPECT_EQ(c->timeout, Millis(1000));
  EXPECT_EQ(c->deregisterCriticalServiceAfter, std::chrono::minutes(90));
  EXPECT_EQ(c->successBeforePassing, 2);
  EXPECT_EQ(c->failuresBeforeCritical, 4);
  EXPECT_EQ(c->failuresBeforeWarning, 1);
  EXPECT_EQ(c->outputMaxSize, 100u);

  auto alias = decodeCheck(R"({"name": "a", "alias_service": "web"})");
  ASSERT_TRUE(alias) << alias.error().message;
  EXPECT_EQ(alias->aliasService, "web");
}

TEST(CheckDefinitionTest, StateFileRoundTrip) {
  auto c = decodeCheck(R"({"ID": "h1", "Name": "h", "ServiceID": "web", "Notes": "n",
                           "HTTP": "http://127.0.0.1:1/x", "Method": "PUT",
                           "Header": {"A": ["1"]}, "Body": "b", "Interval": "3s",
                           "Timeout": "1s", "DeregisterCriticalServiceAfter": "1m",
                           "SuccessBeforePassing": 2, "FailuresBeforeWarning": 1,
                           "FailuresBeforeCritical": 3, "Status": "warning"})");
  ASSERT_TRUE(c) << c.error().message;
  auto back = decodeCheckDefinition(c->toJson(), "Checks", DecodeOptions{});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, "h1");
  EXPECT_EQ(back->serviceId, "web");
  EXPECT_EQ(back->kind, CheckKind::kHttp);
  EXPECT_EQ(back->method, "PUT");
  EXPECT_EQ(back->header, c->header);
  EXPECT_EQ(back->body, "b");
  EXPECT_EQ(back->interval, c->interval);
  EXPECT_EQ(back->timeout, c->timeout);
  EXPECT_EQ(back->deregisterCriticalServiceAfter, c->deregisterCriticalServiceAfter);
  EXPECT_EQ(back->failuresBeforeWarning, 1);
  EXPECT_EQ(back->initialStatus, "warning");
  Json def = c->definitionJson();
  EXPECT_EQ(def["HTTP"], "http://127.0.0.1:1/x");
  EXPECT_EQ(def["Interval"], "3s");
  EXPECT_EQ(def["DeregisterCriticalServiceAfter"], "1m0s");
}

// --- checks: errors name the field -------------------------------------------------------------

TEST(CheckDefinitionErrorTest, BadDurationNamesTheField) {
  // Consul's Go api test expects "invalid duration" for DeregisterCriticalServiceAfter: "nope".
  std::string e = errorOf(
      decodeCheck(R"({"Name": "x", "TTL": "10s", "DeregisterCriticalServiceAfter": "nope"})"));
  EXPECT_NE(e.find("invalid duration"), std::string::npos) << e;
  EXPECT_NE(e.find("DeregisterCriticalServiceAfter"), std::string::npos) << e;

  e = errorOf(decodeCheck(R"({"Name": "x", "HTTP": "http://127.0.0.1/", "Interval": "ten"})"));
  EXPECT_NE(e.find("Interval"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid duration"), std::string::npos) << e;

  e = errorOf(decodeCheck(R"({"Name": "x", "TTL": "-5s"})"));
  EXPECT_NE(e.find("TTL"), std::string::npos) << e;

  e = errorOf(decodeCheck(R"({"Name": "x", "TTL": 10})"));
  EXPECT_NE(e.find("TTL"), std::string::npos) << e;
}

TEST(CheckDefinitionErrorTest, UnknownStatusIsRejected) {
  std::string e = errorOf(decodeCheck(R"({"Name": "x", "TTL": "10s", "Status": "fluffy"})"));
  EXPECT_NE(e.find("Status"), std::string::npos) << e;
  EXPECT_NE(e.find("fluffy"), std::string::npos) << e;
}

TEST(CheckDefinitionErrorTest, IntervalRequiredForHttpTcpAndScript) {
  for (const char* body :
       {R"({"Name": "x", "HTTP": "http://127.0.0.1/"})", R"({"Name": "x", "TCP": "127.0.0.1:80"})",
        R"({"Name": "x", "Args": ["true"]})"}) {
    std::string e = errorOf(decodeCheck(body, /*scripts=*/true));
    EXPECT_NE(e.find("Interval"), std::string::npos) << body << " -> " << e;
    EXPECT_NE(e.find("required"), std::string::npos) << body << " -> " << e;
  }
}

TEST(CheckDefinitionErrorTest, ExactlyOneKind) {
  std::string two = errorOf(decodeCheck(
      R"({"Name": "x", "HTTP": "http://127.0.0.1/", "TCP": "127.0.0.1:80", "Interval": "1s"})"));
  EXPECT_NE(two.find("more than one"), std::string::npos) << two;
  std::string ttlAndAlias =
      errorOf(decodeCheck(R"({"Name": "x", "TTL": "1s", "AliasService": "w"})"));
  EXPECT_NE(ttlAndAlias.find("more than one"), std::string::npos) << ttlAndAlias;
  std::string none = errorOf(decodeCheck(R"({"Name": "x", "Interval": "1s"})"));
  EXPECT_NE(none.find("must have one of"), std::string::npos) << none;
}

TEST(CheckDefinitionErrorTest, ScriptChecksNeedToBeEnabled) {
  std::string e = errorOf(decodeCheck(R"({"Name": "x", "Args": ["true"], "Interval": "1s"})"));
  EXPECT_NE(e.find("Scripts are disabled"), std::string::npos) << e;
  EXPECT_NE(e.find("enable_script_checks"), std::string::npos) << e;
}

TEST(CheckDefinitionErrorTest, BadTcpAddress) {
  for (const char* tcp : {"nope", "127.0.0.1:0", "127.0.0.1:http", ":80"}) {
    std::string body = std::string(R"({"Name": "x", "Interval": "1s", "TCP": ")") + tcp + R"("})";
    std::string e = errorOf(decodeCheck(body));
    EXPECT_NE(e.find("TCP"), std::string::npos) << tcp << " -> " << e;
  }
}

TEST(CheckDefinitionErrorTest, OnlyHttpAndHttpsUrls) {
  // https checks run over verified TLS since the client speaks it (net: https in the client).
  auto https = decodeCheck(R"({"Name": "x", "HTTP": "https://127.0.0.1/", "Interval": "1s"})");
  ASSERT_TRUE(https) << https.error().message;
  EXPECT_EQ(https->kind, CheckKind::kHttp);
  for (const char* url : {"ftp://127.0.0.1/", "127.0.0.1/health", "http://", "http://a b/"}) {
    std::string body = std::string(R"({"Name": "x", "Interval": "1s", "HTTP": ")") + url + R"("})";
    std::string e = errorOf(decodeCheck(body));
    EXPECT_NE(e.find("HTTP"), std::string::npos) << url << " -> " << e;
    EXPECT_NE(e.find("invalid URL"), std::string::npos) << url << " -> " << e;
  }
}

TEST(CheckDefinitionErrorTest, OtherRejections) {
  EXPECT_NE(errorOf(decodeCheck(R"({"TTL": "1s"})")).find("Missing check name"), std::string::npos);
  std::string header = errorOf(decodeCheck(
      R"({"Name": "x", "HTTP": "http://127.0.0.1/", "Interval": "1s", "Header": {"A": "1"}})"));
  EXPECT_NE(header.find("Header"), std::string::npos) << header;
  std::string grpc =
      errorOf(decodeCheck(R"({"Name": "x", "GRPC": "127.0.0.1:1", "Interval": "1s"})"));
  EXPECT_NE(grpc.find("not supported"), std::string::npos) << grpc;
  std::string notObject = errorOf(decodeCheckDefinition(Json::array(), "Check", DecodeOptions{}));
  EXPECT_NE(notObject.find("Check"), std::string::npos) << notObject;
}

// --- service registrations ---------------------------------------------------------------------

TEST(ServiceRegistrationTest, NameIsRequired) {
  FakePorts ports;
  EXPECT_EQ(errorOf(decodeService(R"({"ID": "web-1", "Port": 80})", ports)),
            "Missing service name");
  EXPECT_EQ(errorOf(decodeService(R"({"Name": "", "Port": 80})", ports)), "Missing service name");
  EXPECT_NE(errorOf(decodeService(R"([1])", ports)), "");
}

TEST(ServiceRegistrationTest, IdDefaultsToNameAndOneCheckGetsServiceId) {
  FakePorts ports;
  auto defs = decodeService(
      R"({"Name": "web", "Port": 8080, "Tags": ["v1"], "Check": {"TTL": "30s"}})", ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 1u);
  const ServiceDefinition& d = defs->front();
  EXPECT_EQ(d.service.id, "web");
  EXPECT_EQ(d.service.service, "web");
  EXPECT_EQ(d.service.port, 8080);
  EXPECT_EQ(d.service.tags, (std::vector<std::string>{"v1"}));
  ASSERT_EQ(d.checks.size(), 1u);
  EXPECT_EQ(d.checks[0].id, "service:web");
  EXPECT_EQ(d.checks[0].name, "Service 'web' check");
  EXPECT_EQ(d.checks[0].serviceId, "web");
  EXPECT_TRUE(ports.asked.empty());
}

TEST(ServiceRegistrationTest, SeveralChecksAreNumberedFromOne) {
  FakePorts ports;
  auto defs = decodeService(R"({"ID": "web-1", "Name": "web",
      "Check": {"TTL": "30s"},
      "Checks": [{"TCP": "127.0.0.1:80", "Interval": "10s"},
                 {"CheckID": "mine", "Name": "Mine", "TTL": "5s"}]})",
                            ports);
  ASSERT_TRUE(defs) << defs.error().message;
  const auto& checks = defs->front().checks;
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].id, "service:web-1:1");
  EXPECT_EQ(checks[0].kind, CheckKind::kTtl);
  EXPECT_EQ(checks[1].id, "service:web-1:2");
  EXPECT_EQ(checks[1].kind, CheckKind::kTcp);
  EXPECT_EQ(checks[1].name, "Service 'web' check");
  EXPECT_EQ(checks[2].id, "mine");
  EXPECT_EQ(checks[2].name, "Mine");
  for (const auto& c : checks) EXPECT_EQ(c.serviceId, "web-1");
}

TEST(ServiceRegistrationTest, CheckErrorsNameTheirPlace) {
  FakePorts ports;
  std::string e = errorOf(decodeService(R"({"Name": "web", "Check": {"TTL": "nope"}})", ports));
  EXPECT_NE(e.find("Check.TTL"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid duration"), std::string::npos) << e;
  e = errorOf(decodeService(
      R"({"Name": "web", "Checks": [{"TTL": "1s"}, {"HTTP": "http://127.0.0.1/"}]})", ports));
  EXPECT_NE(e.find("Checks[1].Interval"), std::string::npos) << e;
  e = errorOf(
      decodeService(R"({"Name": "web", "Check": {"TTL": "1s", "ServiceID": "other"}})", ports));
  EXPECT_NE(e.find("ServiceID"), std::string::npos) << e;
  e = errorOf(decodeService(R"({"Name": "web", "Checks": {"TTL": "1s"}})", ports));
  EXPECT_NE(e.find("Checks"), std::string::npos) << e;
}

TEST(ServiceRegistrationTest, SnakeCaseServiceAndSidecar) {
  FakePorts ports;
  auto defs = decodeService(R"({"name": "web", "port": 8080, "enable_tag_override": true,
                                "check": {"ttl": "10s"},
                                "connect": {"sidecar_service": {}}})",
                            ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 2u);
  EXPECT_TRUE((*defs)[0].service.enableTagOverride);
  EXPECT_EQ((*defs)[0].checks.size(), 1u);
  EXPECT_EQ((*defs)[1].service.id, "web-sidecar-proxy");
}

TEST(ServiceRegistrationTest, SidecarServiceExpansion) {
  FakePorts ports;
  ports.port = 21003;
  auto defs = decodeService(R"({"ID": "web-1", "Name": "web", "Port": 8080,
      "Tags": ["v1"], "Meta": {"version": "1"},
      "Check": {"TTL": "30s"},
      "Connect": {"SidecarService": {}}})",
                            ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 2u);
  const store::Service& parent = (*defs)[0].service;
  EXPECT_EQ(parent.id, "web-1");
  EXPECT_TRUE(parent.connect.is_null()) << parent.connect.dump();  // the nested sidecar goes
  EXPECT_EQ((*defs)[0].checks.size(), 1u);

  const ServiceDefinition& sc = (*defs)[1];
  EXPECT_EQ(sc.service.id, "web-1-sidecar-proxy");
  EXPECT_EQ(sc.service.service, "web-sidecar-proxy");
  EXPECT_EQ(sc.service.kind, "connect-proxy");
  EXPECT_EQ(sc.service.port, 21003);
  EXPECT_EQ(ports.asked, (std::vector<std::string>{"web-1-sidecar-proxy"}));
  EXPECT_EQ(sc.service.tags, (std::vector<std::string>{"v1"}));
  EXPECT_EQ(sc.service.meta, (store::StringMap{{"version", "1"}}));
  const Json& proxy = sc.service.proxy;
  EXPECT_EQ(proxy["DestinationServiceName"], "web");
  EXPECT_EQ(proxy["DestinationServiceID"], "web-1");
  EXPECT_EQ(proxy["LocalServiceAddress"], "127.0.0.1");
  EXPECT_EQ(proxy["LocalServicePort"], 8080);

  ASSERT_EQ(sc.checks.size(), 2u);
  const CheckDefinition& listening = sc.checks[0];
  EXPECT_EQ(listening.id, "service:web-1-sidecar-proxy:1");
  EXPECT_EQ(listening.name, "Connect Sidecar Listening");
  EXPECT_EQ(listening.serviceId, "web-1-sidecar-proxy");
  EXPECT_EQ(listening.kind, CheckKind::kTcp);
  EXPECT_EQ(listening.tcp, "127.0.0.1:21003");
  EXPECT_EQ(listening.interval, Millis(10000));
  EXPECT_GT(listening.timeout.count(), 0);
  const CheckDefinition& alias = sc.checks[1];
  EXPECT_EQ(alias.id, "service:web-1-sidecar-proxy:2");
  EXPECT_EQ(alias.name, "Connect Sidecar Aliasing web-1");
  EXPECT_EQ(alias.serviceId, "web-1-sidecar-proxy");
  EXPECT_EQ(alias.kind, CheckKind::kAlias);
  EXPECT_EQ(alias.aliasService, "web-1");
}

TEST(ServiceRegistrationTest, SidecarKeepsWhatItGives) {
  FakePorts ports;
  auto defs = decodeService(R"({"Name": "web", "Port": 8080, "Tags": ["v1"],
      "Connect": {"Native": false, "SidecarService": {
        "Name": "proxy", "Port": 20000, "Tags": ["sc"],
        "Proxy": {"LocalServicePort": 9090, "Upstreams": [
          {"DestinationName": "db", "LocalBindPort": 9191}]},
        "Check": {"TTL": "10s"}}}})",
                            ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 2u);
  EXPECT_EQ((*defs)[0].service.connect, Json({{"Native", false}}));
  const ServiceDefinition& sc = (*defs)[1];
  EXPECT_TRUE(ports.asked.empty());
  EXPECT_EQ(sc.service.id, "web-sidecar-proxy");
  EXPECT_EQ(sc.service.service, "proxy");
  EXPECT_EQ(sc.service.port, 20000);
  EXPECT_EQ(sc.service.tags, (std::vector<std::string>{"sc"}));
  EXPECT_EQ(sc.service.proxy["LocalServicePort"], 9090);
  EXPECT_EQ(sc.service.proxy["DestinationServiceName"], "web");
  EXPECT_EQ(sc.service.proxy["Upstreams"][0]["DestinationName"], "db");
  // Its own check replaces the defaults and is named after the sidecar.
  ASSERT_EQ(sc.checks.size(), 1u);
  EXPECT_EQ(sc.checks[0].id, "service:web-sidecar-proxy");
  EXPECT_EQ(sc.checks[0].name, "Service 'proxy' check");
  EXPECT_EQ(sc.checks[0].serviceId, "web-sidecar-proxy");
}

TEST(ServiceRegistrationTest, SidecarFillsEmptyFieldsFromTheParent) {
  // As Consul's sidecarServiceFromNodeService: empty, not only absent, fields are defaulted.
  FakePorts ports;
  auto defs = decodeService(R"({"Name": "web", "Port": 8080, "Address": "10.0.0.5",
      "Tags": ["v1"], "Meta": {"m": "1"},
      "Connect": {"SidecarService": {"Name": "", "Tags": [], "Meta": {}}}})",
                            ports);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->size(), 2u);
  const store::Service& sc = (*defs)[1].service;
  EXPECT_EQ(sc.service, "web-sidecar-proxy");
  EXPECT_EQ(sc.tags, (std::vector<std::string>{"v1"}));
  EXPECT_EQ(sc.meta, (store::StringMap{{"m", "1"}}));
  EXPECT_EQ(sc.address, "10.0.0.5");
}

TEST(ServiceRegistrationTest, SidecarRejections) {
  FakePorts ports;
  std::string e = errorOf(
      decodeService(R"({"Name": "web", "Connect": {"SidecarService": {"ID": "x"}}})", ports));
  EXPECT_NE(e.find("SidecarService"), std::string::npos) << e;
  EXPECT_NE(e.find("ID"), std::string::npos) << e;
  e = errorOf(decodeService(
      R"({"Name": "web", "Connect": {"SidecarService": {"Kind": "connect-proxy"}}})", ports));
  EXPECT_NE(e.find("Kind"), std::string::npos) << e;
  e = errorOf(decodeService(
      R"({"Name": "web", "Connect": {"SidecarService": {"Connect": {"SidecarService": {}}}}})",
      ports));
  EXPECT_NE(e.find("SidecarService"), std::string::npos) << e;
  e = errorOf(decodeService(R"({"Name": "web", "Connect": {"SidecarService": []}})", ports));
  EXPECT_NE(e.find("Connect.SidecarService"), std::string::npos) << e;
  ports.port = 0;  // the range is full
  e = errorOf(decodeService(R"({"Name": "web", "Connect": {"SidecarService": {}}})", ports));
  EXPECT_NE(e.find("port"), std::string::npos) << e;
}

TEST(ServiceRegistrationTest, ConnectProxyNeedsDestinationServiceName) {
  FakePorts ports;
  std::string e =
      errorOf(decodeService(R"({"Name": "p", "Kind": "connect-proxy", "Port": 21000})", ports));
  EXPECT_NE(e.find("Proxy.DestinationServiceName"), std::string::npos) << e;
  e = errorOf(decodeService(R"({"Name": "p", "Kind": "connect-proxy", "Port": 21000,
                                "Proxy": {"DestinationServiceName": ""}})",
                            ports));
  EXPECT_NE(e.find("Proxy.DestinationServiceName"), std::string::npos) << e;
  auto ok = decodeService(R"({"Name": "p", "Kind": "connect-proxy", "Port": 21000,
                              "Proxy": {"DestinationServiceName": "web"}})",
                          ports);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->front().service.kind, "connect-proxy");
}

}  // namespace
}  // namespace taskmesh::agent
