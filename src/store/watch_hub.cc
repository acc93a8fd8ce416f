#include "store/watch_hub.h"

#include <algorithm>

namespace taskmesh::store {

WatchHub::WaiterId WatchHub::add(const WatchSpec& spec, Waker waker) {
  WaiterId id = nextId_++;
  Waiter w;
  w.waker = std::move(waker);
  if (spec.nodes) w.topics.emplace_back("t:nodes");
  if (spec.services) w.topics.emplace_back("t:services");
  if (spec.checks) w.topics.emplace_back("t:checks");
  if (spec.ca) w.topics.emplace_back("t:ca");
  if (spec.intentions) w.topics.emplace_back("t:intentions");
  for (const auto& s : spec.serviceNames) w.topics.push_back("s:" + s);
  for (const auto& k : spec.kvKeys) w.topics.push_back("k:" + k);
  for (const auto& p : spec.kvPrefixes) {
    w.topics.push_back("p:" + p);
    ++prefixWaiters_;
  }
  for (const auto& t : w.topics) byTopic_[t].insert(id);
  waiters_.emplace(id, std::move(w));
  return id;
}

void WatchHub::remove(WaiterId id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  for (const auto& t : it->second.topics) {
    if (t.starts_with("p:")) --prefixWaiters_;
    auto set = byTopic_.find(t);
    if (set == byTopic_.end()) continue;
    set->second.erase(id);
    if (set->second.empty()) byTopic_.erase(set);
  }
  waiters_.erase(it);
}

void WatchHub::collect(const std::string& topic, std::vector<WaiterId>& out) const {
  auto it = byTopic_.find(topic);
  if (it != byTopic_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
}

void WatchHub::notify(const Changes& changes) {
  if (waiters_.empty() || changes.empty()) return;
  std::vector<WaiterId> woken;
  if (changes.nodes) collect("t:nodes", woken);
  if (changes.services) collect("t:services", woken);
  if (changes.checks) collect("t:checks", woken);
  if (changes.ca) collect("t:ca", woken);
  if (changes.intentions) collect("t:intentions", woken);
  for (const auto& s : changes.serviceNames) collect("s:" + s, woken);
  for (const auto& k : changes.kvKeys) {
    collect("k:" + k, woken);
    if (prefixWaiters_ == 0) continue;
    for (size_t n = 0; n <= k.size(); ++n) collect("p:" + k.substr(0, n), woken);
  }
  std::sort(woken.begin(), woken.end());
  woken.erase(std::unique(woken.begin(), woken.end()), woken.end());
  std::vector<Waker> wakers;
  wakers.reserve(woken.size());
  for (WaiterId id : woken) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) continue;
    wakers.push_back(std::move(it->second.waker));
    remove(id);
  }
  for (auto& w : wakers) w();
}

}  // namespace taskmesh::store
