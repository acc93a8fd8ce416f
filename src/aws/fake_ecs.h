#pragma once
// Test support (tests only): an ECS API served from the test itself on 127.0.0.1:0. It speaks
// the JSON 1.1 wire format (reference/ecs.md §7), verifies every request's SigV4 signature with
// the credentials it was given (answering 403 InvalidSignatureException like AWS when it does
// not match), and answers each operation with a scripted function of the request body and the
// call number.
//
// Threads: operations run on the server thread; register them before the first request.

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "aws/ecs_client.h"
#include "aws/sigv4.h"
#include "aws/test_http_server.h"

namespace taskmesh::aws::testing {

class FakeEcs {
 public:
  // `call` counts this operation's requests from 0.
  using Operation = std::function<net::HttpResponse(const nlohmann::json& body, int call)>;

  FakeEcs(std::string region, Credentials credentials)
      : region_(std::move(region)), credentials_(std::move(credentials)) {}

  void on(const std::string& operation, Operation op) {
    std::lock_guard lock(mu_);
    operations_[operation] = std::move(op);
  }

  std::string url() const { return server_.url(); }

  int calls(const std::string& operation) const {
    std::lock_guard lock(mu_);
    auto it = bodies_.find(operation);
    return it == bodies_.end() ? 0 : static_cast<int>(it->second.size());
  }
  std::vector<nlohmann::json> bodies(const std::string& operation) const {
    std::lock_guard lock(mu_);
    auto it = bodies_.find(operation);
    return it == bodies_.end() ? std::vector<nlohmann::json>{} : it->second;
  }
  std::vector<std::string> signatureErrors() const {
    std::lock_guard lock(mu_);
    return signatureErrors_;
  }
  std::string lastSecurityToken() const {
    std::lock_guard lock(mu_);
    return lastToken_;
  }

  static net::HttpResponse ok(const nlohmann::json& body) {
    auto r = net::HttpResponse::json(body.dump());
    r.contentType = std::string(kEcsContentType);
    return r;
  }
  static net::HttpResponse error(int status, const std::string& type, const std::string& message) {
    auto r = net::HttpResponse::json(nlohmann::json{{"__type", type}, {"message", message}}.dump(),
                                     status);
    r.contentType = std::string(kEcsContentType);
    return r;
  }

 private:
  // Recomputes the signature from what arrived on the wire; "" when it matches.
  std::string checkSignature(const net::HttpRequest& req) const {
    std::string auth = req.header("authorization");
    size_t sh = auth.find("SignedHeaders=");
    size_t sig = auth.find(", Signature=");
    if (auth.rfind("AWS4-HMAC-SHA256 Credential=", 0) != 0 || sh == std::string::npos ||
        sig == std::string::npos) {
      return "malformed Authorization \"" + auth + "\"";
    }
    SignableRequest s;
    s.method = req.method;
    s.path = req.path;
    s.query.assign(req.query.begin(), req.query.end());
    s.body = req.body;
    std::string names = auth.substr(sh + 14, auth.find(',', sh) - sh - 14);
    for (size_t pos = 0; pos <= names.size();) {
      size_t end = names.find(';', pos);
      if (end == std::string::npos) end = names.size();
      std::string name = names.substr(pos, end - pos);
      s.headers.emplace_back(name, req.header(name));
      pos = end + 1;
    }
    auto expected = computeSignature(s, credentials_, region_, "ecs", req.header("x-amz-date"));
    if (!expected) return expected.error().message;
    if (expected->authorization != auth) return "signature mismatch for " + auth;
    return "";
  }

  net::HttpResponse handle(const net::HttpRequest& req) {
    std::string target = req.header("x-amz-target");
    std::lock_guard lock(mu_);
    lastToken_ = req.header("x-amz-security-token");
    if (req.method != "POST" || req.header("content-type") != kEcsContentType ||
        target.rfind(kEcsTargetPrefix, 0) != 0) {
      return error(400, "SerializationException", "not an ECS JSON 1.1 request");
    }
    if (std::string problem = checkSignature(req); !problem.empty()) {
      signatureErrors_.push_back(problem);
      return error(403, "InvalidSignatureException", problem);
    }
    std::string operation = target.substr(kEcsTargetPrefix.size());
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    auto& seen = bodies_[operation];
    seen.push_back(body);
    auto op = operations_.find(operation);
    if (op == operations_.end()) return error(400, "UnknownOperationException", operation);
    return op->second(body, static_cast<int>(seen.size()) - 1);
  }

  std::string region_;
  Credentials credentials_;
  mutable std::mutex mu_;  // guards everything below; the server thread and the test share it
  std::map<std::string, Operation> operations_;
  std::map<std::string, std::vector<nlohmann::json>> bodies_;
  std::vector<std::string> signatureErrors_;
  std::string lastToken_;
  TestHttpServer server_{[this](const net::HttpRequest& req) { return handle(req); }};
};

}  // namespace taskmesh::aws::testing
