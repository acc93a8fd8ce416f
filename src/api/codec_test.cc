#include "api/codec.h"

#include <gtest/gtest.h>

namespace taskmesh::api {
namespace {

TEST(DecodeRegister, AppliesConsulDefaults) {
  auto r = decodeRegister(R"({"node":"n1","address":"10.0.0.1",
      "Service":{"Service":"web","Port":8080,"Tags":["v1"]},
      "Check":{"Name":"web alive","ServiceID":"web"}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->node.name, "n1");
  ASSERT_TRUE(r->service.has_value());
  EXPECT_EQ(r->service->id, "web");
  EXPECT_EQ(r->service->port, 8080);
  ASSERT_EQ(r->checks.size(), 1u);
  EXPECT_EQ(r->checks[0].checkId, "web alive");
  EXPECT_EQ(r->checks[0].status, "critical");
  EXPECT_EQ(r->checks[0].node, "n1");
}

TEST(DecodeRegister, NamesTheBadField) {
  struct Case {
    const char* body;
    const char* expect;
  } cases[] = {
      {"not json", "not valid JSON"},
      {"[1]", "expected a JSON object"},
      {R"({"Address":"1.2.3.4"})", "Must provide node"},
      {R"({"Node":"n"})", "Must provide address"},
      {R"({"Node":"n","Address":"a","Service":{"Service":"s","Port":"80"}})",
       "Service.Port: expected an integer"},
      {R"({"Node":"n","Address":"a","Service":{"Service":"s","Port":70000}})",
       "Service.Port: out of range"},
      {R"({"Node":"n","Address":"a","Service":{"Port":80}})", "Missing service name"},
      {R"({"Node":"n","Address":"a","Service":{"Service":"s","Tags":[1]}})", "Service.Tags[0]"},
      {R"({"Node":"n","Address":"a","Service":{"Service":"s","Meta":{"k":1}}})",
       "Service.Meta[\"k\"]"},
      {R"({"Node":"n","Address":"a","Check":{"Name":"c","Status":"fluffy"}})", "must 'passing'"},
      {R"({"Node":"n","Address":"a","Checks":[{"Status":"passing"}]})",
       "Checks[0] needs a CheckID or a Name"},
      {R"({"Node":5,"Address":"a"})", "Node: expected a string, got number"},
      {R"({"Node":"n","Address":"a","Service":{"Service":"s","Address":"0.0.0.0"}})",
       "Invalid service address"},
  };
  for (const auto& c : cases) {
    auto r = decodeRegister(c.body);
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
        << c.body << " → " << r.error().message;
  }
}

TEST(Encode, EmptyListsAreArraysAndValuesBase64) {
  store::Service s;
  s.id = s.service = "web";
  Json j = encodeAgentService(s);
  EXPECT_TRUE(j["Tags"].is_array());
  EXPECT_TRUE(j["Meta"].is_object());
  EXPECT_EQ(j["Weights"]["Passing"], 1);
  store::KVEntry e;
  e.key = "k";
  e.value = std::string("hello\0x", 7);
  EXPECT_EQ(encodeKV(e)["Value"], "aGVsbG8AeA==");
  EXPECT_EQ(base64Encode(""), "");
}

TEST(IsConnectProxyFor, ToleratesAnyProxyShape) {
  store::Service s;
  s.kind = "connect-proxy";
  s.proxy = Json{{"DestinationServiceName", "web"}};
  EXPECT_TRUE(isConnectProxyFor(s, "web"));
  EXPECT_FALSE(isConnectProxyFor(s, "api"));
  s.proxy = Json{{"DestinationServiceName", 5}};  // a client may send any type
  EXPECT_FALSE(isConnectProxyFor(s, "web"));
  s.proxy = Json::object();
  EXPECT_FALSE(isConnectProxyFor(s, "web"));
  s.kind = "";
  s.proxy = Json{{"DestinationServiceName", "web"}};
  EXPECT_FALSE(isConnectProxyFor(s, "web"));
}

}  // namespace
}  // namespace taskmesh::api
