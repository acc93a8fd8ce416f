// TaskRunner's container health checks (the contract is in task_runner.h).
#include <chrono>

#include "runtime/task_runner.h"

namespace taskmesh::runtime {
namespace {

// CMD → the arguments; CMD-SHELL → /bin/sh -c; no prefix → CMD (as ECS and the consul-ecs
// Terraform module use it).
std::vector<std::string> probeArgs(const std::vector<std::string>& command) {
  if (!command.empty() && command[0] == "CMD-SHELL") {
    return {"/bin/sh", "-c", command.size() > 1 ? command[1] : "true"};
  }
  if (!command.empty() && command[0] == "CMD") {
    return {command.begin() + 1, command.end()};
  }
  return command;
}

}  // namespace

void TaskRunner::scheduleProbe(size_t index, std::chrono::milliseconds delay) {
  auto& run = *runs_[index];
  run.healthTimer.expires_after(delay);
  auto self = weak_from_this();
  run.healthTimer.async_wait([self, index](boost::system::error_code ec) {
    if (ec) return;
    if (auto r = self.lock()) r->probe(index);
  });
}

void TaskRunner::probe(size_t index) {
  const auto& c = record().containers[index];
  if (c.lastStatus != "RUNNING" || c.desiredStatus == "STOPPED") return;
  const auto& hc = *definition_.containers[index].healthCheck;
  runs_[index]->probeStartedAt = nowSeconds();
  auto self = weak_from_this();
  ctx_.engine.exec(c.runtimeId, probeArgs(hc.command), std::chrono::seconds(hc.timeout),
                   [self, index](ExecResult result) {
                     if (auto r = self.lock()) r->onProbe(index, result);
                   });
}

void TaskRunner::onProbe(size_t index, const ExecResult& result) {
  auto& c = record().containers[index];
  if (c.lastStatus != "RUNNING") return;
  const auto& hc = *definition_.containers[index].healthCheck;
  auto& run = *runs_[index];
  double now = nowSeconds();
  bool passed = result.exitCode == 0 && !result.timedOut;
  c.healthExitCode = result.exitCode;
  c.healthOutput = result.timedOut
                       ? "health check timed out after " + std::to_string(hc.timeout) + "s"
                       : result.output.substr(0, 1024);
  std::string previous = c.healthStatus;
  if (passed) {
    run.everHealthy = true;
    run.consecutiveFailures = 0;
    c.healthStatus = "HEALTHY";
  } else if (run.everHealthy || now >= run.nextCountedProbeAt) {
    // Before the first success only one failure per interval counts (Docker's pace).
    run.nextCountedProbeAt = now + hc.interval;
    if (run.everHealthy || now >= c.startedAt + hc.startPeriod) {
      ++run.consecutiveFailures;
      if (run.consecutiveFailures >= hc.retries) c.healthStatus = "UNHEALTHY";
    }
  }
  if (c.healthStatus != previous) {
    c.healthSince = now;
    note(c.name, c.healthStatus,
         "probe exitCode=" + std::to_string(result.exitCode) +
             (result.timedOut ? " (timed out)" : ""));
    updateTaskHealth();
    touched();
    advance();
  }
  if (record().containers[index].lastStatus != "RUNNING") return;
  scheduleProbe(index, nextProbeDelay(index));
}

std::chrono::milliseconds TaskRunner::nextProbeDelay(size_t index) {
  const auto& run = *runs_[index];
  const int intervalSeconds = definition_.containers[index].healthCheck->interval;
  const auto interval = std::chrono::milliseconds(intervalSeconds * 1000);
  const double now = nowSeconds();
  if (run.everHealthy || now - record().containers[index].startedAt >= intervalSeconds) {
    return interval;
  }
  // Early probes: never more than a third of the time spent probing, so slow probes (a loaded
  // machine, a heavy check command) do not make the machine slower still.
  const auto lastProbe = std::chrono::milliseconds(
      static_cast<int64_t>(std::max(0.0, now - run.probeStartedAt) * 1000));
  return std::min(interval, std::max(kEarlyProbePeriod, 2 * lastProbe));
}

// Task health over essential containers: UNHEALTHY > UNKNOWN > HEALTHY (ecs.md §5.4).
void TaskRunner::updateTaskHealth() {
  auto& t = record();
  bool anyUnknown = false, anyUnhealthy = false;
  for (const auto& c : t.containers) {
    if (!c.essential) continue;
    anyUnhealthy |= c.healthStatus == "UNHEALTHY";
    anyUnknown |= c.healthStatus == "UNKNOWN";
  }
  std::string health = anyUnhealthy ? "UNHEALTHY" : anyUnknown ? "UNKNOWN" : "HEALTHY";
  if (health != t.healthStatus) {
    t.healthStatus = health;
    note("task", "HEALTH_" + health);
  }
}

}  // namespace taskmesh::runtime
