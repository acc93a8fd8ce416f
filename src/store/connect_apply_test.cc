// The Connect tables: CA compare-and-set, index rules, intentions, snapshots, command encoding.

#include <gtest/gtest.h>

#include "store/command.h"
#include "store/state_store.h"

namespace taskmesh::store {
namespace {

CaRoot root(const std::string& id, bool active) {
  CaRoot r;
  r.id = id;
  r.name = "Consul CA Root Cert";
  r.serialNumber = 7;
  r.rootCertPem = "cert-" + id;
  r.privateKeyPem = "key-" + id;
  r.active = active;
  r.notBefore = 100;
  r.notAfter = 200;
  return r;
}

CaSetCommand caSet(std::vector<CaRoot> roots, uint64_t cas, std::string cluster = "c-1") {
  CaSetCommand c;
  c.clusterId = std::move(cluster);
  c.roots = std::move(roots);
  c.casIndex = cas;
  return c;
}

connect::Intention intention(const std::string& src, const std::string& dst,
                             connect::IntentionAction action = connect::IntentionAction::kAllow) {
  connect::Intention i;
  i.sourceName = src;
  i.destinationName = dst;
  i.action = action;
  return i;
}

TEST(ConnectTables, CaBootstrapAndRotationAreCompareAndSet) {
  StateStore s;
  auto r = s.apply(5, caSet({root("a", true)}, 0));
  ASSERT_FALSE(r.error);
  EXPECT_TRUE(r.value);
  EXPECT_TRUE(r.changes.ca);
  // A second bootstrap computed from the empty table loses.
  r = s.apply(6, caSet({root("b", true)}, 0));
  EXPECT_FALSE(r.value);
  EXPECT_FALSE(r.changes.ca);
  s.read([](const Tables& t) {
    ASSERT_EQ(t.caRoots.size(), 1u);
    EXPECT_EQ(t.activeRoot()->id, "a");
    EXPECT_EQ(t.caIndex, 5u);
    EXPECT_EQ(t.clusterId, "c-1");
    EXPECT_EQ(t.caConfig.createIndex, 5u);
  });
  // Rotation from index 5: the old root keeps its CreateIndex and gets a new ModifyIndex.
  CaRoot old = root("a", false);
  old.rotatedOutAt = 150;
  r = s.apply(7, caSet({old, root("b", true)}, 5));
  EXPECT_TRUE(r.value);
  s.read([](const Tables& t) {
    ASSERT_EQ(t.caRoots.size(), 2u);
    EXPECT_EQ(t.activeRoot()->id, "b");
    EXPECT_EQ(t.caRoots[0].createIndex, 5u);
    EXPECT_EQ(t.caRoots[0].modifyIndex, 7u);
    EXPECT_EQ(t.caRoots[1].createIndex, 7u);
    EXPECT_EQ(t.caIndex, 7u);
    EXPECT_EQ(t.caConfig.createIndex, 5u);
    EXPECT_EQ(t.caConfig.modifyIndex, 5u);  // the configuration itself did not change
  });
}

TEST(ConnectTables, CaSetRejectsInconsistentCommands) {
  StateStore s;
  EXPECT_TRUE(s.apply(1, caSet({root("a", false)}, 0)).error);
  EXPECT_TRUE(s.apply(2, caSet({root("a", true), root("b", true)}, 0)).error);
  EXPECT_TRUE(s.apply(3, caSet({root("a", true)}, 0, "")).error);
  ASSERT_FALSE(s.apply(4, caSet({root("a", true)}, 0)).error);
  auto r = s.apply(5, caSet({root("b", true)}, 4, "another"));
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("cannot change"), std::string::npos);
  s.read([](const Tables& t) { EXPECT_EQ(t.activeRoot()->id, "a"); });
}

TEST(ConnectTables, IntentionUpsertKeepsCreateIndexAndSkipsNoOps) {
  StateStore s;
  auto r = s.apply(3, IntentionSetCommand{intention("web", "db")});
  EXPECT_TRUE(r.changes.intentions);
  r = s.apply(4, IntentionSetCommand{intention("web", "db")});
  EXPECT_FALSE(r.changes.intentions);  // same content: nothing to wake
  r = s.apply(5, IntentionSetCommand{intention("web", "db", connect::IntentionAction::kDeny)});
  EXPECT_TRUE(r.changes.intentions);
  s.read([](const Tables& t) {
    ASSERT_EQ(t.intentions.size(), 1u);
    const auto& in = t.intentions.at({"web", "db"});
    EXPECT_EQ(in.createIndex, 3u);
    EXPECT_EQ(in.modifyIndex, 5u);
    EXPECT_EQ(in.action, connect::IntentionAction::kDeny);
    EXPECT_EQ(t.intentionsIndex, 5u);
  });
  EXPECT_TRUE(s.apply(6, IntentionSetCommand{intention("", "db")}).error);
  EXPECT_FALSE(s.apply(7, IntentionDeleteCommand{"nope", "db"}).changes.intentions);
  EXPECT_TRUE(s.apply(8, IntentionDeleteCommand{"web", "db"}).changes.intentions);
  s.read([](const Tables& t) {
    EXPECT_TRUE(t.intentions.empty());
    EXPECT_EQ(t.intentionsIndex, 8u);
  });
}

TEST(ConnectTables, SnapshotCarriesConnectTables) {
  StateStore a;
  CaRoot r = root("a", true);
  r.intermediateCertPems = {"cross"};
  ASSERT_FALSE(a.apply(2, caSet({r}, 0)).error);
  auto in = intention("*", "db", connect::IntentionAction::kDeny);
  in.meta = {{"k", "v"}};
  in.description = "d";
  ASSERT_FALSE(a.apply(3, IntentionSetCommand{in}).error);
  StateStore b;
  ASSERT_TRUE(b.restore(a.snapshot()));
  b.read([&](const Tables& t) {
    EXPECT_EQ(t.clusterId, "c-1");
    ASSERT_EQ(t.caRoots.size(), 1u);
    EXPECT_EQ(t.caRoots[0].intermediateCertPems, std::vector<std::string>{"cross"});
    EXPECT_EQ(t.caRoots[0].privateKeyPem, "key-a");
    EXPECT_EQ(t.caIndex, 2u);
    ASSERT_EQ(t.intentions.size(), 1u);
    const auto& got = t.intentions.at({"*", "db"});
    EXPECT_EQ(got.action, connect::IntentionAction::kDeny);
    EXPECT_EQ(got.meta.at("k"), "v");
    EXPECT_EQ(t.intentionsIndex, 3u);
  });
  EXPECT_EQ(b.snapshot(), a.snapshot());
}

TEST(ConnectTables, CommandsRoundTripThroughTheLogEncoding) {
  CaSetCommand ca = caSet({root("a", false), root("b", true)}, 9);
  ca.config.leafCertTtl = "1h";
  auto decoded = decodeCommand(encodeCommand(ca));
  ASSERT_TRUE(decoded);
  const auto& c = std::get<CaSetCommand>(*decoded);
  EXPECT_EQ(c.roots, ca.roots);
  EXPECT_EQ(c.config, ca.config);
  EXPECT_EQ(c.casIndex, 9u);

  auto in = intention("web", "*", connect::IntentionAction::kDeny);
  decoded = decodeCommand(encodeCommand(IntentionSetCommand{in}));
  ASSERT_TRUE(decoded);
  const auto& got = std::get<IntentionSetCommand>(*decoded).intention;
  EXPECT_EQ(got.sourceName, "web");
  EXPECT_EQ(got.destinationName, "*");
  EXPECT_EQ(got.action, connect::IntentionAction::kDeny);

  decoded = decodeCommand(encodeCommand(IntentionDeleteCommand{"a", "b"}));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(std::get<IntentionDeleteCommand>(*decoded).destinationName, "b");
}

}  // namespace
}  // namespace taskmesh::store
