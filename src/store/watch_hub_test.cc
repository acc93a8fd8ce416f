#include "store/watch_hub.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "store/state_store.h"

namespace taskmesh::store {
namespace {

Changes keys(std::vector<std::string> k) {
  Changes c;
  c.kvKeys = std::move(k);
  return c;
}

Changes serviceNames(std::vector<std::string> names) {
  Changes c;
  c.serviceNames = std::move(names);
  return c;
}

WatchSpec keySpec(std::vector<std::string> k) {
  WatchSpec s;
  s.kvKeys = std::move(k);
  return s;
}

WatchSpec prefixSpec(std::vector<std::string> p) {
  WatchSpec s;
  s.kvPrefixes = std::move(p);
  return s;
}

WatchSpec serviceSpec(std::vector<std::string> names) {
  WatchSpec s;
  s.serviceNames = std::move(names);
  return s;
}

WatchSpec tableSpec(bool nodes, bool services, bool checks) {
  WatchSpec s;
  s.nodes = nodes;
  s.services = services;
  s.checks = checks;
  return s;
}

Changes tables(bool nodes, bool services, bool checks) {
  Changes c;
  c.nodes = nodes;
  c.services = services;
  c.checks = checks;
  return c;
}

TEST(WatchHub, KeyWaiterIsWokenOnlyByItsKey) {
  WatchHub hub;
  int woken = 0;
  hub.add(keySpec({"a"}), [&] { ++woken; });
  EXPECT_EQ(hub.waiting(), 1u);

  for (const char* other : {"b", "a/b", "ab", "", "A"}) {
    hub.notify(keys({other}));
    EXPECT_EQ(woken, 0) << other;
  }
  Changes catalog;
  catalog.nodes = catalog.services = catalog.checks = true;
  catalog.serviceNames = {"a"};
  hub.notify(catalog);
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(hub.waiting(), 1u);

  hub.notify(keys({"x", "a", "y"}));
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(hub.waiting(), 0u);
}

TEST(WatchHub, EmptyPrefixWaiterIsWokenByAnyKey) {
  WatchHub hub;
  for (const char* key : {"a", "a/b/c", "", "zzz"}) {
    int woken = 0;
    hub.add(prefixSpec({""}), [&] { ++woken; });
    hub.notify(keys({key}));
    EXPECT_EQ(woken, 1) << key;
    EXPECT_EQ(hub.waiting(), 0u);
  }
  // ...but not by catalog changes.
  int woken = 0;
  hub.add(prefixSpec({""}), [&] { ++woken; });
  Changes catalog;
  catalog.nodes = catalog.services = catalog.checks = true;
  catalog.serviceNames = {"web"};
  hub.notify(catalog);
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(hub.waiting(), 1u);
}

TEST(WatchHub, PrefixWaiterIsWokenByKeysUnderThePrefixOnly) {
  WatchHub hub;
  for (const char* key : {"a/", "a/b", "a/b/c/d"}) {
    int woken = 0;
    hub.add(prefixSpec({"a/"}), [&] { ++woken; });
    hub.notify(keys({key}));
    EXPECT_EQ(woken, 1) << key;
    EXPECT_EQ(hub.waiting(), 0u);
  }
  int woken = 0;
  hub.add(prefixSpec({"a/"}), [&] { ++woken; });
  for (const char* key : {"a", "ab", "b/a/", "", "A/b", "x/a/b"}) {
    hub.notify(keys({key}));
    EXPECT_EQ(woken, 0) << key;
  }
  EXPECT_EQ(hub.waiting(), 1u);
  hub.notify(keys({"b", "a/x"}));
  EXPECT_EQ(woken, 1);
}

TEST(WatchHub, PrefixAndKeyWaitersTogether) {
  WatchHub hub;
  int all = 0, underA = 0, exactA = 0, underB = 0;
  hub.add(prefixSpec({""}), [&] { ++all; });
  hub.add(prefixSpec({"a/"}), [&] { ++underA; });
  hub.add(keySpec({"a/x"}), [&] { ++exactA; });
  hub.add(prefixSpec({"b/"}), [&] { ++underB; });
  hub.notify(keys({"a/x"}));
  EXPECT_EQ(all, 1);
  EXPECT_EQ(underA, 1);
  EXPECT_EQ(exactA, 1);
  EXPECT_EQ(underB, 0);
  EXPECT_EQ(hub.waiting(), 1u);
}

TEST(WatchHub, ServiceNameWaiter) {
  WatchHub hub;
  int woken = 0;
  hub.add(serviceSpec({"web"}), [&] { ++woken; });
  hub.notify(serviceNames({"api"}));
  hub.notify(serviceNames({"webx"}));
  hub.notify(serviceNames({"we"}));
  hub.notify(keys({"web"}));
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(hub.waiting(), 1u);
  hub.notify(serviceNames({"api", "web", "web"}));
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(hub.waiting(), 0u);
}

TEST(WatchHub, WaiterOnSeveralServicesIsWokenByAnyOfThem) {
  WatchHub hub;
  int woken = 0;
  hub.add(serviceSpec({"web", "db"}), [&] { ++woken; });
  hub.notify(serviceNames({"api"}));
  EXPECT_EQ(woken, 0);
  hub.notify(serviceNames({"db"}));
  EXPECT_EQ(woken, 1);
  hub.notify(serviceNames({"web"}));
  EXPECT_EQ(woken, 1);
}

TEST(WatchHub, TableWaiters) {
  WatchHub hub;
  int nodes = 0, services = 0, checks = 0;
  auto addAll = [&] {
    hub.add(tableSpec(true, false, false), [&] { ++nodes; });
    hub.add(tableSpec(false, true, false), [&] { ++services; });
    hub.add(tableSpec(false, false, true), [&] { ++checks; });
  };
  addAll();
  hub.notify(keys({"nodes"}));
  hub.notify(serviceNames({"nodes", "services", "checks"}));
  EXPECT_EQ(nodes + services + checks, 0);
  EXPECT_EQ(hub.waiting(), 3u);

  hub.notify(tables(true, false, false));
  EXPECT_EQ(nodes, 1);
  EXPECT_EQ(services, 0);
  EXPECT_EQ(checks, 0);
  hub.notify(tables(false, true, false));
  EXPECT_EQ(nodes, 1);
  EXPECT_EQ(services, 1);
  EXPECT_EQ(checks, 0);
  hub.notify(tables(false, false, true));
  EXPECT_EQ(nodes, 1);
  EXPECT_EQ(services, 1);
  EXPECT_EQ(checks, 1);
  EXPECT_EQ(hub.waiting(), 0u);
}

TEST(WatchHub, WaiterIsWokenAtMostOnceAndThenRemoved) {
  WatchHub hub;
  int woken = 0;
  WatchSpec spec{.nodes = true,
                 .services = true,
                 .checks = true,
                 .serviceNames = {"web"},
                 .kvKeys = {"k", "k"},
                 .kvPrefixes = {"", "k"}};
  hub.add(spec, [&] { ++woken; });
  // One change matching every topic of the spec, with repeats.
  Changes all{.nodes = true,
              .services = true,
              .checks = true,
              .serviceNames = {"web", "web"},
              .kvKeys = {"k", "k", "kk"}};
  hub.notify(all);
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(hub.waiting(), 0u);
  hub.notify(all);
  hub.notify(keys({"k"}));
  EXPECT_EQ(woken, 1);
}

TEST(WatchHub, EmptyChangesWakeNobody) {
  WatchHub hub;
  int woken = 0;
  hub.add(prefixSpec({""}), [&] { ++woken; });
  hub.add(tableSpec(true, true, true), [&] { ++woken; });
  hub.notify(Changes{});
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(hub.waiting(), 2u);
}

TEST(WatchHub, RemovePreventsWaking) {
  WatchHub hub;
  int a = 0, b = 0;
  WatchHub::WaiterId ida = hub.add(keySpec({"k"}), [&] { ++a; });
  WatchHub::WaiterId idb = hub.add(keySpec({"k"}), [&] { ++b; });
  EXPECT_NE(ida, idb);
  EXPECT_EQ(hub.waiting(), 2u);
  hub.remove(ida);
  EXPECT_EQ(hub.waiting(), 1u);
  hub.remove(ida);       // twice: harmless
  hub.remove(ida + 99);  // unknown: harmless
  EXPECT_EQ(hub.waiting(), 1u);
  hub.notify(keys({"k"}));
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  hub.remove(idb);  // already woken: harmless
  EXPECT_EQ(hub.waiting(), 0u);
}

TEST(WatchHub, RemovingOnePrefixWaiterKeepsTheOthers) {
  WatchHub hub;
  int first = 0, second = 0, third = 0;
  WatchHub::WaiterId id1 = hub.add(prefixSpec({"a/", "a/"}), [&] { ++first; });
  hub.add(prefixSpec({"a/"}), [&] { ++second; });
  WatchHub::WaiterId id3 = hub.add(prefixSpec({"b/"}), [&] { ++third; });
  hub.remove(id1);
  hub.remove(id3);
  hub.notify(keys({"a/x"}));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(third, 0);

  // After every prefix waiter has gone, new ones still work.
  hub.add(prefixSpec({"c/"}), [&] { ++third; });
  hub.notify(keys({"c/1"}));
  EXPECT_EQ(third, 1);
  EXPECT_EQ(hub.waiting(), 0u);
}

TEST(WatchHub, WakerMayRegisterAgainAndIsWokenOnlyByTheNextNotify) {
  WatchHub hub;
  int woken = 0;
  std::function<void()> waker = [&] {
    ++woken;
    hub.add(keySpec({"k"}), waker);
  };
  hub.add(keySpec({"k"}), waker);
  hub.notify(keys({"k"}));
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(hub.waiting(), 1u);
  hub.notify(keys({"k"}));
  EXPECT_EQ(woken, 2);
  EXPECT_EQ(hub.waiting(), 1u);
}

TEST(WatchHub, WakerMayRemoveAnotherWaiter) {
  WatchHub hub;
  int other = 0;
  WatchHub::WaiterId otherId = hub.add(keySpec({"other"}), [&] { ++other; });
  hub.add(keySpec({"k"}), [&] { hub.remove(otherId); });
  hub.notify(keys({"k"}));
  EXPECT_EQ(hub.waiting(), 0u);
  hub.notify(keys({"other"}));
  EXPECT_EQ(other, 0);
}

TEST(WatchHub, TenThousandWaitersOnOneKeyAreAllWokenByOneNotify) {
  constexpr int kWaiters = 10000;
  WatchHub hub;
  std::vector<int> woken(kWaiters, 0);
  std::set<WatchHub::WaiterId> ids;
  for (int i = 0; i < kWaiters; ++i) {
    ids.insert(hub.add(keySpec({"hot"}), [&woken, i] { ++woken[i]; }));
  }
  int bystander = 0;
  hub.add(keySpec({"cold"}), [&] { ++bystander; });
  EXPECT_EQ(ids.size(), static_cast<size_t>(kWaiters));
  EXPECT_EQ(hub.waiting(), static_cast<size_t>(kWaiters) + 1);

  hub.notify(keys({"hot"}));
  for (int i = 0; i < kWaiters; ++i) ASSERT_EQ(woken[i], 1) << "waiter " << i;
  EXPECT_EQ(bystander, 0);
  EXPECT_EQ(hub.waiting(), 1u);

  hub.notify(keys({"hot"}));
  for (int i = 0; i < kWaiters; ++i) ASSERT_EQ(woken[i], 1) << "waiter " << i;
}

// The Changes a StateStore produces wake exactly the waiters that read what changed.
TEST(WatchHub, WakesOnChangesFromTheStore) {
  StateStore store;
  WatchHub hub;
  int web = 0, api = 0, nodes = 0, kv = 0;
  hub.add(serviceSpec({"web"}), [&] { ++web; });
  hub.add(serviceSpec({"api"}), [&] { ++api; });
  hub.add(tableSpec(true, false, false), [&] { ++nodes; });
  hub.add(prefixSpec({"cfg/"}), [&] { ++kv; });

  RegisterCommand reg;
  reg.node.name = "n1";
  reg.node.address = "10.0.0.1";
  reg.service = Service();
  reg.service->id = "web-1";
  reg.service->service = "web";
  reg.service->port = 80;
  ApplyResult r = store.apply(1, reg);
  ASSERT_FALSE(r.error.has_value());
  hub.notify(r.changes);
  EXPECT_EQ(web, 1);
  EXPECT_EQ(api, 0);
  EXPECT_EQ(nodes, 1);
  EXPECT_EQ(kv, 0);

  // Identical re-registration: empty changes, nothing woken.
  hub.add(serviceSpec({"web"}), [&] { ++web; });
  r = store.apply(2, reg);
  EXPECT_TRUE(r.changes.empty());
  hub.notify(r.changes);
  EXPECT_EQ(web, 1);

  KVSetCommand set;
  set.key = "cfg/a";
  set.value = "1";
  r = store.apply(3, set);
  hub.notify(r.changes);
  EXPECT_EQ(kv, 1);
  EXPECT_EQ(web, 1);
  EXPECT_EQ(hub.waiting(), 2u);  // the api waiter and the second web waiter
}

}  // namespace
}  // namespace taskmesh::store
