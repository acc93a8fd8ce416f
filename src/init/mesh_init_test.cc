#include "init/mesh_init.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "aws/test_http_server.h"
#include "base/file.h"
#include "net/asio.h"
#include "net/http_server.h"

namespace taskmesh::init {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using aws::testing::TestHttpServer;
using Clock = std::chrono::steady_clock;

constexpr const char* kTaskArn =
    "arn:aws:ecs:us-east-1:111122223333:task/demo/0123456789abcdef0123456789abcdef";
constexpr const char* kTaskId = "0123456789abcdef0123456789abcdef";
constexpr const char* kServiceId = "webapp-0123456789abcdef0123456789abcdef";
constexpr const char* kProxyId = "webapp-0123456789abcdef0123456789abcdef-sidecar-proxy";

// The /task answer of a task of family "webapp" whose address is 10.0.1.20.
json taskMetadataJson() {
  return {{"Cluster", "demo"},
          {"TaskARN", kTaskArn},
          {"Family", "webapp"},
          {"Containers",
           json::array({{{"Name", "app"},
                         {"Networks", json::array({{{"IPv4Addresses", {"10.0.1.20"}}}})}}})}};
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/taskmesh-mesh-init-XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The config of the examples: service "web" on 8080 with a tag, meta, one check, one upstream.
json fullConfig(const std::string& bootstrapDir) {
  return {
      {"bootstrapDir", bootstrapDir},
      {"service",
       {{"name", "web"},
        {"port", 8080},
        {"tags", {"v1"}},
        {"meta", {{"k", "v"}}},
        {"checks",
         json::array({{{"Name", "app"}, {"TCP", "127.0.0.1:8080"}, {"Interval", "1s"}}})}}},
      {"proxy",
       {{"upstreams", json::array({{{"destinationName", "backend"}, {"localBindPort", 1234}}})}}}};
}

MeshInitConfig parsed(const json& config) {
  auto c = parseMeshInitConfig(config.dump());
  EXPECT_TRUE(c.has_value()) << c.error().message;
  return c.value_or(MeshInitConfig{});
}

const TaskIdentity kTask{"webapp", kTaskId, "10.0.1.20"};
const AgentAddress kAgent{"http://127.0.0.1:8500", "127.0.0.1:8500"};

// ---- config ---------------------------------------------------------------------------------

TEST(MeshInitConfig, ParsesEveryField) {
  json j = fullConfig("/taskmesh");
  j["agentHttpAddr"] = "127.0.0.1:18500";
  j["service"]["enableTagOverride"] = true;
  j["service"]["weights"] = {{"passing", 3}, {"warning", 0}};
  j["proxy"]["publicListenerPort"] = 21000;
  j["proxy"]["config"] = {{"protocol", "tcp"}};
  j["proxy"]["upstreams"].push_back(
      {{"destinationName", "db"}, {"localBindPort", 5432}, {"datacenter", "dc2"}});
  MeshInitConfig c = parsed(j);
  EXPECT_EQ(c.bootstrapDir, "/taskmesh");
  EXPECT_EQ(c.agentHttpAddr, "127.0.0.1:18500");
  EXPECT_EQ(c.serviceName, "web");
  EXPECT_EQ(c.servicePort, 8080);
  EXPECT_EQ(c.tags, std::vector<std::string>{"v1"});
  EXPECT_EQ(c.meta, (std::map<std::string, std::string>{{"k", "v"}}));
  EXPECT_TRUE(c.enableTagOverride);
  ASSERT_TRUE(c.weights.has_value());
  EXPECT_EQ(c.weights->passing, 3);
  EXPECT_EQ(c.weights->warning, 0);
  EXPECT_EQ(c.checks, j["service"]["checks"]);
  EXPECT_EQ(c.publicListenerPort, 21000);
  ASSERT_TRUE(c.proxyConfig.has_value());
  EXPECT_EQ(*c.proxyConfig, (json{{"protocol", "tcp"}}));
  ASSERT_EQ(c.upstreams.size(), 2u);
  EXPECT_EQ(c.upstreams[0].destinationName, "backend");
  EXPECT_EQ(c.upstreams[0].localBindPort, 1234);
  EXPECT_EQ(c.upstreams[0].datacenter, "");
  EXPECT_EQ(c.upstreams[1].datacenter, "dc2");
}

TEST(MeshInitConfig, MinimalConfigGetsTheDefaults) {
  MeshInitConfig c = parsed({{"bootstrapDir", "/taskmesh"}, {"service", {{"port", 8080}}}});
  EXPECT_EQ(c.serviceName, "");
  EXPECT_EQ(c.agentHttpAddr, "");
  EXPECT_EQ(c.publicListenerPort, 20000);
  EXPECT_TRUE(c.tags.empty());
  EXPECT_TRUE(c.meta.empty());
  EXPECT_FALSE(c.enableTagOverride);
  EXPECT_FALSE(c.weights.has_value());
  EXPECT_EQ(c.checks, json::array());
  EXPECT_TRUE(c.upstreams.empty());
  EXPECT_FALSE(c.proxyConfig.has_value());
}

TEST(MeshInitConfig, BadConfigsNameTheirField) {
  struct Case {
    std::string config;
    const char* expected;
  };
  const std::string svc = R"("bootstrapDir":"/t","service":{"port":8080)";
  const std::vector<Case> cases = {
      {"", "invalid JSON"},
      {"{", "invalid JSON"},
      {std::string(100, '[') + std::string(100, ']'), "invalid JSON: nested deeper"},
      {"[]", "expected a JSON object, got []"},
      {R"({"service":{"port":8080}})", "bootstrapDir: missing; expected a non-empty string"},
      {R"({"bootstrapDir":7,"service":{"port":8080}})",
       "bootstrapDir: expected a non-empty string, got 7"},
      {R"({"bootstrapDir":"/t"})", "service: missing"},
      {R"({"bootstrapDir":"/t","service":[]})", "service: expected an object, got []"},
      {R"({"bootstrapDir":"/t","service":{}})",
       "service.port: missing; expected an integer 1..65535"},
      {R"({"bootstrapDir":"/t","service":{"port":"abc"}})",
       R"(service.port: expected an integer 1..65535, got "abc")"},
      {R"({"bootstrapDir":"/t","service":{"port":0}})",
       "service.port: expected an integer 1..65535, got 0"},
      {R"({"bootstrapDir":"/t","service":{"port":65536}})",
       "service.port: expected an integer 1..65535, got 65536"},
      {R"({"bootstrapDir":"/t","service":{"port":-1}})",
       "service.port: expected an integer 1..65535, got -1"},
      {R"({"bootstrapDir":"/t","service":{"port":80.5}})",
       "service.port: expected an integer 1..65535, got 80.5"},
      {R"({"bootstrapdir":"/t","service":{"port":8080}})",
       "bootstrapdir: unknown field (known: bootstrapDir,"},
      {"{" + svc + R"(},"consulServers":{}})", "consulServers: unknown field"},
      {"{" + svc + R"(,"prot":1}})", "service.prot: unknown field"},
      {"{" + svc + R"(,"name":""}})", R"(service.name: expected a non-empty string, got "")"},
      {"{" + svc + R"(,"tags":"v1"}})", R"(service.tags: expected an array of strings, got "v1")"},
      {"{" + svc + R"(,"tags":["a",1]}})", "service.tags[1]: expected a string, got 1"},
      {"{" + svc + R"(,"meta":{"k":1}}})", "service.meta.k: expected a string, got 1"},
      {"{" + svc + R"(,"meta":[]}})", "service.meta: expected an object of strings"},
      {"{" + svc + R"(,"enableTagOverride":"yes"}})",
       "service.enableTagOverride: expected true or false"},
      {"{" + svc + R"(,"weights":{"passing":0}}})",
       "service.weights.passing: expected an integer 1..65535, got 0"},
      {"{" + svc + R"(,"weights":{"warning":-1}}})",
       "service.weights.warning: expected an integer 0..65535"},
      {"{" + svc + R"(,"weights":{"Passing":1}}})", "service.weights.Passing: unknown field"},
      {"{" + svc + R"(,"checks":{}}})", "service.checks: expected an array of objects, got {}"},
      {"{" + svc + R"(,"checks":[{},"x"]}})",
       R"(service.checks[1]: expected a Consul check object, got "x")"},
      {"{" + svc + R"(},"proxy":[]})", "proxy: expected an object"},
      {"{" + svc + R"(},"proxy":{"upstream":[]}})", "proxy.upstream: unknown field"},
      {"{" + svc + R"(},"proxy":{"upstreams":{}}})",
       "proxy.upstreams: expected an array of objects"},
      {"{" + svc + R"(},"proxy":{"upstreams":[1]}})",
       "proxy.upstreams[0]: expected an upstream object, got 1"},
      {"{" + svc + R"(},"proxy":{"upstreams":[{"localBindPort":1234}]}})",
       "proxy.upstreams[0].destinationName: missing; expected a non-empty string"},
      {"{" + svc + R"(},"proxy":{"upstreams":[{"destinationName":"b"}]}})",
       "proxy.upstreams[0].localBindPort: missing; expected an integer 1..65535"},
      {"{" + svc + R"(},"proxy":{"upstreams":[{"destinationName":"b","localBindPort":"x"}]}})",
       R"(proxy.upstreams[0].localBindPort: expected an integer 1..65535, got "x")"},
      {"{" + svc +
           R"(},"proxy":{"upstreams":[{"destinationName":"b","localBindPort":1,"dc":"x"}]}})",
       "proxy.upstreams[0].dc: unknown field"},
      {"{" + svc +
           R"(},"proxy":{"upstreams":[{"destinationName":"a","localBindPort":1234},)"
           R"({"destinationName":"b","localBindPort":1234}]}})",
       "proxy.upstreams[1].localBindPort: 1234 is already used by "
       "proxy.upstreams[0].localBindPort"},
      {"{" + svc + R"(},"proxy":{"upstreams":[{"destinationName":"a","localBindPort":19000}]}})",
       "proxy.upstreams[0].localBindPort: 19000 is already used by the proxy admin listener"},
      {"{" + svc + R"(},"proxy":{"publicListenerPort":70000}})",
       "proxy.publicListenerPort: expected an integer 1..65535, got 70000"},
      {"{" + svc + R"(},"proxy":{"publicListenerPort":8080}})",
       "proxy.publicListenerPort: 8080 is already used by service.port"},
      {"{" + svc + R"(},"proxy":{"config":"x"}})", R"(proxy.config: expected an object, got "x")"},
      {"{" + svc + R"(},"agentHttpAddr":5})", "agentHttpAddr: expected a non-empty string, got 5"},
      {"{" + svc + R"(},"agentHttpAddr":"https://127.0.0.1:8501"})",
       "agentHttpAddr: the local agent speaks plain http"},
      {"{" + svc + R"(},"agentHttpAddr":"127.0.0.1:8500/v1"})",
       "agentHttpAddr: expected host:port or http://host:port"},
  };
  for (const auto& c : cases) {
    auto result = parseMeshInitConfig(c.config);
    ASSERT_FALSE(result.has_value()) << c.config;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(result.error().message.find(c.expected), 0u)
        << "config: " << c.config << "\nerror:   " << result.error().message;
  }
}

TEST(MeshInitConfig, AgentAddressFromConfigThenEnvironmentThenDefault) {
  struct Case {
    std::string config, env, hostPort;
  };
  for (const Case& c : {
           Case{"127.0.0.1:18500", "10.0.0.1:8500", "127.0.0.1:18500"},
           Case{"", "10.0.0.1:8501", "10.0.0.1:8501"},
           Case{"", "http://10.0.0.1:8502", "10.0.0.1:8502"},
           Case{"", "http://localhost:8502/", "localhost:8502"},
           Case{"", "[::1]:8500", "[::1]:8500"},
           Case{"", "", "127.0.0.1:8500"},
       }) {
    auto a = resolveAgentAddress(c.config, c.env);
    ASSERT_TRUE(a.has_value()) << a.error().message;
    EXPECT_EQ(a->hostPort, c.hostPort);
    EXPECT_EQ(a->baseUrl, "http://" + c.hostPort);
  }
  for (const char* bad : {"https://127.0.0.1:8501", "unix:///tmp/agent.sock", "127.0.0.1:http",
                          "127.0.0.1:8500/v1/agent"}) {
    auto a = resolveAgentAddress("", bad);
    ASSERT_FALSE(a.has_value()) << bad;
    EXPECT_EQ(a.error().message.find("CONSUL_HTTP_ADDR: "), 0u) << a.error().message;
  }
}

TEST(MeshInitConfig, TaskIdentityFromMetadata) {
  aws::TaskMetadata md;
  md.family = "webapp";
  md.taskArn = kTaskArn;
  md.containers = {{"pause", "", "", "CNI_PAUSE", {}}, {"app", "", "", "NORMAL", {"10.0.1.20"}}};
  auto t = taskIdentity(md);
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->family, "webapp");
  EXPECT_EQ(t->taskId, kTaskId);
  EXPECT_EQ(t->ipv4, "10.0.1.20");

  auto noFamily = md;
  noFamily.family.clear();
  auto noId = md;
  noId.taskArn = "arn:aws:ecs:us-east-1:111122223333:task/demo/";
  auto noIp = md;
  noIp.containers.clear();
  auto badIp = md;
  badIp.containers = {{"app", "", "", "NORMAL", {"10.0.1"}}};
  for (const auto& [m, expected] : std::vector<std::pair<aws::TaskMetadata, std::string>>{
           {noFamily, "Family is missing"},
           {noId, "has no task ID"},
           {noIp, "no container has an IPv4 address"},
           {badIp, "\"10.0.1\" is not an IPv4 address"}}) {
    auto r = taskIdentity(m);
    ASSERT_FALSE(r.has_value()) << expected;
    EXPECT_NE(r.error().message.find(expected), std::string::npos) << r.error().message;
  }
}

// ---- registration bodies --------------------------------------------------------------------

TEST(MeshInitRegistration, ServiceAndSidecarBodies) {
  MeshInitConfig c = parsed(fullConfig("/taskmesh"));
  MeshRegistration r = buildRegistration(c, kTask, kAgent, "secret-token");
  EXPECT_EQ(r.serviceId, kServiceId);
  EXPECT_EQ(r.serviceName, "web");
  EXPECT_EQ(r.proxyId, kProxyId);
  EXPECT_EQ(r.service, json::parse(R"({
    "ID": "webapp-0123456789abcdef0123456789abcdef", "Name": "web", "Address": "10.0.1.20",
    "Port": 8080, "Tags": ["v1"], "Meta": {"k": "v"}, "EnableTagOverride": false,
    "Checks": [{"Name": "app", "TCP": "127.0.0.1:8080", "Interval": "1s"}]})"))
      << r.service.dump(2);
  EXPECT_EQ(r.sidecar, json::parse(R"({
    "ID": "webapp-0123456789abcdef0123456789abcdef-sidecar-proxy",
    "Name": "web-sidecar-proxy", "Kind": "connect-proxy", "Address": "10.0.1.20", "Port": 20000,
    "Tags": ["v1"], "Meta": {"k": "v"}, "EnableTagOverride": false,
    "Proxy": {"DestinationServiceName": "web",
              "DestinationServiceID": "webapp-0123456789abcdef0123456789abcdef",
              "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080,
              "Upstreams": [{"DestinationType": "service", "DestinationName": "backend",
                             "LocalBindPort": 1234}]},
    "Checks": [
      {"CheckID": "webapp-0123456789abcdef0123456789abcdef-sidecar-proxy:public-listener",
       "Name": "Proxy Public Listener", "TCP": "10.0.1.20:20000", "Interval": "1s",
       "Timeout": "1s"},
      {"CheckID": "webapp-0123456789abcdef0123456789abcdef-sidecar-proxy:destination-alias",
       "Name": "Destination Alias", "AliasService": "webapp-0123456789abcdef0123456789abcdef"}]})"))
      << r.sidecar.dump(2);
  EXPECT_EQ(r.bootstrap, json::parse(R"({
    "proxyId": "webapp-0123456789abcdef0123456789abcdef-sidecar-proxy",
    "serviceId": "webapp-0123456789abcdef0123456789abcdef", "serviceName": "web",
    "agentHttpAddr": "127.0.0.1:8500", "token": "secret-token", "adminAddr": "127.0.0.1:19000",
    "publicListenerPort": 20000, "localServicePort": 8080,
    "upstreams": [{"destinationName": "backend", "localBindPort": 1234}]})"))
      << r.bootstrap.dump(2);
}

TEST(MeshInitRegistration, OptionalFieldsAndDefaults) {
  json j = {
      {"bootstrapDir", "/taskmesh"},
      {"service", {{"port", 9090}, {"weights", {{"passing", 5}}}, {"enableTagOverride", true}}},
      {"proxy",
       {{"publicListenerPort", 21000},
        {"config", {{"protocol", "http"}}},
        {"upstreams",
         json::array(
             {{{"destinationName", "db"}, {"localBindPort", 5432}, {"datacenter", "dc2"}}})}}}};
  MeshRegistration r = buildRegistration(parsed(j), kTask, kAgent, "");
  EXPECT_EQ(r.serviceName, "webapp");  // the family
  EXPECT_EQ(r.sidecar["Name"], "webapp-sidecar-proxy");
  EXPECT_FALSE(r.service.contains("Checks"));
  EXPECT_EQ(r.service["Weights"], (json{{"Passing", 5}, {"Warning", 1}}));
  EXPECT_EQ(r.sidecar["Weights"], r.service["Weights"]);
  EXPECT_EQ(r.sidecar["EnableTagOverride"], true);
  EXPECT_EQ(r.sidecar["Port"], 21000);
  EXPECT_EQ(r.sidecar["Proxy"]["LocalServicePort"], 9090);
  EXPECT_EQ(r.sidecar["Proxy"]["Config"], (json{{"protocol", "http"}}));
  EXPECT_EQ(r.sidecar["Proxy"]["Upstreams"][0]["Datacenter"], "dc2");
  EXPECT_EQ(r.sidecar["Checks"][0]["TCP"], "10.0.1.20:21000");
  EXPECT_EQ(r.bootstrap["token"], "");
  EXPECT_EQ(r.bootstrap["publicListenerPort"], 21000);
  EXPECT_EQ(r.bootstrap["localServicePort"], 9090);
}

// ---- the command against a fake task (metadata endpoint + agent on one server) --------------

// Serves GET /v4/abc/task (the metadata endpoint) and PUT /v1/agent/service/register (the
// agent), recording every register call. `agentAnswer(call)` decides each agent answer.
class FakeTask {
 public:
  using Answer = std::function<net::HttpResponse(int call)>;

  explicit FakeTask(Answer agentAnswer = ok()) : agentAnswer_(std::move(agentAnswer)) {}

  static Answer ok() {
    return [](int) { return net::HttpResponse::json("null"); };
  }

  struct Call {
    std::string target;
    std::string token;
    json body;
  };

  std::vector<Call> registrations() const {
    std::lock_guard lock(mu_);
    return registrations_;
  }
  int metadataCalls() const { return metadataCalls_.load(); }
  int calls() const { return metadataCalls_.load() + static_cast<int>(registrations().size()); }
  void failMetadata(int times) { metadataFailures_ = times; }
  std::string url() const { return server_.url(); }

  MeshInitEnvironment environment(const json& config) const {
    MeshInitEnvironment env;
    env.configJson = config.dump();
    env.metadataUriV4 = server_.url() + "/v4/abc";
    env.consulHttpAddr = "127.0.0.1:" + std::to_string(server_.port());
    env.consulHttpToken = "secret-token";
    return env;
  }

 private:
  net::HttpResponse handle(const net::HttpRequest& req) {
    if (req.method == "GET" && req.path == "/v4/abc/task") {
      if (metadataCalls_++ < metadataFailures_) return net::HttpResponse::text(500, "not ready");
      return net::HttpResponse::json(taskMetadataJson().dump());
    }
    if (req.method == "PUT" && req.path == "/v1/agent/service/register") {
      int call;
      {
        std::lock_guard lock(mu_);
        call = static_cast<int>(registrations_.size());
        registrations_.push_back(
            {req.target, req.header("x-consul-token"), json::parse(req.body, nullptr, false)});
      }
      return agentAnswer_(call);
    }
    return net::HttpResponse::text(404, "no route " + req.method + " " + req.target);
  }

  Answer agentAnswer_;
  mutable std::mutex mu_;  // guards registrations_
  std::vector<Call> registrations_;
  std::atomic<int> metadataCalls_{0};
  std::atomic<int> metadataFailures_{0};
  TestHttpServer server_{[this](const net::HttpRequest& req) { return handle(req); }};
};

MeshInitOptions fastOptions(const std::string& timeout = "10s") {
  MeshInitOptions o;
  o.timeout = timeout;
  o.initialBackoff = 5ms;
  o.maxBackoff = 20ms;
  o.requestTimeout = 2000ms;
  return o;
}

mode_t fileMode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Runs the command with stderr captured; returns the exit code and sets `err`.
int runCaptured(const MeshInitOptions& o, const MeshInitEnvironment& env, std::string& err) {
  ::testing::internal::CaptureStderr();
  int rc = runMeshInit(o, env);
  err = ::testing::internal::GetCapturedStderr();
  return rc;
}

TEST(MeshInitRun, RegistersServiceAndSidecarAndWritesTheBootstrap) {
  FakeTask task;
  TempDir tmp;
  std::string dir = tmp.path() + "/shared/taskmesh";  // created by mesh-init
  auto env = task.environment(fullConfig(dir));
  std::string err;
  ASSERT_EQ(runCaptured(fastOptions(), env, err), kMeshInitOk) << err;

  auto calls = task.registrations();
  ASSERT_EQ(calls.size(), 2u);
  auto expected = buildRegistration(parsed(fullConfig(dir)), kTask,
                                    *resolveAgentAddress("", env.consulHttpAddr), "secret-token");
  EXPECT_EQ(calls[0].body, expected.service);
  EXPECT_EQ(calls[1].body, expected.sidecar);
  EXPECT_EQ(calls[0].body["ID"], kServiceId);
  EXPECT_EQ(calls[1].body["ID"], kProxyId);
  EXPECT_EQ(calls[1].body["Proxy"]["DestinationServiceID"], kServiceId);
  for (const auto& c : calls) {
    EXPECT_EQ(c.token, "secret-token");
    EXPECT_EQ(c.target, "/v1/agent/service/register?replace-existing-checks=true");
  }
  EXPECT_EQ(task.metadataCalls(), 1);

  std::string path = dir + "/bootstrap.json";
  auto written = readFile(path);
  ASSERT_TRUE(written.has_value()) << written.error().message;
  EXPECT_EQ(json::parse(*written), expected.bootstrap);
  EXPECT_EQ(json::parse(*written)["agentHttpAddr"], env.consulHttpAddr);
  EXPECT_EQ(fileMode(path), 0444u);
  EXPECT_NE(err.find("registered service=" + std::string(kServiceId)), std::string::npos) << err;
  EXPECT_NE(err.find("elapsed="), std::string::npos) << err;
  EXPECT_EQ(err.find("secret-token"), std::string::npos) << "the token was logged: " << err;
}

TEST(MeshInitRun, RunningTwiceIsHarmless) {
  FakeTask task;
  TempDir tmp;
  auto env = task.environment(fullConfig(tmp.path()));
  std::string err;
  ASSERT_EQ(runCaptured(fastOptions(), env, err), kMeshInitOk) << err;
  auto first = readFile(tmp.path() + "/bootstrap.json");
  ASSERT_EQ(runCaptured(fastOptions(), env, err), kMeshInitOk) << err;
  auto second = readFile(tmp.path() + "/bootstrap.json");
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(fileMode(tmp.path() + "/bootstrap.json"), 0444u);
  auto calls = task.registrations();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].body, calls[2].body);
  EXPECT_EQ(calls[1].body, calls[3].body);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "bootstrap.json");
  }
  EXPECT_EQ(files, 1);
}

TEST(MeshInitRun, RetriesWhileTheAgentAnswers503Or429) {
  FakeTask task([](int call) {
    if (call == 0) return net::HttpResponse::text(503, "No cluster leader");
    if (call == 1) return net::HttpResponse::text(429, "rate limited");
    if (call == 2) return net::HttpResponse::text(500, "oops");
    return net::HttpResponse::json("null");
  });
  TempDir tmp;
  std::string err;
  ASSERT_EQ(runCaptured(fastOptions(), task.environment(fullConfig(tmp.path())), err), kMeshInitOk)
      << err;
  auto calls = task.registrations();
  ASSERT_EQ(calls.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(calls[i].body["ID"], kServiceId);
  EXPECT_EQ(calls[4].body["ID"], kProxyId);
  EXPECT_NE(err.find("No cluster leader"), std::string::npos) << err;
}

// An HTTP server on a port chosen now that starts listening only when start() is called, so
// that connections are refused until then.
class LateAgent {
 public:
  LateAgent() {
    asio::io_context io;
    boost::asio::ip::tcp::acceptor probe(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    port_ = probe.local_endpoint().port();
  }
  ~LateAgent() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  void start() {
    auto port = server_.listen("127.0.0.1:" + std::to_string(port_));
    ASSERT_TRUE(port.has_value()) << port.error().message;
    thread_ = std::thread([this] { io_.run(); });
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int calls() const { return calls_.load(); }

 private:
  uint16_t port_ = 0;
  std::atomic<int> calls_{0};
  asio::io_context io_;
  net::HttpServer server_{io_, net::HttpServerOptions{},
                          [this](net::HttpRequest&) -> Awaitable<net::HttpResponse> {
                            ++calls_;
                            co_return net::HttpResponse::json("null");
                          }};
  std::thread thread_;
};

TEST(MeshInitRun, RetriesWhileTheAgentRefusesConnections) {
  FakeTask metadata;
  LateAgent agent;
  TempDir tmp;
  auto env = metadata.environment(fullConfig(tmp.path()));
  env.consulHttpAddr = "http://" + agent.address();
  auto start = Clock::now();
  std::thread starter([&agent] {
    std::this_thread::sleep_for(200ms);  // the agent is not up yet: connections are refused
    agent.start();
  });
  std::string err;
  int rc = runCaptured(fastOptions(), env, err);
  starter.join();
  EXPECT_EQ(rc, kMeshInitOk) << err;
  EXPECT_GE(Clock::now() - start, 200ms);
  EXPECT_EQ(agent.calls(), 2);
  EXPECT_NE(err.find("waiting for registering service " + std::string(kServiceId) +
                     " with the agent at " + agent.address()),
            std::string::npos)
      << err;
  EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/bootstrap.json"));
}

TEST(MeshInitRun, AgentClientErrorStopsAtOnce) {
  FakeTask task(
      [](int) { return net::HttpResponse::text(400, "Invalid check: missing interval\n"); });
  TempDir tmp;
  auto env = task.environment(fullConfig(tmp.path()));
  auto start = Clock::now();
  std::string err;
  EXPECT_EQ(runCaptured(fastOptions(), env, err), kMeshInitFailed);
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(task.registrations().size(), 1u);
  EXPECT_NE(err.find("registering service " + std::string(kServiceId) + " with the agent at " +
                     env.consulHttpAddr +
                     ": the agent answered HTTP 400: Invalid check: missing interval"),
            std::string::npos)
      << err;
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/bootstrap.json"));
}

TEST(MeshInitRun, TimesOutNamingTheAgentWhenNothingListens) {
  FakeTask metadata;
  LateAgent never;  // never started: every connection is refused
  TempDir tmp;
  auto env = metadata.environment(fullConfig(tmp.path()));
  env.consulHttpAddr = never.address();
  auto start = Clock::now();
  std::string err;
  EXPECT_EQ(runCaptured(fastOptions("300ms"), env, err), kMeshInitFailed);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_NE(err.find("registering service " + std::string(kServiceId) + " with the agent at " +
                     never.address() + ": gave up after -timeout 300ms"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("last error: "), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/bootstrap.json"));
}

TEST(MeshInitRun, TimesOutWhenTheAgentNeverAnswers) {
  FakeTask task([](int) {
    std::this_thread::sleep_for(1500ms);  // far beyond -timeout: the request is cut off
    return net::HttpResponse::json("null");
  });
  TempDir tmp;
  auto start = Clock::now();
  std::string err;
  EXPECT_EQ(runCaptured(fastOptions("300ms"), task.environment(fullConfig(tmp.path())), err),
            kMeshInitFailed);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 1200ms);  // did not wait for the answer
  EXPECT_NE(err.find("gave up after -timeout 300ms"), std::string::npos) << err;
}

TEST(MeshInitRun, MetadataEndpointFailuresAreRetried) {
  FakeTask task;
  task.failMetadata(2);
  TempDir tmp;
  std::string err;
  EXPECT_EQ(runCaptured(fastOptions(), task.environment(fullConfig(tmp.path())), err), kMeshInitOk)
      << err;
  EXPECT_EQ(task.metadataCalls(), 3);
  EXPECT_EQ(task.registrations().size(), 2u);
}

TEST(MeshInitRun, BadConfigExitsTwoBeforeAnyNetworkCall) {
  struct Case {
    std::function<void(MeshInitOptions&, MeshInitEnvironment&)> change;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {[](auto&, auto& e) { e.configJson.reset(); }, "TASKMESH_CONFIG_JSON is not set"},
      {[](auto&, auto& e) { e.configJson = R"({"bootstrapDir":"/t","service":{"port":"abc"}})"; },
       R"(TASKMESH_CONFIG_JSON: service.port: expected an integer 1..65535, got "abc")"},
      {[](auto&, auto& e) { e.configJson = "{not json"; }, "TASKMESH_CONFIG_JSON: invalid JSON"},
      {[](auto& o, auto&) { o.configFile = "/nonexistent/config.json"; },
       "-config-file: cannot open /nonexistent/config.json"},
      {[](auto& o, auto&) { o.timeout = "2 minutes"; }, "-timeout: "},
      {[](auto& o, auto&) { o.timeout = "0s"; }, "-timeout must be positive"},
      {[](auto& o, auto&) { o.logLevel = "loud"; }, "invalid -log-level \"loud\""},
      {[](auto&, auto& e) { e.consulHttpAddr = "https://127.0.0.1:8501"; }, "CONSUL_HTTP_ADDR: "},
      {[](auto&, auto& e) { e.consulHttpToken = "bad\ntoken"; },
       "CONSUL_HTTP_TOKEN contains characters not allowed"},
      {[](auto&, auto& e) { e.metadataUriV4.clear(); }, "ECS_CONTAINER_METADATA_URI_V4 is not set"},
      {[](auto&, auto& e) { e.metadataUriV4 = "169.254.170.2/v4"; },
       "ECS_CONTAINER_METADATA_URI_V4: invalid URL"},
  };
  FakeTask task;
  TempDir tmp;
  for (const auto& c : cases) {
    auto options = fastOptions();
    auto env = task.environment(fullConfig(tmp.path()));
    c.change(options, env);
    std::string err;
    EXPECT_EQ(runCaptured(options, env, err), kMeshInitBadConfig) << c.expected;
    EXPECT_NE(err.find(c.expected), std::string::npos) << "expected: " << c.expected << "\n" << err;
  }
  EXPECT_EQ(task.calls(), 0);
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/bootstrap.json"));
}

TEST(MeshInitRun, UnwritableBootstrapDirIsExitOne) {
  FakeTask task;
  TempDir tmp;
  auto blocker = tmp.path() + "/file";
  ASSERT_TRUE(writeFileAtomic(blocker, "x").has_value());
  std::string err;
  EXPECT_EQ(runCaptured(fastOptions(), task.environment(fullConfig(blocker + "/sub")), err),
            kMeshInitFailed);
  EXPECT_NE(err.find("cannot create bootstrapDir " + blocker + "/sub"), std::string::npos) << err;
}

// Sets (or unsets, with nullptr) an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

TEST(MeshInitRun, ReadsTheProcessEnvironmentAndTheConfigFile) {
  FakeTask task;
  TempDir tmp;
  auto fakeEnv = task.environment(fullConfig(tmp.path() + "/from-env"));
  {
    ScopedEnv config("TASKMESH_CONFIG_JSON", fakeEnv.configJson->c_str());
    ScopedEnv metadata("ECS_CONTAINER_METADATA_URI_V4", fakeEnv.metadataUriV4.c_str());
    ScopedEnv addr("CONSUL_HTTP_ADDR", ("http://" + fakeEnv.consulHttpAddr).c_str());
    ScopedEnv token("CONSUL_HTTP_TOKEN", nullptr);
    auto env = MeshInitEnvironment::fromProcess();
    EXPECT_EQ(env.configJson, fakeEnv.configJson);
    EXPECT_EQ(env.consulHttpToken, "");
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(runMeshInit(fastOptions()), kMeshInitOk);
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/from-env/bootstrap.json")) << err;

    // -config-file wins over TASKMESH_CONFIG_JSON.
    auto file = tmp.path() + "/config.json";
    ASSERT_TRUE(writeFileAtomic(file, fullConfig(tmp.path() + "/from-file").dump()).has_value());
    auto options = fastOptions();
    options.configFile = file;
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(runMeshInit(options), kMeshInitOk);
    err = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/from-file/bootstrap.json")) << err;
  }
  auto calls = task.registrations();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].token, "");  // no CONSUL_HTTP_TOKEN: no header
  auto bootstrap = readFile(tmp.path() + "/from-env/bootstrap.json");
  ASSERT_TRUE(bootstrap.has_value());
  EXPECT_EQ(json::parse(*bootstrap)["token"], "");
}

}  // namespace
}  // namespace taskmesh::init
