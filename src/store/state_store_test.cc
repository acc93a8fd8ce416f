#include "store/state_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "store/command.h"

namespace taskmesh::store {
namespace {

using Instances = std::map<std::string, std::set<std::pair<std::string, std::string>>>;

Node makeNode(const std::string& name, const std::string& address = "10.0.0.1") {
  Node n;
  n.name = name;
  n.address = address;
  n.datacenter = "dc1";
  return n;
}

Service makeService(const std::string& id, const std::string& name, int port = 8080) {
  Service s;
  s.id = id;
  s.service = name;
  s.port = port;
  return s;
}

Check makeCheck(const std::string& id, const std::string& serviceId,
                const std::string& status = kPassing) {
  Check c;
  c.checkId = id;
  c.name = "check " + id;
  c.serviceId = serviceId;
  c.status = status;
  return c;
}

RegisterCommand reg(const Node& node, std::optional<Service> service = std::nullopt,
                    std::vector<Check> checks = {}) {
  RegisterCommand c;
  c.node = node;
  c.service = std::move(service);
  c.checks = std::move(checks);
  return c;
}

KVSetCommand kvSet(const std::string& key, const std::string& value,
                   std::optional<uint64_t> cas = std::nullopt, uint64_t flags = 0) {
  KVSetCommand c;
  c.key = key;
  c.value = value;
  c.flags = flags;
  c.cas = cas;
  return c;
}

KVDeleteCommand kvDelete(const std::string& key, bool recurse = false,
                         std::optional<uint64_t> cas = std::nullopt) {
  KVDeleteCommand c;
  c.key = key;
  c.recurse = recurse;
  c.cas = cas;
  return c;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::set<std::string> asSet(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

// serviceInstances as it must be: derived from the services of every node.
Instances derivedInstances(const Tables& t) {
  Instances out;
  for (const auto& [name, entry] : t.nodes) {
    for (const auto& [id, svc] : entry.services) out[svc.service].insert({name, id});
  }
  return out;
}

void expectSameKv(const KVEntry& a, const KVEntry& b) {
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.lockIndex, b.lockIndex);
  EXPECT_EQ(a.session, b.session);
  EXPECT_EQ(a.createIndex, b.createIndex);
  EXPECT_EQ(a.modifyIndex, b.modifyIndex);
}

void expectSameTables(const Tables& a, const Tables& b, bool compareLastIndex = true) {
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (const auto& [name, entry] : a.nodes) {
    auto it = b.nodes.find(name);
    ASSERT_NE(it, b.nodes.end()) << name;
    EXPECT_EQ(entry.node, it->second.node) << name;
    EXPECT_EQ(entry.services, it->second.services) << name;
    EXPECT_EQ(entry.checks, it->second.checks) << name;
  }
  EXPECT_EQ(a.serviceInstances, b.serviceInstances);
  ASSERT_EQ(a.kvs.size(), b.kvs.size());
  for (const auto& [key, e] : a.kvs) {
    auto it = b.kvs.find(key);
    ASSERT_NE(it, b.kvs.end()) << key;
    expectSameKv(e, it->second);
  }
  EXPECT_EQ(a.nodesIndex, b.nodesIndex);
  EXPECT_EQ(a.servicesIndex, b.servicesIndex);
  EXPECT_EQ(a.checksIndex, b.checksIndex);
  EXPECT_EQ(a.kvsIndex, b.kvsIndex);
  EXPECT_EQ(a.serviceIndex, b.serviceIndex);
  if (compareLastIndex) {
    EXPECT_EQ(a.lastIndex, b.lastIndex);
  }
}

class StateStoreTest : public ::testing::Test {
 protected:
  ApplyResult apply(uint64_t index, const Command& c) {
    ApplyResult r = store_.apply(index, c);
    EXPECT_EQ(r.index, index);
    EXPECT_FALSE(r.error.has_value()) << r.error->message;
    return r;
  }
  Tables tables() const {
    return store_.read([](const Tables& t) { return t; });
  }
  void expectConsistentInstances() const {
    Tables t = tables();
    EXPECT_EQ(t.serviceInstances, derivedInstances(t));
  }

  StateStore store_;
};

// ---------------------------------------------------------------------------------------------
// Index rules

TEST_F(StateStoreTest, RegisterSetsEveryIndexToTheRaftIndex) {
  ApplyResult r = apply(5, reg(makeNode("n1"), makeService("web-1", "web"),
                               {makeCheck("c1", "web-1"), makeCheck("nc", "")}));
  EXPECT_TRUE(r.value);
  Tables t = tables();
  ASSERT_EQ(t.nodes.size(), 1u);
  const NodeEntry& e = t.nodes.at("n1");
  EXPECT_EQ(e.node.createIndex, 5u);
  EXPECT_EQ(e.node.modifyIndex, 5u);
  EXPECT_EQ(e.node.address, "10.0.0.1");
  ASSERT_EQ(e.services.size(), 1u);
  EXPECT_EQ(e.services.at("web-1").createIndex, 5u);
  EXPECT_EQ(e.services.at("web-1").modifyIndex, 5u);
  ASSERT_EQ(e.checks.size(), 2u);
  for (const auto& [id, c] : e.checks) {
    EXPECT_EQ(c.createIndex, 5u) << id;
    EXPECT_EQ(c.modifyIndex, 5u) << id;
    EXPECT_EQ(c.node, "n1") << id;
  }
  EXPECT_EQ(e.checks.at("c1").serviceName, "web");
  EXPECT_EQ(e.checks.at("nc").serviceName, "");
  EXPECT_EQ(t.nodesIndex, 5u);
  EXPECT_EQ(t.servicesIndex, 5u);
  EXPECT_EQ(t.checksIndex, 5u);
  EXPECT_EQ(t.kvsIndex, 0u);
  EXPECT_EQ(t.lastIndex, 5u);
  EXPECT_EQ(t.serviceIndex, (std::map<std::string, uint64_t>{{"web", 5}}));
  EXPECT_EQ(t.indexForService("web"), 5u);
  EXPECT_EQ(t.serviceInstances, (Instances{{"web", {{"n1", "web-1"}}}}));

  EXPECT_TRUE(r.changes.nodes);
  EXPECT_TRUE(r.changes.services);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_EQ(asSet(r.changes.serviceNames), std::set<std::string>{"web"});
  EXPECT_TRUE(r.changes.kvKeys.empty());
}

TEST_F(StateStoreTest, IndexesInCommandAreIgnored) {
  Node n = makeNode("n1");
  n.createIndex = 77;
  n.modifyIndex = 78;
  Service s = makeService("web-1", "web");
  s.createIndex = 79;
  s.modifyIndex = 80;
  Check c = makeCheck("c1", "web-1");
  c.createIndex = 81;
  c.modifyIndex = 82;
  apply(3, reg(n, s, {c}));
  Tables t = tables();
  const NodeEntry& e = t.nodes.at("n1");
  EXPECT_EQ(e.node.createIndex, 3u);
  EXPECT_EQ(e.node.modifyIndex, 3u);
  EXPECT_EQ(e.services.at("web-1").createIndex, 3u);
  EXPECT_EQ(e.services.at("web-1").modifyIndex, 3u);
  EXPECT_EQ(e.checks.at("c1").createIndex, 3u);
  EXPECT_EQ(e.checks.at("c1").modifyIndex, 3u);
}

TEST_F(StateStoreTest, UpdateKeepsCreateIndexAndSetsModifyIndex) {
  apply(5, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(9, reg(makeNode("n1", "10.0.0.2"), makeService("web-1", "web", 9090),
               {makeCheck("c1", "web-1", kCritical)}));
  Tables t = tables();
  const NodeEntry& e = t.nodes.at("n1");
  EXPECT_EQ(e.node.address, "10.0.0.2");
  EXPECT_EQ(e.node.createIndex, 5u);
  EXPECT_EQ(e.node.modifyIndex, 9u);
  EXPECT_EQ(e.services.at("web-1").port, 9090);
  EXPECT_EQ(e.services.at("web-1").createIndex, 5u);
  EXPECT_EQ(e.services.at("web-1").modifyIndex, 9u);
  EXPECT_EQ(e.checks.at("c1").status, kCritical);
  EXPECT_EQ(e.checks.at("c1").createIndex, 5u);
  EXPECT_EQ(e.checks.at("c1").modifyIndex, 9u);
  EXPECT_EQ(t.nodesIndex, 9u);
  EXPECT_EQ(t.servicesIndex, 9u);
  EXPECT_EQ(t.checksIndex, 9u);
  EXPECT_EQ(t.indexForService("web"), 9u);
}

TEST_F(StateStoreTest, ReRegisteringIdenticalContentChangesNothing) {
  RegisterCommand c = reg(makeNode("n1"), makeService("web-1", "web"),
                          {makeCheck("c1", "web-1"), makeCheck("nc", "")});
  apply(5, c);
  Tables before = tables();
  // Same content; stale indexes in the command must not count as a difference.
  c.node.modifyIndex = 4;
  c.service->modifyIndex = 4;
  c.checks[0].modifyIndex = 4;
  ApplyResult r = apply(6, c);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_FALSE(r.changes.services);
  EXPECT_FALSE(r.changes.checks);
  EXPECT_TRUE(r.changes.serviceNames.empty());
  Tables after = tables();
  expectSameTables(before, after, /*compareLastIndex=*/false);
  EXPECT_EQ(after.lastIndex, 6u);
  EXPECT_EQ(after.nodes.at("n1").node.modifyIndex, 5u);
}

TEST_F(StateStoreTest, SkipNodeUpdateKeepsExistingNodeButCreatesMissingOne) {
  RegisterCommand first = reg(makeNode("n1", "10.0.0.9"));
  first.skipNodeUpdate = true;
  ApplyResult r = apply(2, first);  // missing node: created anyway
  EXPECT_TRUE(r.changes.nodes);
  EXPECT_EQ(tables().nodes.at("n1").node.address, "10.0.0.9");

  RegisterCommand second = reg(makeNode("n1", "10.0.0.1"), makeService("web-1", "web"));
  second.skipNodeUpdate = true;
  r = apply(4, second);
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_TRUE(r.changes.services);
  Tables t = tables();
  EXPECT_EQ(t.nodes.at("n1").node.address, "10.0.0.9");
  EXPECT_EQ(t.nodes.at("n1").node.modifyIndex, 2u);
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_EQ(t.servicesIndex, 4u);
}

TEST_F(StateStoreTest, NodeChangeBumpsServicesOfThatNodeOnly) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web")));
  apply(3, reg(makeNode("n2", "10.0.0.2"), makeService("api-1", "api")));
  ApplyResult r = apply(10, reg(makeNode("n1", "10.0.0.99")));
  Tables t = tables();
  EXPECT_EQ(t.nodesIndex, 10u);
  EXPECT_EQ(t.servicesIndex, 3u);
  EXPECT_EQ(t.checksIndex, 0u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 3u);
  EXPECT_TRUE(r.changes.nodes);
  EXPECT_FALSE(r.changes.services);
  EXPECT_FALSE(r.changes.checks);
  EXPECT_EQ(asSet(r.changes.serviceNames), std::set<std::string>{"web"});
}

TEST_F(StateStoreTest, IndexForServiceFallsBackToServicesTable) {
  apply(4, reg(makeNode("n1"), makeService("web-1", "web")));
  apply(6, reg(makeNode("n1"), makeService("api-1", "api")));
  Tables t = tables();
  EXPECT_EQ(t.indexForService("web"), 4u);
  EXPECT_EQ(t.indexForService("api"), 6u);
  EXPECT_EQ(t.indexForService("unknown"), 6u);
  EXPECT_EQ(t.servicesIndex, 6u);
}

TEST_F(StateStoreTest, ServiceRegistrationMovesOnlyItsOwnServiceIndex) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web")));
  ApplyResult r = apply(5, reg(makeNode("n1"), makeService("api-1", "api")));
  Tables t = tables();
  EXPECT_EQ(t.indexForService("web"), 2u);
  EXPECT_EQ(t.indexForService("api"), 5u);
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_EQ(t.checksIndex, 0u);
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_TRUE(r.changes.services);
  EXPECT_FALSE(r.changes.checks);
  EXPECT_EQ(r.changes.serviceNames, std::vector<std::string>{"api"});
}

TEST_F(StateStoreTest, CheckStatusChangeBumpsItsServiceIndex) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api"), {makeCheck("c2", "api-1")}));
  // Only the check, naming a service already on the node.
  ApplyResult r =
      apply(10, reg(makeNode("n1"), std::nullopt, {makeCheck("c1", "web-1", kWarning)}));
  Tables t = tables();
  EXPECT_EQ(t.nodes.at("n1").checks.at("c1").status, kWarning);
  EXPECT_EQ(t.nodes.at("n1").checks.at("c1").modifyIndex, 10u);
  EXPECT_EQ(t.nodes.at("n1").checks.at("c2").modifyIndex, 3u);
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 3u);
  EXPECT_EQ(t.servicesIndex, 3u);
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_FALSE(r.changes.services);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_EQ(asSet(r.changes.serviceNames), std::set<std::string>{"web"});
}

TEST_F(StateStoreTest, NodeLevelCheckChangeBumpsEveryServiceOfTheNode) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web")));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api")));
  apply(4, reg(makeNode("n2", "10.0.0.2"), makeService("db-1", "db")));

  ApplyResult r = apply(10, reg(makeNode("n1"), std::nullopt, {makeCheck("maint", "")}));
  Tables t = tables();
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 10u);
  EXPECT_EQ(t.indexForService("db"), 4u);
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.servicesIndex, 4u);
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));
  EXPECT_TRUE(r.changes.checks);

  r = apply(11, reg(makeNode("n1"), std::nullopt, {makeCheck("maint", "", kCritical)}));
  t = tables();
  EXPECT_EQ(t.indexForService("web"), 11u);
  EXPECT_EQ(t.indexForService("api"), 11u);
  EXPECT_EQ(t.indexForService("db"), 4u);
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));
}

TEST_F(StateStoreTest, ChecksForInstanceReturnsServiceAndNodeChecks) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"),
               {makeCheck("c1", "web-1"), makeCheck("nc", "")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api"), {makeCheck("c2", "api-1")}));
  store_.read([](const Tables& t) {
    std::set<std::string> ids;
    for (const Check* c : t.checksForInstance(t.nodes.at("n1"), "web-1")) ids.insert(c->checkId);
    EXPECT_EQ(ids, (std::set<std::string>{"c1", "nc"}));
    return 0;
  });
}

TEST_F(StateStoreTest, CheckNamingUnknownServiceIsRejectedAndChangesNothing) {
  apply(5, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(6, reg(makeNode("n2", "10.0.0.2"), makeService("api-1", "api")));
  Tables before = tables();

  // Node change, valid new service, valid check, then a check naming an unknown service.
  RegisterCommand bad = reg(makeNode("n1", "10.9.9.9"), makeService("db-1", "db"),
                            {makeCheck("c1", "web-1", kCritical), makeCheck("c9", "ghost")});
  ApplyResult r = store_.apply(7, bad);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error->message.find("ghost"), std::string::npos) << r.error->message;
  EXPECT_TRUE(r.changes.empty());
  expectSameTables(before, tables(), /*compareLastIndex=*/false);

  // A service registered on another node is unknown on this one.
  r = store_.apply(8, reg(makeNode("n1"), std::nullopt, {makeCheck("c3", "api-1")}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(r.changes.empty());
  expectSameTables(before, tables(), /*compareLastIndex=*/false);

  // A check for a node that does not exist yet, naming a service, creates nothing.
  r = store_.apply(9, reg(makeNode("n3"), std::nullopt, {makeCheck("c4", "web-1")}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_FALSE(tables().nodes.contains("n3"));
  expectSameTables(before, tables(), /*compareLastIndex=*/false);
}

// A check that moves from one service to another leaves the first service's health answer
// too, so both services' indexes must move.
TEST_F(StateStoreTest, CheckMovedToAnotherServiceBumpsBothServices) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api")));
  ApplyResult r = apply(10, reg(makeNode("n1"), std::nullopt, {makeCheck("c1", "api-1")}));
  Tables t = tables();
  EXPECT_EQ(t.nodes.at("n1").checks.at("c1").serviceName, "api");
  EXPECT_EQ(t.indexForService("api"), 10u);
  EXPECT_EQ(t.indexForService("web"), 10u);  // web's health answer lost c1
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));
}

// A node-level check is part of every instance's health answer on the node; turning it into a
// check of one service removes it from the others.
TEST_F(StateStoreTest, NodeCheckBecomingServiceCheckBumpsEveryServiceOfTheNode) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web")));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api"), {makeCheck("maint", "")}));
  ApplyResult r = apply(10, reg(makeNode("n1"), std::nullopt, {makeCheck("maint", "web-1")}));
  Tables t = tables();
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 10u);  // api's health answer lost "maint"
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));
}

// Re-registering a service ID under another name moves the instance between names.
TEST_F(StateStoreTest, ServiceRenamedKeepsInstancesConsistent) {
  apply(2, reg(makeNode("n1"), makeService("s1", "web")));
  ApplyResult r = apply(5, reg(makeNode("n1"), makeService("s1", "www")));
  Tables t = tables();
  EXPECT_EQ(t.nodes.at("n1").services.at("s1").service, "www");
  EXPECT_EQ(t.nodes.at("n1").services.at("s1").createIndex, 2u);
  EXPECT_EQ(t.indexForService("web"), 5u);
  EXPECT_EQ(t.indexForService("www"), 5u);
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "www"}));
  // "web" has no instance left, so it must not appear in serviceInstances at all.
  EXPECT_FALSE(t.serviceInstances.contains("web"));
  EXPECT_EQ(t.serviceInstances, derivedInstances(t));
}

// After a rename, the service's existing checks belong to the new name: removing or changing
// one of them must move the new name's index.
TEST_F(StateStoreTest, ChecksFollowARenamedService) {
  apply(2, reg(makeNode("n1"), makeService("s1", "web"), {makeCheck("c1", "s1")}));
  apply(3, reg(makeNode("n1"), makeService("s1", "www")));
  Tables t = tables();
  EXPECT_EQ(t.nodes.at("n1").checks.at("c1").serviceName, "www");

  ApplyResult r = apply(10, DeregisterCommand{"n1", "", "c1"});
  t = tables();
  EXPECT_EQ(t.indexForService("www"), 10u);  // www's health answer lost c1
  EXPECT_TRUE(asSet(r.changes.serviceNames).contains("www"));
}

// ---------------------------------------------------------------------------------------------
// Deregistration

TEST_F(StateStoreTest, DeregisterServiceCheck) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api")));
  ApplyResult r = apply(10, DeregisterCommand{"n1", "", "c1"});
  Tables t = tables();
  EXPECT_FALSE(t.nodes.at("n1").checks.contains("c1"));
  EXPECT_EQ(t.nodes.at("n1").services.size(), 2u);
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 3u);
  EXPECT_EQ(t.servicesIndex, 3u);
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_FALSE(r.changes.services);
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_EQ(r.changes.serviceNames, std::vector<std::string>{"web"});
}

TEST_F(StateStoreTest, DeregisterNodeLevelCheckBumpsEveryServiceOfTheNode) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("nc", "")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api")));
  apply(4, reg(makeNode("n2", "10.0.0.2"), makeService("db-1", "db")));
  ApplyResult r = apply(10, DeregisterCommand{"n1", "", "nc"});
  Tables t = tables();
  EXPECT_TRUE(t.nodes.at("n1").checks.empty());
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 10u);
  EXPECT_EQ(t.indexForService("db"), 4u);
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));
}

TEST_F(StateStoreTest, DeregisterServiceDropsItsChecks) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"),
               {makeCheck("c1", "web-1"), makeCheck("c2", "web-1"), makeCheck("nc", "")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api"), {makeCheck("c3", "api-1")}));
  ApplyResult r = apply(10, DeregisterCommand{"n1", "web-1", ""});
  Tables t = tables();
  const NodeEntry& e = t.nodes.at("n1");
  EXPECT_EQ(e.services.size(), 1u);
  EXPECT_TRUE(e.services.contains("api-1"));
  std::set<std::string> checkIds;
  for (const auto& [id, c] : e.checks) checkIds.insert(id);
  EXPECT_EQ(checkIds, (std::set<std::string>{"c3", "nc"}));
  EXPECT_EQ(t.servicesIndex, 10u);
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 3u);
  EXPECT_FALSE(t.serviceInstances.contains("web"));
  EXPECT_EQ(t.serviceInstances, derivedInstances(t));
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_TRUE(r.changes.services);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_EQ(r.changes.serviceNames, std::vector<std::string>{"web"});

  // A service without checks leaves the checks table alone.
  r = apply(11, DeregisterCommand{"n1", "api-1", ""});
  t = tables();
  EXPECT_EQ(t.servicesIndex, 11u);
  EXPECT_EQ(t.checksIndex, 11u);  // c3 belonged to api-1
  EXPECT_TRUE(r.changes.checks);
  apply(12, reg(makeNode("n1"), makeService("db-1", "db")));
  r = apply(13, DeregisterCommand{"n1", "db-1", ""});
  t = tables();
  EXPECT_EQ(t.servicesIndex, 13u);
  EXPECT_EQ(t.checksIndex, 11u);
  EXPECT_FALSE(r.changes.checks);
  EXPECT_TRUE(t.serviceInstances.empty());
}

TEST_F(StateStoreTest, DeregisterNodeDropsEverything) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"),
               {makeCheck("c1", "web-1"), makeCheck("nc", "")}));
  apply(3, reg(makeNode("n1"), makeService("api-1", "api")));
  apply(4,
        reg(makeNode("n2", "10.0.0.2"), makeService("web-2", "web"), {makeCheck("c2", "web-2")}));
  ApplyResult r = apply(10, DeregisterCommand{"n1", "", ""});
  Tables t = tables();
  EXPECT_FALSE(t.nodes.contains("n1"));
  ASSERT_TRUE(t.nodes.contains("n2"));
  EXPECT_EQ(t.nodes.at("n2").services.size(), 1u);
  EXPECT_EQ(t.nodes.at("n2").checks.size(), 1u);
  EXPECT_EQ(t.serviceInstances, (Instances{{"web", {{"n2", "web-2"}}}}));
  EXPECT_EQ(t.serviceInstances, derivedInstances(t));
  EXPECT_EQ(t.nodesIndex, 10u);
  EXPECT_EQ(t.servicesIndex, 10u);
  EXPECT_EQ(t.checksIndex, 10u);
  EXPECT_EQ(t.indexForService("web"), 10u);
  EXPECT_EQ(t.indexForService("api"), 10u);
  EXPECT_TRUE(r.changes.nodes);
  EXPECT_TRUE(r.changes.services);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_EQ(asSet(r.changes.serviceNames), (std::set<std::string>{"web", "api"}));

  // A node with only a node-level check.
  apply(11, reg(makeNode("n3"), std::nullopt, {makeCheck("nc3", "")}));
  r = apply(12, DeregisterCommand{"n3", "", ""});
  t = tables();
  EXPECT_EQ(t.nodesIndex, 12u);
  EXPECT_EQ(t.checksIndex, 12u);
  EXPECT_EQ(t.servicesIndex, 10u);
  EXPECT_TRUE(r.changes.nodes);
  EXPECT_TRUE(r.changes.checks);
  EXPECT_FALSE(r.changes.services);
  EXPECT_TRUE(r.changes.serviceNames.empty());
}

TEST_F(StateStoreTest, DeregisteringSomethingMissingIsANoOp) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  Tables before = tables();
  for (const DeregisterCommand& c :
       {DeregisterCommand{"ghost", "", ""}, DeregisterCommand{"ghost", "web-1", ""},
        DeregisterCommand{"n1", "ghost", ""}, DeregisterCommand{"n1", "", "ghost"}}) {
    SCOPED_TRACE(c.node + "/" + c.serviceId + "/" + c.checkId);
    ApplyResult r = apply(7, c);
    EXPECT_TRUE(r.value);
    EXPECT_TRUE(r.changes.empty());
    expectSameTables(before, tables(), /*compareLastIndex=*/false);
  }
}

TEST_F(StateStoreTest, ServiceInstancesStayConsistentThroughASequence) {
  uint64_t idx = 1;
  for (int n = 0; n < 3; ++n) {
    std::string node = "n" + std::to_string(n);
    for (int s = 0; s < 3; ++s) {
      std::string id = "svc" + std::to_string(s) + "-" + node;
      apply(idx++, reg(makeNode(node), makeService(id, "svc" + std::to_string(s)),
                       {makeCheck("chk-" + id, id)}));
    }
  }
  expectConsistentInstances();
  apply(idx++, DeregisterCommand{"n0", "svc1-n0", ""});
  expectConsistentInstances();
  apply(idx++, DeregisterCommand{"n1", "", ""});
  expectConsistentInstances();
  apply(idx++, DeregisterCommand{"n2", "", "chk-svc2-n2"});
  expectConsistentInstances();
  Tables t = tables();
  EXPECT_EQ(t.serviceInstances.at("svc1"),
            (std::set<std::pair<std::string, std::string>>{{"n2", "svc1-n2"}}));
  EXPECT_EQ(t.nodes.size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// KV

TEST_F(StateStoreTest, KVSetAndOverwrite) {
  ApplyResult r = apply(3, kvSet("a/b", "v1", std::nullopt, 42));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.changes.kvKeys, std::vector<std::string>{"a/b"});
  EXPECT_FALSE(r.changes.nodes);
  EXPECT_FALSE(r.changes.services);
  EXPECT_FALSE(r.changes.checks);
  EXPECT_TRUE(r.changes.serviceNames.empty());
  Tables t = tables();
  ASSERT_TRUE(t.kvs.contains("a/b"));
  const KVEntry& e = t.kvs.at("a/b");
  EXPECT_EQ(e.key, "a/b");
  EXPECT_EQ(e.value, "v1");
  EXPECT_EQ(e.flags, 42u);
  EXPECT_EQ(e.createIndex, 3u);
  EXPECT_EQ(e.modifyIndex, 3u);
  EXPECT_EQ(t.kvsIndex, 3u);
  EXPECT_EQ(t.nodesIndex, 0u);

  r = apply(7, kvSet("a/b", "v2"));
  EXPECT_TRUE(r.value);
  t = tables();
  EXPECT_EQ(t.kvs.at("a/b").value, "v2");
  EXPECT_EQ(t.kvs.at("a/b").flags, 0u);
  EXPECT_EQ(t.kvs.at("a/b").createIndex, 3u);
  EXPECT_EQ(t.kvs.at("a/b").modifyIndex, 7u);
  EXPECT_EQ(t.kvsIndex, 7u);
  EXPECT_EQ(t.lastIndex, 7u);

  apply(8, kvSet("other", "x"));
  t = tables();
  EXPECT_EQ(t.kvs.at("a/b").modifyIndex, 7u);
  EXPECT_EQ(t.kvsIndex, 8u);
}

TEST_F(StateStoreTest, KVValuesAreRawBytes) {
  const std::string value("\0bin\xff\0\x01", 7);
  apply(2, kvSet("bin", value));
  apply(3, kvSet("empty", ""));
  Tables t = tables();
  EXPECT_EQ(t.kvs.at("bin").value, value);
  EXPECT_EQ(t.kvs.at("bin").value.size(), 7u);
  EXPECT_EQ(t.kvs.at("empty").value, "");
}

TEST_F(StateStoreTest, KVCasZeroCreatesOnlyIfAbsent) {
  ApplyResult r = apply(4, kvSet("k", "first", 0));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.changes.kvKeys, std::vector<std::string>{"k"});
  Tables before = tables();
  EXPECT_EQ(before.kvs.at("k").value, "first");

  r = apply(5, kvSet("k", "second", 0, 9));
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(r.changes.empty());
  Tables t = tables();
  expectSameTables(before, t, /*compareLastIndex=*/false);
  EXPECT_EQ(t.kvs.at("k").value, "first");
  EXPECT_EQ(t.kvs.at("k").modifyIndex, 4u);
  EXPECT_EQ(t.kvsIndex, 4u);
}

TEST_F(StateStoreTest, KVCasIndexMustEqualModifyIndex) {
  apply(4, kvSet("k", "v1"));
  apply(5, kvSet("other", "x"));

  ApplyResult r = apply(6, kvSet("k", "bad", 5));  // kvsIndex, not the key's ModifyIndex
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(tables().kvs.at("k").value, "v1");
  EXPECT_EQ(tables().kvsIndex, 5u);

  r = apply(8, kvSet("k", "v2", 4));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.changes.kvKeys, std::vector<std::string>{"k"});
  Tables t = tables();
  EXPECT_EQ(t.kvs.at("k").value, "v2");
  EXPECT_EQ(t.kvs.at("k").modifyIndex, 8u);
  EXPECT_EQ(t.kvs.at("k").createIndex, 4u);
  EXPECT_EQ(t.kvsIndex, 8u);

  r = apply(9, kvSet("k", "v3", 4));  // stale now
  EXPECT_FALSE(r.value);
  EXPECT_EQ(tables().kvs.at("k").value, "v2");

  r = apply(10, kvSet("missing", "v", 8));  // cas=N never creates
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_FALSE(tables().kvs.contains("missing"));
  EXPECT_EQ(tables().kvsIndex, 8u);
}

TEST_F(StateStoreTest, KVDelete) {
  apply(2, kvSet("a", "1"));
  apply(3, kvSet("b", "2"));
  ApplyResult r = apply(5, kvDelete("a"));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.changes.kvKeys, std::vector<std::string>{"a"});
  Tables t = tables();
  EXPECT_FALSE(t.kvs.contains("a"));
  EXPECT_TRUE(t.kvs.contains("b"));
  EXPECT_EQ(t.kvsIndex, 5u);

  r = apply(6, kvDelete("a"));  // already gone
  EXPECT_TRUE(r.value);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(tables().kvsIndex, 5u);
}

TEST_F(StateStoreTest, KVRecursiveDeleteRemovesOnlyThePrefix) {
  uint64_t idx = 1;
  for (const char* k : {"a", "a/", "a/b", "a/b/c", "ab", "b", "b/a/"}) apply(idx++, kvSet(k, k));
  ApplyResult r = apply(10, kvDelete("a/", true));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(sorted(r.changes.kvKeys), (std::vector<std::string>{"a/", "a/b", "a/b/c"}));
  Tables t = tables();
  std::vector<std::string> left;
  for (const auto& [k, e] : t.kvs) left.push_back(k);
  EXPECT_EQ(left, (std::vector<std::string>{"a", "ab", "b", "b/a/"}));
  EXPECT_EQ(t.kvsIndex, 10u);

  r = apply(11, kvDelete("zzz/", true));  // nothing under the prefix
  EXPECT_TRUE(r.value);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(tables().kvsIndex, 10u);

  r = apply(12, kvDelete("", true));  // the whole KV
  EXPECT_EQ(sorted(r.changes.kvKeys), (std::vector<std::string>{"a", "ab", "b", "b/a/"}));
  EXPECT_TRUE(tables().kvs.empty());
  EXPECT_EQ(tables().kvsIndex, 12u);
}

TEST_F(StateStoreTest, KVCasDelete) {
  ApplyResult r = apply(2, kvDelete("missing", false, 5));
  EXPECT_TRUE(r.value);  // Consul: deleting a missing key with cas succeeds
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(tables().kvsIndex, 0u);

  apply(3, kvSet("k", "v"));
  apply(4, kvSet("k", "v2"));  // ModifyIndex 4
  r = apply(5, kvDelete("k", false, 3));
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_TRUE(tables().kvs.contains("k"));
  EXPECT_EQ(tables().kvsIndex, 4u);

  r = apply(6, kvDelete("k", false, 0));  // cas=0 never matches an existing key
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(tables().kvs.contains("k"));

  r = apply(7, kvDelete("k", false, 4));
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.changes.kvKeys, std::vector<std::string>{"k"});
  EXPECT_FALSE(tables().kvs.contains("k"));
  EXPECT_EQ(tables().kvsIndex, 7u);
}

TEST_F(StateStoreTest, KVCommandsLeaveCatalogIndexesAlone) {
  apply(2, reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}));
  apply(3, kvSet("k", "v"));
  apply(4, kvDelete("k"));
  Tables t = tables();
  EXPECT_EQ(t.nodesIndex, 2u);
  EXPECT_EQ(t.servicesIndex, 2u);
  EXPECT_EQ(t.checksIndex, 2u);
  EXPECT_EQ(t.indexForService("web"), 2u);
  EXPECT_EQ(t.kvsIndex, 4u);
  EXPECT_EQ(t.lastIndex, 4u);
}

// ---------------------------------------------------------------------------------------------
// Snapshots

// Builds a store touching every field the snapshot has to carry.
void populate(StateStore& s) {
  Node n1 = makeNode("n1");
  n1.id = "40e4a748-2192-161a-0510-9bf59fe950b5";
  n1.taggedAddresses = {{"lan", "10.0.0.1"}, {"wan", "198.51.100.1"}};
  n1.meta = {{"rack", "r1"}};
  Service web = makeService("web-1", "web");
  web.tags = {"v1", "primary"};
  web.address = "10.0.0.11";
  web.meta = {{"version", "1.2"}};
  web.taggedAddresses = {{"lan", {"10.0.0.11", 8080}}, {"wan", {"198.51.100.11", 18080}}};
  web.weights = {3, 2};
  web.enableTagOverride = true;
  Service proxy = makeService("web-1-sidecar-proxy", "web-sidecar-proxy", 21000);
  proxy.kind = "connect-proxy";
  proxy.proxy =
      Json{{"DestinationServiceName", "web"},
           {"LocalServicePort", 8080},
           {"Upstreams", Json::array({{{"DestinationName", "db"}, {"LocalBindPort", 5432}}})},
           {"Ratio", 0.5}};
  proxy.connect = Json{{"Native", false}};
  Check c1 = makeCheck("c1", "web-1", kWarning);
  c1.notes = "notes";
  c1.output = "HTTP GET: 503";
  c1.type = "http";
  c1.interval = "10s";
  c1.timeout = "1s";
  c1.definition = Json{{"HTTP", "http://localhost:8080/health"}, {"Interval", "10s"}};

  EXPECT_FALSE(s.apply(2, reg(n1, web, {c1, makeCheck("nc", "")})).error);
  EXPECT_FALSE(s.apply(3, reg(n1, proxy, {makeCheck("pc", "web-1-sidecar-proxy")})).error);
  EXPECT_FALSE(s.apply(4, reg(makeNode("n2", "10.0.0.2"), makeService("web-2", "web"))).error);
  EXPECT_FALSE(s.apply(5, reg(makeNode("n2", "10.0.0.2"), makeService("db-1", "db"))).error);
  EXPECT_FALSE(s.apply(6, reg(makeNode("n3", "10.0.0.3"), makeService("tmp", "tmp"))).error);
  EXPECT_FALSE(s.apply(7, DeregisterCommand{"n3", "", ""}).error);
  EXPECT_FALSE(s.apply(8, kvSet("app/config", std::string("a\0b\xff", 4), std::nullopt, 7)).error);
  EXPECT_FALSE(s.apply(9, kvSet("app/empty", "")).error);
  EXPECT_FALSE(s.apply(10, kvSet("app/config", "v2")).error);
  EXPECT_FALSE(s.apply(11, kvSet("gone", "x")).error);
  EXPECT_FALSE(s.apply(12, kvDelete("gone")).error);
  EXPECT_FALSE(s.apply(13, reg(n1, std::nullopt, {makeCheck("nc", "", kCritical)})).error);
}

TEST(StateStoreSnapshot, RestoreReproducesTablesAndIndexes) {
  StateStore a;
  populate(a);
  Tables ta = a.read([](const Tables& t) { return t; });
  // The populated state has distinct indexes per table, so a mix-up would show.
  EXPECT_EQ(ta.nodesIndex, 7u);
  EXPECT_EQ(ta.servicesIndex, 7u);
  EXPECT_EQ(ta.checksIndex, 13u);
  EXPECT_EQ(ta.kvsIndex, 12u);
  EXPECT_EQ(ta.lastIndex, 13u);
  EXPECT_EQ(ta.indexForService("db"), 5u);
  EXPECT_EQ(ta.indexForService("tmp"), 7u);

  std::string bytes = a.snapshot();
  StateStore b;
  auto restored = b.restore(bytes);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  Tables tb = b.read([](const Tables& t) { return t; });
  expectSameTables(ta, tb);
  EXPECT_EQ(tb.serviceInstances, derivedInstances(tb));
  EXPECT_EQ(tb.kvs.at("app/config").value, "v2");
  EXPECT_EQ(tb.nodes.at("n1").services.at("web-1-sidecar-proxy").proxy.at("Ratio"), 0.5);
  // Serialisation is deterministic: the restored store snapshots to the same bytes.
  EXPECT_EQ(b.snapshot(), bytes);

  // Both stores keep evolving identically.
  for (StateStore* s : {&a, &b}) {
    EXPECT_FALSE(
        s->apply(14, reg(makeNode("n2", "10.0.0.2"), std::nullopt, {makeCheck("nc2", "")})).error);
    EXPECT_FALSE(s->apply(15, DeregisterCommand{"n1", "web-1", ""}).error);
    EXPECT_FALSE(s->apply(16, kvSet("app/config", "v3", 10)).error);
  }
  expectSameTables(a.read([](const Tables& t) { return t; }),
                   b.read([](const Tables& t) { return t; }));
  EXPECT_EQ(b.read([](const Tables& t) { return t.kvs.at("app/config").value; }), "v3");
}

TEST(StateStoreSnapshot, RestoreReplacesAllPreviousState) {
  StateStore a;
  ASSERT_FALSE(a.apply(3, kvSet("only-in-a", "x")).error);
  StateStore b;
  populate(b);
  auto restored = b.restore(a.snapshot());
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  expectSameTables(a.read([](const Tables& t) { return t; }),
                   b.read([](const Tables& t) { return t; }));
  b.read([](const Tables& t) {
    EXPECT_TRUE(t.nodes.empty());
    EXPECT_TRUE(t.serviceInstances.empty());
    EXPECT_TRUE(t.serviceIndex.empty());
    EXPECT_EQ(t.lastIndex, 3u);  // indexes may go back through a restore
    return 0;
  });
}

TEST(StateStoreSnapshot, EmptyStoreRoundTrips) {
  StateStore a;
  StateStore b;
  ASSERT_FALSE(b.apply(2, kvSet("k", "v")).error);
  auto restored = b.restore(a.snapshot());
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  expectSameTables(Tables{}, b.read([](const Tables& t) { return t; }));
}

TEST(StateStoreSnapshot, RestoreOfGarbageFailsAndKeepsState) {
  StateStore s;
  populate(s);
  Tables before = s.read([](const Tables& t) { return t; });
  std::string good = s.snapshot();

  std::vector<std::string> bad = {
      "",
      "garbage",
      std::string("\x00", 1),
      "\xff\xff\xff",
      std::string("\x81\xa7version\x02", 10),  // {"version": 2}
  };
  {
    std::vector<uint8_t> v = Json::to_msgpack(Json{{"version", 1}});  // no tables
    bad.emplace_back(v.begin(), v.end());
    v = Json::to_msgpack(Json{{"version", 1}, {"nodes", 5}, {"kvs", "x"}});
    bad.emplace_back(v.begin(), v.end());
    v = Json::to_msgpack(Json::array({1, 2, 3}));
    bad.emplace_back(v.begin(), v.end());
  }
  for (size_t n = 0; n < good.size(); n += std::max<size_t>(1, good.size() / 200)) {
    bad.push_back(good.substr(0, n));  // every truncation is incomplete
  }
  for (const std::string& bytes : bad) {
    SCOPED_TRACE("input size " + std::to_string(bytes.size()));
    Result<void> r;
    EXPECT_NO_THROW(r = s.restore(bytes));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(r.error().message.empty());
  }
  expectSameTables(before, s.read([](const Tables& t) { return t; }));
}

// A server that restored a snapshot must hold the same tables as one that applied the log:
// applying and restoring must agree after a service changes its name.
TEST(StateStoreSnapshot, RestoredStoreMatchesAppliedStoreAfterServiceRename) {
  StateStore a;
  ASSERT_FALSE(a.apply(2, reg(makeNode("n1"), makeService("s1", "web"))).error);
  ASSERT_FALSE(a.apply(3, reg(makeNode("n1"), makeService("s1", "www"))).error);
  StateStore b;
  ASSERT_TRUE(b.restore(a.snapshot()).has_value());
  expectSameTables(a.read([](const Tables& t) { return t; }),
                   b.read([](const Tables& t) { return t; }));
}

// ---------------------------------------------------------------------------------------------
// Command encoding

template <typename T>
T roundTrip(const T& in) {
  std::string bytes = encodeCommand(Command{in});
  Result<Command> out = decodeCommand(bytes);
  EXPECT_TRUE(out.has_value()) << out.error().message;
  if (!out.has_value()) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*out));
  if (!std::holds_alternative<T>(*out)) return T{};
  return std::get<T>(*out);
}

TEST(Command, RegisterRoundTrips) {
  RegisterCommand in;
  in.node = makeNode("n1");
  in.node.id = "40e4a748-2192-161a-0510-9bf59fe950b5";
  in.node.taggedAddresses = {{"lan", "10.0.0.1"}};
  in.node.meta = {{"synthetic-node", "true"}};
  in.skipNodeUpdate = true;
  Service s = makeService("web-1", "web");
  s.kind = "connect-proxy";
  s.tags = {"a", "b"};
  s.address = "10.0.0.5";
  s.meta = {{"k", "v"}};
  s.taggedAddresses = {{"lan", {"10.0.0.5", 8080}}};
  s.weights = {10, 1};
  s.enableTagOverride = true;
  s.proxy = Json{{"DestinationServiceName", "web"}, {"LocalServicePort", 8080}};
  s.connect = Json{{"Native", true}};
  in.service = s;
  Check c = makeCheck("c1", "web-1", kWarning);
  c.node = "n1";
  c.notes = "n";
  c.output = "out";
  c.serviceName = "web";
  c.type = "tcp";
  c.interval = "5s";
  c.timeout = "2s";
  c.definition = Json{{"TCP", "10.0.0.5:8080"}};
  in.checks = {c, makeCheck("nc", "")};

  RegisterCommand out = roundTrip(in);
  EXPECT_EQ(out.node, in.node);
  EXPECT_EQ(out.skipNodeUpdate, true);
  ASSERT_TRUE(out.service.has_value());
  EXPECT_EQ(*out.service, *in.service);
  EXPECT_EQ(out.checks, in.checks);

  RegisterCommand bare;
  bare.node = makeNode("n2");
  out = roundTrip(bare);
  EXPECT_EQ(out.node, bare.node);
  EXPECT_FALSE(out.skipNodeUpdate);
  EXPECT_FALSE(out.service.has_value());
  EXPECT_TRUE(out.checks.empty());
}

TEST(Command, DeregisterRoundTrips) {
  DeregisterCommand out = roundTrip(DeregisterCommand{"n1", "web-1", "c1"});
  EXPECT_EQ(out.node, "n1");
  EXPECT_EQ(out.serviceId, "web-1");
  EXPECT_EQ(out.checkId, "c1");
  out = roundTrip(DeregisterCommand{"n2", "", ""});
  EXPECT_EQ(out.node, "n2");
  EXPECT_EQ(out.serviceId, "");
  EXPECT_EQ(out.checkId, "");
}

TEST(Command, KVSetRoundTripsBinaryValues) {
  std::string value("\0\x01\xff\xfe\0tail\0", 10);
  KVSetCommand out = roundTrip(kvSet("bin/key", value, 17, 0xFFFFFFFFFFFFFFFFull));
  EXPECT_EQ(out.key, "bin/key");
  EXPECT_EQ(out.value, value);
  EXPECT_EQ(out.value.size(), 10u);
  EXPECT_EQ(out.flags, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(out.cas, std::optional<uint64_t>(17));

  out = roundTrip(kvSet("k", "", 0));
  EXPECT_EQ(out.value, "");
  EXPECT_EQ(out.cas, std::optional<uint64_t>(0));  // cas=0 is not "no cas"

  out = roundTrip(kvSet("k", "v"));
  EXPECT_FALSE(out.cas.has_value());
  EXPECT_EQ(out.flags, 0u);
}

TEST(Command, KVDeleteRoundTrips) {
  KVDeleteCommand out = roundTrip(kvDelete("a/", true));
  EXPECT_EQ(out.key, "a/");
  EXPECT_TRUE(out.recurse);
  EXPECT_FALSE(out.cas.has_value());
  out = roundTrip(kvDelete("k", false, 0));
  EXPECT_EQ(out.key, "k");
  EXPECT_FALSE(out.recurse);
  EXPECT_EQ(out.cas, std::optional<uint64_t>(0));
  out = roundTrip(kvDelete("k", false, 123456789012ull));
  EXPECT_EQ(out.cas, std::optional<uint64_t>(123456789012ull));
}

TEST(Command, DecodedCommandAppliesLikeTheOriginal) {
  std::vector<Command> log = {
      reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")}),
      kvSet("k", std::string("\0v", 2), 0, 3),
      kvDelete("k", false, 2),
      DeregisterCommand{"n1", "web-1", ""},
  };
  StateStore direct;
  StateStore replayed;
  uint64_t idx = 1;
  for (const Command& c : log) {
    ApplyResult r1 = direct.apply(idx, c);
    Result<Command> decoded = decodeCommand(encodeCommand(c));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
    ApplyResult r2 = replayed.apply(idx, *decoded);
    EXPECT_EQ(r1.value, r2.value);
    EXPECT_EQ(r1.changes.kvKeys, r2.changes.kvKeys);
    EXPECT_EQ(r1.changes.serviceNames, r2.changes.serviceNames);
    ++idx;
  }
  expectSameTables(direct.read([](const Tables& t) { return t; }),
                   replayed.read([](const Tables& t) { return t; }));
}

TEST(Command, DecodeOfGarbageReturnsAnError) {
  std::vector<std::string> bad = {"", "garbage", std::string("\0", 1), "\xc1", "\xff\xff"};
  {
    std::vector<uint8_t> v = Json::to_msgpack(Json{{"t", 9}, {"b", Json::object()}});
    bad.emplace_back(v.begin(), v.end());  // unknown type
    v = Json::to_msgpack(Json{{"t", 3}, {"b", {{"k", "key"}, {"v", "not binary"}, {"f", 0}}}});
    bad.emplace_back(v.begin(), v.end());
    v = Json::to_msgpack(Json{{"t", 2}, {"b", {{"node", 5}}}});
    bad.emplace_back(v.begin(), v.end());
    v = Json::to_msgpack(Json{{"t", "1"}, {"b", nullptr}});
    bad.emplace_back(v.begin(), v.end());
    v = Json::to_msgpack(Json::array({1, 2}));
    bad.emplace_back(v.begin(), v.end());
  }
  // Every truncation of a valid encoding, below its padding (trailing nil bytes that pad the
  // entry to 8 bytes are not content).
  auto unpadded = [](std::string s) {
    while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xc0) s.pop_back();
    return s;
  };
  std::string good = unpadded(
      encodeCommand(reg(makeNode("n1"), makeService("web-1", "web"), {makeCheck("c1", "web-1")})));
  for (size_t n = 0; n < good.size(); ++n) bad.push_back(good.substr(0, n));
  good = unpadded(encodeCommand(kvSet("k", std::string("\0\0", 2), 4)));
  for (size_t n = 0; n < good.size(); ++n) bad.push_back(good.substr(0, n));
  // Pseudo-random bytes (fixed seed: deterministic).
  std::mt19937 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string s(1 + rng() % 64, '\0');
    for (char& ch : s) ch = static_cast<char>(rng() & 0xff);
    bad.push_back(std::move(s));
  }
  for (const std::string& bytes : bad) {
    Result<Command> r = makeError(ErrorCode::kInternal, "not run");
    EXPECT_NO_THROW(r = decodeCommand(bytes));
    ASSERT_FALSE(r.has_value()) << "input size " << bytes.size();
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

// Deeply nested MessagePack (1 MB of 0x91, "array of one element") must be rejected with an
// error like any other malformed input. Run in a child process so that a crash fails only
// this test.
std::string deeplyNested() {
  std::string s(1000000, '\x91');
  s.push_back('\x01');
  return s;
}

TEST(CommandDeathTest, DeeplyNestedInputIsRejectedWithoutCrashing) {
  std::string bytes = deeplyNested();
  EXPECT_EXIT(
      {
        Result<Command> r = decodeCommand(bytes);
        std::_Exit(!r.has_value() && r.error().code == ErrorCode::kInvalidArgument ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(StateStoreSnapshotDeathTest, DeeplyNestedSnapshotIsRejectedWithoutCrashing) {
  std::string bytes = deeplyNested();
  EXPECT_EXIT(
      {
        StateStore s;
        Result<void> r = s.restore(bytes);
        std::_Exit(!r.has_value() && r.error().code == ErrorCode::kInvalidArgument ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace taskmesh::store

namespace taskmesh::store {
namespace {

// libraft 0.15 needs log entries whose length is a multiple of 8 (see command.cc).
TEST(Command, EncodedEntriesArePaddedToEightBytes) {
  for (size_t n = 0; n < 20; ++n) {
    KVSetCommand c;
    c.key = std::string(n, 'k');
    c.value = std::string(n * 3, 'v');
    std::string bytes = encodeCommand(c);
    EXPECT_EQ(bytes.size() % 8, 0u) << n;
    auto back = decodeCommand(bytes);
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(std::get<KVSetCommand>(*back).key, c.key);
  }
}

}  // namespace
}  // namespace taskmesh::store
