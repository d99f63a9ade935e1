#pragma once
/// EasySwoole-style routing: a parser decodes each message into (controller, action, args), the dispatcher runs
/// that controller's action with its lifecycle hooks, and the parser encodes the reply. Routes are a compile-time
/// table: no RTTI, no string-keyed map, no virtual calls.
///
///     using Ctx = swirl::Context<swirl::JsonParser, swirl::Server<>::Connection>;
///     struct Index { asio::awaitable<swirl::JsonReply> hello(Ctx& ctx); };
///     swirl::Dispatcher<Ctx, swirl::Controller<Index, "Index", swirl::Action<"hello", &Index::hello>>> dispatcher;
///     server.use(dispatcher);

#include <swirl/dispatch/context.hpp>
#include <swirl/dispatch/detail/fixed_string.hpp>
#include <swirl/server/detail/log.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/reply.hpp>
#include <swirl/server/settings.hpp>

#include <swirl/detail/asio.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace swirl {

/// How long a controller object lives.
enum class ControllerLifetime {
    per_message,     ///< a fresh controller for every message (EasySwoole's behaviour): no state leaks between calls
    per_connection,  ///< one controller per connection, created at its first message: keeps state across messages
};

/// One action: its wire name and the member function that runs it, `asio::awaitable<Reply>(Ctx&)` or
/// `asio::awaitable<void>(Ctx&)` (the latter sets `ctx.reply()` or pushes by itself).
template <detail::FixedString Name, auto Method>
struct Action {
    static constexpr std::string_view name = Name.view();
    static constexpr auto method = Method;
};

/// A controller class `C` routed under `Name` with its actions. Use the `Controller` / `ConnectionController`
/// aliases.
template <ControllerLifetime Lifetime, class C, detail::FixedString Name, class... Actions>
struct Route {
    using type = C;
    using actions = std::tuple<Actions...>;
    static constexpr ControllerLifetime lifetime = Lifetime;
    static constexpr std::string_view name = Name.view();
};

/// A controller created afresh for every message.
template <class C, detail::FixedString Name, class... Actions>
using Controller = Route<ControllerLifetime::per_message, C, Name, Actions...>;

/// A controller that lives as long as its connection (see `ControllerLifetime::per_connection`).
template <class C, detail::FixedString Name, class... Actions>
using ConnectionController = Route<ControllerLifetime::per_connection, C, Name, Actions...>;

namespace detail {
template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<asio::awaitable<T, E>> : std::true_type {};
template <class T>
inline constexpr bool is_awaitable_v = is_awaitable<std::remove_cvref_t<T>>::value;
} // namespace detail

/// Routes messages of connections of `Ctx::connection_type` through `Ctx::parser_type` to `Routes`.
/// Controller hooks, each optional, each either plain or a coroutine, each taking `Ctx&` or the action name:
///   `bool on_request(ctx|action)`      before the action; false vetoes it (nothing runs but `after_action`)
///   `void action_not_found(ctx|action)` the controller exists, the action does not (default: an error reply)
///   `void after_action(ctx|action)`     always last, also after a veto or an exception
///   `on_exception(ctx, std::exception_ptr)` or `on_exception(std::exception_ptr)`: handle (set or return a reply)
///                                       or rethrow to the dispatcher's handler
/// Hooks and actions may return a reply instead of setting `ctx.reply()`. An exception nobody handles closes the
/// connection with 1011 and is logged; the server keeps running.
template <class Ctx, class... Routes>
class Dispatcher {
public:
    using context_type = Ctx;
    using parser_type = typename Ctx::parser_type;
    using connection_type = typename Ctx::connection_type;
    using reply_type = typename Ctx::reply_type;
    /// Dispatcher-level exception handler: returns the reply to deliver, or rethrows for the default (1011).
    using ExceptionHandler = std::function<reply_type(Ctx&, std::exception_ptr)>;
    /// True when some route keeps a controller per connection (then the dispatcher also handles `on_close`).
    static constexpr bool has_connection_controllers =
        ((Routes::lifetime == ControllerLifetime::per_connection) || ... || false);

    explicit Dispatcher(parser_type parser = {}) : parser_(std::move(parser)) {}
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    const parser_type& parser() const noexcept { return parser_; }

    /// Replaces the default for exceptions no controller handled (log, close with 1011).
    void on_exception(ExceptionHandler handler) { on_exception_ = std::move(handler); }

    /// Log threshold for dispatch errors when the connection has no server settings to take it from.
    void log_level(LogLevel level) noexcept { log_level_ = level; }

    /// The message handler: `server.use(dispatcher)`, or call it from your own handler to mix (e.g. text only).
    /// Decodes the message at once; the awaitable runs the action and delivers its reply.
    asio::awaitable<void> on_message(connection_type& connection, Frame& frame) {
        auto caller = parser_.decode(frame, connection);
        if (!caller) return nothing();
        const Runner run = find(*caller);
        if (run) return run(*this, connection, std::move(*caller));
        Ctx ctx(parser_, connection, *caller);
        ctx.reply() = reply_type::failure(fmt::format("unknown controller: {}", ctx.controller()));
        deliver(ctx);
        return nothing();
    }

    /// Drops the connection's per-connection controllers. Registered by `server.use(dispatcher)`; call it from
    /// your own `on_close` if you register `on_message` by hand.
    template <class CloseInfo>
    asio::awaitable<void> on_close(connection_type& connection, const CloseInfo&)
        requires(has_connection_controllers)
    {
        forget(connection);
        co_return;
    }

    void forget(connection_type& connection) {
        std::apply([&](auto&... store) { (store.erase(connection.id()), ...); }, stores_);
    }

private:
    using caller_type = typename Ctx::caller_type;
    /// Runs one call from start to delivered reply: its coroutine frame is the only one the dispatcher adds.
    using Runner = asio::awaitable<void> (*)(Dispatcher&, connection_type&, caller_type);
    struct Entry {
        std::string_view controller;
        std::string_view action;  ///< empty: the controller's "action not found" entry
        Runner run = nullptr;
    };

    /// The type an action's member function returns, checked against what the dispatcher can run.
    template <class A, class C>
    struct ActionResult {
        static_assert(std::is_invocable_v<decltype(A::method), C&, Ctx&>,
                      "an action is a member function of its controller taking the Context&");
        using type = std::invoke_result_t<decltype(A::method), C&, Ctx&>;
        static_assert(std::is_same_v<type, asio::awaitable<void>> || std::is_same_v<type, asio::awaitable<reply_type>>,
                      "an action returns asio::awaitable<void> or asio::awaitable<Ctx::reply_type>");
    };
    template <class A, class C>
    using action_result_t = typename ActionResult<A, C>::type;

    /// Per-connection controllers of one route; empty for per-message routes.
    template <class Route, bool = Route::lifetime == ControllerLifetime::per_connection>
    struct Store {
        void erase(auto) {}
    };
    template <class Route>
    struct Store<Route, true> {
        using Controller = typename Route::type;
        template <class Id>
        Controller& get(Id id) {
            std::lock_guard lock(mutex);
            auto& slot = controllers[id];
            if (!slot) slot = std::make_unique<Controller>();
            return *slot;
        }
        template <class Id>
        void erase(Id id) {
            std::lock_guard lock(mutex);
            controllers.erase(id);
        }
        std::mutex mutex;
        std::unordered_map<decltype(std::declval<connection_type&>().id()), std::unique_ptr<Controller>> controllers;
    };

    /// One entry per action plus one "not found" entry per controller, built at compile time.
    template <class Route, class... Actions>
    static constexpr auto route_entries(std::tuple<Actions...>*) {
        return std::array<Entry, sizeof...(Actions) + 1>{Entry{Route::name, Actions::name, &run<Route, Actions>}...,
                                                          Entry{Route::name, {}, &run<Route, void>}};
    }
    template <std::size_t... N>
    static constexpr auto concat(const std::array<Entry, N>&... parts) {
        std::array<Entry, (N + ... + 0)> all{};
        auto out = all.begin();
        ((out = std::copy(parts.begin(), parts.end(), out)), ...);
        return all;
    }
    static const auto& table() {
        static constexpr auto entries = concat(route_entries<Routes>(static_cast<typename Routes::actions*>(nullptr))...);
        return entries;
    }

    /// The runner of the call's action, else of its controller's "action not found", else null.
    static Runner find(const caller_type& caller) noexcept {
        Runner not_found = nullptr;
        for (const Entry& e : table()) {
            if (e.controller != caller.controller) continue;
            if (e.action.empty()) {
                if (!not_found) not_found = e.run;
            } else if (e.action == caller.action) {
                return e.run;
            }
        }
        return not_found;
    }

    static asio::awaitable<void> nothing() { co_return; }

    /// An empty stand-in for the controller object a per-connection route keeps elsewhere.
    struct NoController {};

    /// Runs action `A` (or, with `A = void`, "action not found") of `Route` inside the controller's hooks, then
    /// delivers the reply. The action and `on_request` are awaited right here: one coroutine frame per message.
    template <class Route, class A>
    static asio::awaitable<void> run(Dispatcher& self, connection_type& connection, caller_type caller) {
        using C = typename Route::type;
        constexpr bool per_connection = Route::lifetime == ControllerLifetime::per_connection;
        Ctx ctx(self.parser_, connection, caller);
        try {
            std::conditional_t<per_connection, NoController, C> fresh{};
            C& controller = [&]() -> C& {
                if constexpr (per_connection) return std::get<Store<Route>>(self.stores_).get(connection.id());
                else return fresh;
            }();
            std::exception_ptr failure;
            try {
                bool proceed = true;
                if constexpr (requires { controller.on_request(ctx); }) {
                    auto result = controller.on_request(ctx);
                    if constexpr (detail::is_awaitable_v<decltype(result)>) proceed = co_await std::move(result);
                    else proceed = result;
                } else if constexpr (requires { controller.on_request(std::string_view{}); }) {
                    auto result = controller.on_request(std::string_view(ctx.action()));
                    if constexpr (detail::is_awaitable_v<decltype(result)>) proceed = co_await std::move(result);
                    else proceed = result;
                }
                if (proceed) {
                    if constexpr (std::is_void_v<A>) co_await act_not_found(controller, ctx);
                    else if constexpr (std::is_same_v<action_result_t<A, C>, asio::awaitable<void>>) co_await (controller.*A::method)(ctx);
                    else ctx.reply() = co_await (controller.*A::method)(ctx);
                }
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) failure = co_await handle<C>(controller, ctx, failure);
            if constexpr (requires { controller.after_action(ctx); }) {
                co_await settle(ctx, [&] { return controller.after_action(ctx); });
            } else if constexpr (requires { controller.after_action(std::string_view{}); }) {
                co_await settle(ctx, [&] { return controller.after_action(std::string_view(ctx.action())); });
            }
            if (failure) std::rethrow_exception(failure);
        } catch (...) {
            self.handle_uncaught(ctx, std::current_exception());
        }
        self.deliver(ctx);
    }

    /// The controller's `action_not_found`, or the default not-found reply.
    template <class C>
    static asio::awaitable<void> act_not_found(C& controller, Ctx& ctx) {
        if constexpr (requires { controller.action_not_found(ctx); }) {
            co_await settle(ctx, [&] { return controller.action_not_found(ctx); });
        } else if constexpr (requires { controller.action_not_found(std::string_view{}); }) {
            co_await settle(ctx, [&] { return controller.action_not_found(std::string_view(ctx.action())); });
        } else {
            ctx.reply() = reply_type::failure(fmt::format("unknown action: {}.{}", ctx.controller(), ctx.action()));
        }
    }

    /// The controller's `on_exception`: returns null when it handled `failure`, else the exception to pass on.
    template <class C>
    static asio::awaitable<std::exception_ptr> handle(C& controller, Ctx& ctx, std::exception_ptr failure) {
        if constexpr (requires { controller.on_exception(ctx, failure); } || requires { controller.on_exception(failure); }) {
            std::exception_ptr passed_on;
            try {
                if constexpr (requires { controller.on_exception(ctx, failure); })
                    co_await settle(ctx, [&] { return controller.on_exception(ctx, failure); });
                else
                    co_await settle(ctx, [&] { return controller.on_exception(failure); });
            } catch (...) {
                passed_on = std::current_exception();
            }
            co_return passed_on;
        } else {
            co_return failure;
        }
    }

    /// Calls a hook; awaits it if it is a coroutine; a returned reply becomes the context's reply.
    template <class Call>
    static asio::awaitable<void> settle(Ctx& ctx, Call call) {
        using Result = std::invoke_result_t<Call&>;
        if constexpr (detail::is_awaitable_v<Result>) {
            if constexpr (std::is_same_v<Result, asio::awaitable<void>>) co_await call();
            else ctx.reply() = co_await call();
        } else if constexpr (std::is_void_v<Result>) {
            call();
        } else {
            ctx.reply() = call();
        }
    }

    void handle_uncaught(Ctx& ctx, std::exception_ptr failure) {
        if (on_exception_) {
            try {
                ctx.reply() = on_exception_(ctx, failure);
                return;
            } catch (...) {
                failure = std::current_exception();
            }
        }
        std::string what = "a non-exception";
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        detail::log(log_threshold(ctx.connection()), LogLevel::error, "connection {}: {}.{} threw: {}", ctx.id(),
                    ctx.controller(), ctx.action(), what);
        ctx.reply() = reply_type::close(close_code::internal_error, "internal error");
    }

    LogLevel log_threshold(connection_type& connection) const {
        if constexpr (requires { connection.server().settings().log_level; })
            return connection.server().settings().log_level;
        else
            return log_level_;
    }

    void deliver(Ctx& ctx) const {
        const reply_type& reply = ctx.reply();
        if (reply.empty()) return;
        if (reply.status != ReplyStatus::close) {
            if (auto out = parser_.encode(reply, ctx.caller(), ctx.connection()))
                ctx.connection().send(std::move(out->payload), out->opcode);  // a large reply is not copied
        }
        if (reply.status != ReplyStatus::ok) ctx.connection().close(reply.code, reply.reason);
    }

    parser_type parser_;
    ExceptionHandler on_exception_;
    LogLevel log_level_ = LogLevel::info;
    std::tuple<Store<Routes>...> stores_;
};

} // namespace swirl
