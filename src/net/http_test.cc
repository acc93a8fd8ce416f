#include "net/http.h"

#include <gtest/gtest.h>

#include "net/http_server.h"

namespace taskmesh::net {
namespace {

TEST(ParseTarget, DecodesPathAndQuery) {
  auto r = parseTarget("/v1/kv/a%2Fb?recurse&index=5&tag=x&tag=y%20z");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, "/v1/kv/a/b");
  auto& q = r->second;
  EXPECT_EQ(q.count("recurse"), 1u);
  EXPECT_EQ(q.find("recurse")->second, "");
  EXPECT_EQ(q.find("index")->second, "5");
  EXPECT_EQ(q.count("tag"), 2u);
}

TEST(ParseTarget, RejectsBadEscapesAndLineFeeds) {
  EXPECT_FALSE(parseTarget("/v1/kv/%zz").has_value());
  EXPECT_FALSE(parseTarget("/v1/kv/%4").has_value());
  EXPECT_FALSE(parseTarget("/v1/kv/a%0ab").has_value());
  EXPECT_FALSE(parseTarget("/v1/kv/a?x=%").has_value());
}

TEST(SplitHostPort, AcceptsAndRejects) {
  auto a = splitHostPort("127.0.0.1:8500");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 8500);
  auto b = splitHostPort("[::1]:80");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->first, "::1");
  auto c = splitHostPort("10.0.0.1", 8500);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->second, 8500);
  EXPECT_FALSE(splitHostPort("127.0.0.1:99999").has_value());
  EXPECT_FALSE(splitHostPort(":80").has_value());
  EXPECT_FALSE(splitHostPort("host:8x").has_value());
}

TEST(EscapeInvalidUtf8, KeepsValidTextAndEscapesTheRest) {
  EXPECT_EQ(escapeInvalidUtf8("plain text\n"), "plain text\n");
  EXPECT_EQ(escapeInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(escapeInvalidUtf8(std::string("a\xff\xfe\x00"
                                          "b",
                                          5)),
            "a\\xff\\xfe\\x00b");
  EXPECT_EQ(escapeInvalidUtf8("\xc3"), "\\xc3");                    // truncated sequence
  EXPECT_EQ(escapeInvalidUtf8("\xc0\xaf"), "\\xc0\\xaf");           // overlong
  EXPECT_EQ(escapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(HttpResponse::text(400, "bad \xff").body, "bad \\xff");
  EXPECT_EQ(HttpResponse::text(200, "raw \xff").body, "raw \xff");  // values stay raw
}

}  // namespace
}  // namespace taskmesh::net
