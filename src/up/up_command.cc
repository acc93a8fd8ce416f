#include "up/up_command.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "aws/ecs_client.h"
#include "base/duration.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "net/http_client.h"
#include "up/catalog_watch.h"
#include "up/phases.h"
#include "up/stack.h"

namespace taskmesh::up {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kPollPeriod = milliseconds(250);
constexpr auto kRuntimeStartTimeout = seconds(20);
constexpr auto kStopTimeout = seconds(120);  // per stage of the shutdown
constexpr int kServerHttpPort = 8500;

double unixNow() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string lastSegment(const std::string& arn) { return arn.substr(arn.rfind('/') + 1); }

// body[key] when it is an array, else an empty one: an answer of another shape (a runtime
// that is not ours at -api-addr) reads as "nothing", never as a crash.
json arrayField(const json& body, const char* key) {
  auto it = body.is_object() ? body.find(key) : body.end();
  return it != body.end() && it->is_array() ? *it : json::array();
}

void say(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
}

// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken with sigtimedwait, so the
// waits of `up` are its only signal handlers.
class Signals {
 public:
  Signals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  // Sleeps up to `d`; true if a signal came.
  bool wait(milliseconds d) {
    timespec ts{static_cast<time_t>(d.count() / 1000),
                static_cast<long>(d.count() % 1000) * 1000000};
    return sigtimedwait(&set_, nullptr, &ts) > 0;
  }

 private:
  sigset_t set_{};
};

// The runtime's ECS API: a signed JSON 1.1 client (it does not check the signature) plus the
// runtime's own views (timeline).
class EcsApi {
 public:
  static Result<EcsApi> create(const std::string& addr) {
    aws::EcsClientConfig config{.endpoint = "http://" + addr + "/", .region = "us-east-1"};
    auto client = aws::EcsClient::create(config);
    if (!client) return makeError(client.error());
    return EcsApi(addr, std::move(*client));
  }
  Result<json> call(std::string_view operation, const json& body,
                    milliseconds timeout = milliseconds(10000)) const {
    return client_.call(operation, body, credentials_, Clock::now() + timeout);
  }
  Result<json> timeline(const std::string& taskId) const {
    net::HttpClientRequest req;
    req.url = "http://" + addr_ + "/taskmesh/v1/tasks/" + taskId + "/timeline";
    req.timeout = milliseconds(5000);
    auto resp = net::httpRequest(req);
    if (!resp) return makeError(resp.error());
    if (resp->status != 200) {
      return makeError(ErrorCode::kUnavailable,
                       "timeline of " + taskId + ": HTTP " + std::to_string(resp->status));
    }
    return parseJsonBounded(resp->body);
  }
  bool answers() const {
    return call("ListClusters", json::object(), milliseconds(1000)).has_value();
  }

 private:
  EcsApi(std::string addr, aws::EcsClient client)
      : addr_(std::move(addr)), client_(std::move(client)) {}
  std::string addr_;
  aws::EcsClient client_;
  aws::Credentials credentials_{"taskmesh-local", "taskmesh-local", ""};
};

// `taskmesh ecs`, when `up` starts it: its own session (a terminal's Ctrl-C reaches `up`
// only, which stops the tasks first), its output in <data-dir>/ecs.log.
class RuntimeProcess {
 public:
  ~RuntimeProcess() { stop(); }

  Result<void> start(const UpOptions& o, const EcsApi& api, Signals& signals) {
    if (o.dataDir.empty()) {
      char tmpl[] = "/tmp/taskmesh-up.XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) return makeError(ErrorCode::kIo, "cannot create a temp dir");
      dataDir_ = tmpl;
      removeDir_ = true;
    } else {
      dataDir_ = o.dataDir;
      std::error_code ec;
      std::filesystem::create_directories(dataDir_, ec);
    }
    std::string log = dataDir_ + "/ecs.log";
    std::vector<std::string> args = {"/proc/self/exe", "ecs",     "-data-dir",  dataDir_ + "/ecs",
                                     "-api-addr",      o.apiAddr, "-log-level", "warn"};
    if (!o.subnet.empty()) args.insert(args.end(), {"-subnet", o.subnet});
    pid_ = ::fork();
    if (pid_ < 0) return makeError(ErrorCode::kIo, "fork failed");
    if (pid_ == 0) {
      sigset_t none;
      sigemptyset(&none);
      pthread_sigmask(SIG_SETMASK, &none, nullptr);
      ::setsid();
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (null >= 0) ::dup2(null, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    say("taskmesh ecs started (pid " + std::to_string(pid_) + ", API " + o.apiAddr + ", log " +
        log + ")\n");
    auto deadline = Clock::now() + kRuntimeStartTimeout;
    while (Clock::now() < deadline) {
      if (api.answers()) return {};
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        auto text = readFile(log);
        return makeError(ErrorCode::kUnavailable,
                         "taskmesh ecs exited at start:\n" + (text ? *text : std::string()));
      }
      if (signals.wait(milliseconds(100))) {
        return makeError(ErrorCode::kUnavailable, "interrupted while the runtime started");
      }
    }
    return makeError(ErrorCode::kTimeout,
                     "taskmesh ecs did not answer on " + o.apiAddr + " within 20 s; see " + log);
  }

  // SIGTERM (the runtime stops its tasks and sweeps), SIGKILL after kStopTimeout.
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      auto deadline = Clock::now() + kStopTimeout;
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          say("taskmesh ecs did not stop in time; killing it\n");
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(milliseconds(100));
      }
      pid_ = -1;
      say("taskmesh ecs stopped\n");
    }
    if (removeDir_) {
      std::error_code ec;
      std::filesystem::remove_all(dataDir_, ec);
      removeDir_ = false;
    }
  }

 private:
  pid_t pid_ = -1;
  std::string dataDir_;
  bool removeDir_ = false;
};

struct TrackedTask {
  std::string arn;
  std::string id;
  std::string service;  // ECS service name
  std::string ip;
  std::string lastStatus;
  TaskPhases phases;
  bool announced = false;  // its T0–T4 was printed
  bool gone = false;       // its stop was printed
};

class Up {
 public:
  Up(const UpOptions& o, Stack stack, EcsApi api)
      : o_(o), stack_(std::move(stack)), api_(std::move(api)) {}

  int run();

 private:
  Result<void> deploy();
  Result<void> createService(const std::string& name, const json& definition, int count);
  Result<void> refresh();
  bool ready() const;
  void announce(TrackedTask& t);
  void printReady(Clock::time_point started);
  void writeReport() const;
  void shutdown();
  void stopServices(const std::vector<std::string>& names);
  const StackService* serviceOf(const std::string& name) const;

  const UpOptions& o_;
  Stack stack_;
  EcsApi api_;
  Signals signals_;
  RuntimeProcess runtime_;
  std::map<std::string, TrackedTask> tasks_;  // by ARN
  std::string serverIp_;
  std::map<std::string, std::unique_ptr<CatalogWatch>> watches_;  // by catalog name
  bool ready_ = false;
  double readyAt_ = 0;
};

const StackService* Up::serviceOf(const std::string& name) const {
  for (const auto& s : stack_.services) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Result<void> Up::createService(const std::string& name, const json& definition, int count) {
  auto reg = api_.call("RegisterTaskDefinition", definition);
  if (!reg) return makeError(reg.error());
  std::string arn = reg->is_object()
                        ? stringField(reg->value("taskDefinition", json()), "taskDefinitionArn")
                        : "";
  if (arn.empty()) {
    return makeError(ErrorCode::kUnavailable,
                     "RegisterTaskDefinition answered no taskDefinitionArn");
  }
  json body = {
      {"cluster", stack_.cluster},
      {"serviceName", name},
      {"taskDefinition", arn},
      {"desiredCount", count},
      {"launchType", "FARGATE"},
      // The local runtime takes any subnet name; its task IPs come from -subnet.
      {"networkConfiguration", {{"awsvpcConfiguration", {{"subnets", {"subnet-local"}}}}}},
      {"deploymentConfiguration", {{"maximumPercent", 200}, {"minimumHealthyPercent", 100}}}};
  auto created = api_.call("CreateService", body);
  if (!created && created.error().message.find("not idempotent") != std::string::npos) {
    // A service left by an earlier `up` on a runtime that is still running: update it.
    created = api_.call("UpdateService", json{{"cluster", stack_.cluster},
                                              {"service", name},
                                              {"taskDefinition", arn},
                                              {"desiredCount", count}});
  }
  if (!created) return makeError(created.error());
  say("service " + name + ": " + std::to_string(count) + " x " + lastSegment(arn) + "\n");
  return {};
}

Result<void> Up::deploy() {
  auto cluster = api_.call("CreateCluster", json{{"clusterName", stack_.cluster}});
  if (!cluster) return makeError(cluster.error());
  if (auto ok = createService(stack_.serverService, stack_.serverTaskDefinition, 1); !ok) {
    return ok;
  }
  for (const auto& s : stack_.services) {
    if (auto ok = createService(s.name, s.taskDefinition, s.desiredCount); !ok) return ok;
  }
  return {};
}

// Lists the cluster's tasks, describes them, tracks IPs and statuses, starts the catalog
// watches once the server runs, and fills in T0–T4.
Result<void> Up::refresh() {
  std::set<std::string> arns;
  json page = {{"cluster", stack_.cluster}, {"maxResults", 100}};
  for (int pages = 0; pages < 100; ++pages) {  // 10,000 tasks at most
    auto listed = api_.call("ListTasks", page);
    if (!listed) return makeError(listed.error());
    for (const auto& a : arrayField(*listed, "taskArns")) {
      if (a.is_string()) arns.insert(a.get<std::string>());
    }
    std::string next = stringField(*listed, "nextToken");
    if (next.empty()) break;
    page["nextToken"] = next;
  }
  for (const auto& [arn, t] : tasks_) {
    if (!t.gone) arns.insert(arn);  // to see it stop
  }
  std::vector<std::string> all(arns.begin(), arns.end());
  for (size_t i = 0; i < all.size(); i += 100) {
    std::vector<std::string> batch(all.begin() + i, all.begin() + std::min(all.size(), i + 100));
    auto described =
        api_.call("DescribeTasks", json{{"cluster", stack_.cluster}, {"tasks", batch}});
    if (!described) return makeError(described.error());
    for (const auto& d : arrayField(*described, "tasks")) {
      if (!d.is_object()) continue;
      std::string arn = stringField(d, "taskArn");
      std::string group = stringField(d, "group");
      if (arn.empty()) continue;
      auto& t = tasks_[arn];
      t.arn = arn;
      t.id = lastSegment(arn);
      t.service = group.starts_with("service:") ? group.substr(8) : group;
      t.lastStatus = stringField(d, "lastStatus");
      for (const auto& att : arrayField(d, "attachments")) {
        for (const auto& det : arrayField(att, "details")) {
          if (stringField(det, "name") == "privateIPv4Address") t.ip = stringField(det, "value");
        }
      }
      if (t.service == stack_.serverService && t.lastStatus == "RUNNING" && serverIp_.empty() &&
          !t.ip.empty()) {
        serverIp_ = t.ip;
        std::string server = serverIp_ + ":" + std::to_string(kServerHttpPort);
        for (const auto& s : stack_.services) {
          if (!watches_.contains(s.catalogName)) {
            watches_[s.catalogName] = std::make_unique<CatalogWatch>(server, s.catalogName);
          }
        }
      }
      if (t.lastStatus == "STOPPED" && !t.gone && t.announced) {
        t.gone = true;
        say(t.service + " task " + t.id + " STOPPED: " + stringField(d, "stoppedReason") + "\n");
      } else if (t.lastStatus == "STOPPED") {
        t.gone = true;
      }
    }
  }
  for (auto& [arn, t] : tasks_) {
    const auto* s = serviceOf(t.service);
    if (s == nullptr || t.phases.complete() || t.gone || t.lastStatus != "RUNNING") continue;
    auto w = watches_.find(s->catalogName);
    if (w == watches_.end()) continue;
    auto passing = w->second->firstPassing(s->family + "-" + t.id);
    if (!passing) continue;
    auto tl = api_.timeline(t.id);
    if (!tl) continue;
    t.phases = phasesFromTimeline(arrayField(*tl, "events"), passing);
  }
  return {};
}

bool Up::ready() const {
  if (serverIp_.empty()) return false;
  for (const auto& s : stack_.services) {
    int n = 0;
    for (const auto& [arn, t] : tasks_) {
      if (t.service == s.name && !t.gone && t.phases.complete()) ++n;
    }
    if (n < s.desiredCount) return false;
  }
  return true;
}

void Up::announce(TrackedTask& t) {
  if (t.announced || !t.phases.complete()) return;
  t.announced = true;
  const auto* s = serviceOf(t.service);
  say("\n" + t.service + "  task " + t.id + "  " + t.ip + "\n" +
      formatPhases(t.phases, s ? s->catalogName : t.service));
}

void Up::printReady(Clock::time_point started) {
  auto took = std::chrono::duration<double>(Clock::now() - started).count();
  char line[128];
  std::snprintf(line, sizeof line, "\nThe mesh is ready (%.1f s). ", took);
  std::string out = line;
  out += "Server: http://" + serverIp_ + ":8500 (Consul HTTP API).\n";
  for (const auto& s : stack_.services) {
    if (!s.isPublic) continue;
    for (const auto& [arn, t] : tasks_) {
      if (t.service != s.name || t.gone) continue;
      out += "Send a request through the mesh (" + s.name +
             " calls its upstreams through its "
             "sidecar):\n  curl http://" +
             t.ip + ":" + std::to_string(s.appPort) + "/\n";
      break;
    }
  }
  out += "Timeline of a task:  taskmesh ecs timeline TASK -api-addr " + o_.apiAddr + "\n";
  out += "Ctrl-C stops every task.\n";
  say(out);
}

void Up::writeReport() const {
  if (o_.reportFile.empty()) return;
  json tasks = json::array();
  for (const auto& [arn, t] : tasks_) {
    json j = t.phases.toJson();
    j["taskArn"] = t.arn;
    j["service"] = t.service;
    j["ip"] = t.ip;
    j["lastStatus"] = t.lastStatus;
    tasks.push_back(std::move(j));
  }
  json services = json::array();
  for (const auto& s : stack_.services) {
    services.push_back({{"name", s.name},
                        {"catalogName", s.catalogName},
                        {"family", s.family},
                        {"port", s.appPort},
                        {"public", s.isPublic}});
  }
  json report = {{"ready", ready_},
                 {"readyAt", ready_ ? json(readyAt_) : json(nullptr)},
                 {"cluster", stack_.cluster},
                 {"apiAddr", o_.apiAddr},
                 {"serverAddr", serverIp_.empty() ? "" : serverIp_ + ":8500"},
                 {"services", services},
                 {"tasks", tasks}};
  if (auto ok = writeFileAtomic(o_.reportFile, report.dump(2) + "\n"); !ok) {
    say("cannot write -report: " + ok.error().message + "\n");
  }
}

// DeleteService (force) for `names`, then waits until none of their tasks runs.
void Up::stopServices(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    auto r = api_.call("DeleteService",
                       json{{"cluster", stack_.cluster}, {"service", n}, {"force", true}});
    // Not found: never created (a failed deploy) or already gone.
    if (!r && r.error().code != ErrorCode::kNotFound) {
      say("DeleteService " + n + ": " + r.error().message + "\n");
    }
  }
  auto deadline = Clock::now() + kStopTimeout;
  for (;;) {
    size_t left = 0;
    for (const auto& n : names) {
      auto r = api_.call("ListTasks", json{{"cluster", stack_.cluster}, {"serviceName", n}});
      if (r) left += arrayField(*r, "taskArns").size();
      // Tasks already asked to stop are listed only with desiredStatus STOPPED; wait for those
      // that have not reached STOPPED yet.
      auto stopping = api_.call(
          "ListTasks",
          json{{"cluster", stack_.cluster}, {"serviceName", n}, {"desiredStatus", "STOPPED"}});
      json stoppingArns = stopping ? arrayField(*stopping, "taskArns") : json::array();
      if (stoppingArns.empty()) continue;
      auto d =
          api_.call("DescribeTasks", json{{"cluster", stack_.cluster}, {"tasks", stoppingArns}});
      if (!d) continue;
      for (const auto& t : arrayField(*d, "tasks")) {
        if (stringField(t, "lastStatus") != "STOPPED") ++left;
      }
    }
    if (left == 0) return;
    if (Clock::now() >= deadline) {
      say(std::to_string(left) + " task(s) did not stop within 120 s\n");
      return;
    }
    std::this_thread::sleep_for(kPollPeriod);
  }
}

void Up::shutdown() {
  say("\nStopping: app services first, then the server.\n");
  for (auto& [name, w] : watches_) w->stop();
  std::vector<std::string> apps;
  for (const auto& s : stack_.services) apps.push_back(s.name);
  stopServices(apps);
  stopServices({stack_.serverService});
  auto r = api_.call("DeleteCluster", json{{"cluster", stack_.cluster}});
  if (!r) say("DeleteCluster: " + r.error().message + "\n");
  runtime_.stop();
  say("Stopped.\n");
}

int Up::run() {
  auto timeout = parsePositiveDurationFlag("-timeout", o_.timeout);
  if (!timeout) {
    std::fprintf(stderr, "taskmesh up: %s\n", timeout.error().message.c_str());
    return 2;
  }
  auto started = Clock::now();
  if (!api_.answers()) {
    if (auto ok = runtime_.start(o_, api_, signals_); !ok) {
      std::fprintf(stderr, "taskmesh up: %s\n", ok.error().message.c_str());
      return 1;
    }
  } else {
    say("using the ECS runtime at " + o_.apiAddr + "\n");
  }
  if (auto ok = deploy(); !ok) {
    std::fprintf(stderr, "taskmesh up: %s\n", ok.error().message.c_str());
    shutdown();
    return 1;
  }
  auto deadline = started + *timeout;
  bool interrupted = false;
  while (!interrupted) {
    if (auto ok = refresh(); !ok) say("warning: " + ok.error().message + "\n");
    bool changed = false;
    for (auto& [arn, t] : tasks_) {
      if (!t.announced && t.phases.complete() && !t.gone) {
        announce(t);
        changed = true;
      }
    }
    if (!ready_ && ready()) {
      ready_ = true;
      readyAt_ = unixNow();
      printReady(started);
      changed = true;
    }
    if (changed) writeReport();
    if (!ready_ && Clock::now() >= deadline) {
      std::fprintf(stderr,
                   "taskmesh up: the mesh was not ready within %s; see `taskmesh ecs timeline "
                   "TASK -api-addr %s` and `taskmesh ecs logs TASK CONTAINER`\n",
                   o_.timeout.c_str(), o_.apiAddr.c_str());
      shutdown();
      return 1;
    }
    interrupted = signals_.wait(kPollPeriod);
  }
  shutdown();
  return 0;
}

}  // namespace

int runUp(const UpOptions& options) {
  if (options.dir.empty()) {
    std::fprintf(stderr, "taskmesh up: give the stack directory (e.g. examples/hello)\n");
    return 2;
  }
  if (!log::setLevel(options.logLevel)) {
    std::fprintf(stderr, "taskmesh up: -log-level: unknown level \"%s\"\n",
                 options.logLevel.c_str());
    return 2;
  }
  auto stack = loadStack(options.dir, options.image);
  if (!stack) {
    std::fprintf(stderr, "taskmesh up: %s\n", stack.error().message.c_str());
    return 2;
  }
  auto api = EcsApi::create(options.apiAddr);
  if (!api) {
    std::fprintf(stderr, "taskmesh up: -api-addr: %s\n", api.error().message.c_str());
    return 2;
  }
  Up up(options, std::move(*stack), std::move(*api));
  return up.run();
}

}  // namespace taskmesh::up
