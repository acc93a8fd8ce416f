#pragma once
// The one place that includes Boost.Asio for the rest of the code. Boost 1.74's
// awaitable.hpp needs <utility> first on g++ 12 (DESIGN.md §7).

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace taskmesh {
namespace asio = boost::asio;
template <typename T>
using Awaitable = boost::asio::awaitable<T>;
}  // namespace taskmesh
