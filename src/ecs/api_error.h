#pragma once
// An error as the ECS API reports it: an exception type ("ClientException",
// "ClusterNotFoundException", ...) and a message. The runtime's API layer turns it into
// HTTP 400 (500 for ServerException) with {"__type": type, "message": message}.
// src/ecs and src/runtime are not part of the clang fuzz build, so std::expected is used
// directly.

#include <string>
#include <utility>

#include <expected>

namespace taskmesh::ecs {

struct ApiError {
  std::string type;
  std::string message;
};

template <typename T>
using ApiResult = std::expected<T, ApiError>;
inline std::unexpected<ApiError> apiError(std::string type, std::string message) {
  return std::unexpected<ApiError>(ApiError{std::move(type), std::move(message)});
}

inline auto clientError(std::string message) {
  return apiError("ClientException", std::move(message));
}
inline auto invalidParameter(std::string message) {
  return apiError("InvalidParameterException", std::move(message));
}

}  // namespace taskmesh::ecs

// Evaluates `expr` (an ApiResult); on error returns it from the enclosing function, else
// declares `decl` with the value: TM_ECS_TRY(auto name, params.str("cluster"));
#define TM_ECS_CONCAT_INNER(a, b) a##b
#define TM_ECS_CONCAT(a, b) TM_ECS_CONCAT_INNER(a, b)
#define TM_ECS_TRY(decl, expr)                                                     \
  auto TM_ECS_CONCAT(tmEcsTry_, __LINE__) = (expr);                                \
  if (!TM_ECS_CONCAT(tmEcsTry_, __LINE__))                                         \
    return std::unexpected(std::move(TM_ECS_CONCAT(tmEcsTry_, __LINE__).error())); \
  decl = std::move(*TM_ECS_CONCAT(tmEcsTry_, __LINE__))
