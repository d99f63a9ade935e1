#pragma once
/// EasySwoole-style routing: a parser decodes each message into (controller, action, args), the dispatcher runs
/// that controller's action with its lifecycle hooks, and the parser encodes the reply. Routes are a compile-time
/// table: no RTTI, no string-keyed map, no virtual calls.
///
///     using Ctx = swirl::Context<swirl::JsonParser, swirl::Server<>::Connection>;
///     struct Index { asio::awaitable<swirl::JsonReply> hello(Ctx& ctx); };
///     swirl::Dispatcher<Ctx, swirl::Controller<Index, "Index", swirl::Action<"hello", &Index::hello>>> dispatcher;
///     server.use(dispatcher);
///
/// A mistake in a route (an action not taking `Ctx&`, a hook the dispatcher cannot call, a controller it cannot
/// construct) is one compile error that names the controller and the action or hook (see detail/controller_check.hpp).

#include <swirl/dispatch/context.hpp>
#include <swirl/dispatch/detail/controller_check.hpp>
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

/// One action: its wire name and the member function of the controller that runs it, taking `Ctx&` and returning
/// `asio::awaitable<Reply>` or `asio::awaitable<void>` (then it sets `ctx.reply()` or pushes by itself), or, when
/// it needs no coroutine, a plain `Reply` or void.
template <detail::FixedString Name, auto Method>
struct Action {
    static constexpr std::string_view name = Name.view();
    static constexpr auto wire_name = Name;
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
    static constexpr auto wire_name = Name;
};

/// A controller created afresh for every message.
template <class C, detail::FixedString Name, class... Actions>
using Controller = Route<ControllerLifetime::per_message, C, Name, Actions...>;

/// A controller that lives as long as its connection (see `ControllerLifetime::per_connection`).
template <class C, detail::FixedString Name, class... Actions>
using ConnectionController = Route<ControllerLifetime::per_connection, C, Name, Actions...>;

/// Routes messages of connections of `Ctx::connection_type` through `Ctx::parser_type` to `Routes`.
/// Controller hooks, each optional, each either plain or a coroutine, each taking `Ctx&` or the action name
/// (EasySwoole's onRequest, actionNotFound, afterAction, onException):
///   `bool before_action(ctx|action)`    before the action; false vetoes it (nothing runs but `after_action`)
///   `void action_not_found(ctx|action)` the controller exists, the action does not (default: an error reply)
///   `void after_action(ctx|action)`     always last, also after a veto or an exception
///   `on_exception(ctx, std::exception_ptr)` or `on_exception(std::exception_ptr)`: handle (set or return a reply)
///                                       or rethrow to the dispatcher's handler
/// Hooks and actions may return a reply instead of setting `ctx.reply()`. An exception nobody handles closes the
/// connection with 1011 and is logged; the server keeps running. A hook the dispatcher cannot call, and a hook
/// still named `on_request` (its old name, which the server's HTTP event shares), do not compile.
///
/// Controllers are constructed by the dispatcher: from the application's services when it was given some and
/// the controller takes them (`Index(Services&)`), else by default. `Services` is any type of yours, e.g. a struct
/// of references to a database pool and a cache; it must outlive the dispatcher, and with several server threads
/// their controllers use it at once.
///
///     struct Services { Pool& db; };
///     struct Index { explicit Index(Services& s) : db(s.db) {} Pool& db; /* actions */ };
///     Services services{pool};
///     Dispatcher dispatcher(services);
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

    /// Every controller is default-constructed.
    explicit Dispatcher(parser_type parser = {}) : parser_(std::move(parser)) {
        static_assert((detail::check_construction<Routes, void>() && ...));
        (set_maker<Routes, void>(), ...);
    }

    /// Controllers constructible from `Services&` are constructed from `services` (kept by reference: it must
    /// outlive the dispatcher); the others by default. Services no controller takes do not compile.
    template <class Services>
        requires(!std::is_same_v<std::remove_cv_t<Services>, Dispatcher> &&
                 !std::is_same_v<std::remove_cv_t<Services>, parser_type>)
    explicit Dispatcher(Services& services, parser_type parser = {})
        : parser_(std::move(parser)), services_(const_cast<std::remove_cv_t<Services>*>(std::addressof(services))) {
        static_assert((detail::check_construction<Routes, Services>() && ...) &&
                      detail::report_unused_services<Services,
                                                     (detail::made_from_services<typename Routes::type, Services> || ...)>());
        (set_maker<Routes, Services>(), ...);
    }

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
    // Every mistake in the routes is reported here, once, naming its controller and action; the calls below are
    // guarded by the same checks, so a refused action or hook is never instantiated and nothing follows the report.
    static_assert((detail::check_route<Ctx, Routes>(static_cast<typename Routes::actions*>(nullptr)) && ...));

    using caller_type = typename Ctx::caller_type;
    /// Runs one call from start to delivered reply: its coroutine frame is the only one the dispatcher adds.
    using Runner = asio::awaitable<void> (*)(Dispatcher&, connection_type&, caller_type);
    struct Entry {
        std::string_view controller;
        std::string_view action;  ///< empty: the controller's "action not found" entry
        Runner run = nullptr;
    };

    /// Makes a route's controller, from the dispatcher's services or by default. Called through a pointer set by
    /// the constructor, which alone knows the services' type; returns by value, so a per-message controller is
    /// built in place in the call's coroutine frame, never on the heap.
    template <class Route>
    using Maker = typename Route::type (*)(void* services);

    template <class Route, class Services>
    static typename Route::type make(void* services) {
        using C = typename Route::type;
        if constexpr (detail::made_from_services<C, Services>)
            return C(*static_cast<Services*>(services));
        else
            return C{};
    }

    template <class Route, class Services>
    void set_maker() {
        using C = typename Route::type;
        if constexpr (detail::made_from_services<C, Services> || std::is_default_constructible_v<C>)
            std::get<Store<Route>>(stores_).make = &make<Route, Services>;
    }

    /// How to make one route's controllers, and for per-connection routes the controllers themselves.
    template <class Route, bool = Route::lifetime == ControllerLifetime::per_connection>
    struct Store {
        Maker<Route> make = nullptr;
        void erase(auto) {}
    };
    template <class Route>
    struct Store<Route, true> {
        using Controller = typename Route::type;
        template <class Id>
        Controller& get(Id id, void* services) {
            std::lock_guard lock(mutex);
            auto& slot = controllers[id];
            if (!slot) slot.reset(new Controller(make(services)));  // not make_unique: C need not be movable
            return *slot;
        }
        template <class Id>
        void erase(Id id) {
            std::lock_guard lock(mutex);
            controllers.erase(id);
        }
        Maker<Route> make = nullptr;
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
    /// delivers the reply. The action and `before_action` are awaited right here: one coroutine frame per message.
    template <class Route, class A>
    static asio::awaitable<void> run(Dispatcher& self, connection_type& connection, caller_type caller) {
        using C = typename Route::type;
        using Before = detail::BeforeAction<C, Ctx>;
        using After = detail::AfterAction<C, Ctx>;
        constexpr bool per_connection = Route::lifetime == ControllerLifetime::per_connection;
        Ctx ctx(self.parser_, connection, caller);
        try {
            auto& store = std::get<Store<Route>>(self.stores_);
            auto fresh = [&] {
                if constexpr (per_connection) return NoController{};
                else return store.make(self.services_);
            }();
            C& controller = [&]() -> C& {
                if constexpr (per_connection) return store.get(connection.id(), self.services_);
                else return fresh;
            }();
            std::exception_ptr failure;
            try {
                bool proceed = true;
                if constexpr (Before::valid && Before::with_ctx) {
                    auto result = controller.before_action(ctx);
                    if constexpr (detail::is_awaitable_v<decltype(result)>) proceed = co_await std::move(result);
                    else proceed = result;
                } else if constexpr (Before::valid) {
                    auto result = controller.before_action(std::string_view(ctx.action()));
                    if constexpr (detail::is_awaitable_v<decltype(result)>) proceed = co_await std::move(result);
                    else proceed = result;
                }
                if (proceed) {
                    if constexpr (std::is_void_v<A>) {
                        co_await act_not_found(controller, ctx);
                    } else if constexpr (detail::ActionSignature<Ctx, C, A>::valid) {
                        using Result = typename detail::ActionSignature<Ctx, C, A>::result;
                        if constexpr (detail::is_awaitable_v<Result> && std::is_void_v<detail::awaited_t<Result>>) {
                            co_await (controller.*A::method)(ctx);
                        } else if constexpr (detail::is_awaitable_v<Result>) {
                            ctx.reply() = co_await (controller.*A::method)(ctx);
                        } else if constexpr (std::is_void_v<Result>) {
                            (controller.*A::method)(ctx);
                        } else {
                            ctx.reply() = (controller.*A::method)(ctx);
                        }
                    }
                }
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) failure = co_await handle<C>(controller, ctx, failure);
            if constexpr (After::valid && After::with_ctx) {
                co_await settle(ctx, [&] { return controller.after_action(ctx); });
            } else if constexpr (After::valid) {
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
        using NotFound = detail::ActionNotFound<C, Ctx>;
        if constexpr (NotFound::valid && NotFound::with_ctx) {
            co_await settle(ctx, [&] { return controller.action_not_found(ctx); });
        } else if constexpr (NotFound::valid) {
            co_await settle(ctx, [&] { return controller.action_not_found(std::string_view(ctx.action())); });
        } else {
            ctx.reply() = reply_type::failure(fmt::format("unknown action: {}.{}", ctx.controller(), ctx.action()));
        }
    }

    /// The controller's `on_exception`: returns null when it handled `failure`, else the exception to pass on.
    template <class C>
    static asio::awaitable<std::exception_ptr> handle(C& controller, Ctx& ctx, std::exception_ptr failure) {
        using Exception = detail::OnException<C, Ctx>;
        if constexpr (Exception::valid) {
            std::exception_ptr passed_on;
            try {
                if constexpr (Exception::with_ctx)
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
    void* services_ = nullptr;  ///< the constructor's `Services&`, erased: only the makers it set know its type
    ExceptionHandler on_exception_;
    LogLevel log_level_ = LogLevel::info;
    std::tuple<Store<Routes>...> stores_;
};

} // namespace swirl
