#pragma once
/// The server's event handlers (Swoole's handshake, open, message, close and request events), as the session
/// calls them.

#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/server/connection.hpp>

#include <swirl/detail/asio.hpp>

#include <functional>
#include <type_traits>
#include <utility>

namespace swirl::detail {

/// Calls `f(args...)`, awaiting the result when it is an awaitable.
template <class F, class... Args>
asio::awaitable<void> invoke_maybe_async(F& f, Args&&... args) {
    if constexpr (std::is_same_v<std::invoke_result_t<F&, Args...>, asio::awaitable<void>>)
        co_await std::invoke(f, std::forward<Args>(args)...);
    else
        std::invoke(f, std::forward<Args>(args)...);
}

template <class UserData>
struct Handlers {
    using Connection = swirl::Connection<UserData>;
    using HandshakeHandler = std::function<asio::awaitable<bool>(Connection&, const Request&, Response&)>;
    using OpenHandler = std::function<asio::awaitable<void>(Connection&, const Request&)>;
    using MessageHandler = std::function<asio::awaitable<void>(Connection&, Frame&)>;
    using PlainMessageHandler = std::function<void(Connection&, Frame&)>;
    using CloseHandler = std::function<asio::awaitable<void>(Connection&, const CloseInfo&)>;
    using RequestHandler = std::function<asio::awaitable<void>(Connection&, const Request&, Response&)>;
    using DrainHandler = std::function<void(Connection&)>;

    using PlainHandshakeHandler = std::function<bool(Connection&, const Request&, Response&)>;
    using PlainOpenHandler = std::function<void(Connection&, const Request&)>;
    using PlainCloseHandler = std::function<void(Connection&, const CloseInfo&)>;
    // Each event has a coroutine handler or a plain one (one that never waits: called in place, without a coroutine
    // frame), never both.
    HandshakeHandler handshake;
    PlainHandshakeHandler plain_handshake;
    OpenHandler open;
    PlainOpenHandler plain_open;
    MessageHandler message;
    PlainMessageHandler plain_message;
    CloseHandler close;
    PlainCloseHandler plain_close;
    RequestHandler request;
    DrainHandler drain;  ///< called on the connection's thread (a coroutine handler is spawned from it)

    bool has_message() const noexcept { return message || plain_message; }
};

} // namespace swirl::detail
