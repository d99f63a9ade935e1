#pragma once
/// What the dispatcher accepts as an action, a controller hook and a controller's constructor, and the diagnostics
/// that refuse the rest. A refusal is one `static_assert` whose condition is a variable template named for the rule
/// and parameterised on the controller's and action's wire names: the compiler prints those names in the first
/// error (`action_takes_ctx<FixedString<6>{"Index"}, FixedString<6>{"hello"}, false>`), and the dispatcher never
/// instantiates the call it refused, so nothing follows it.

#include <swirl/dispatch/detail/fixed_string.hpp>

#include <swirl/detail/asio.hpp>

#include <concepts>
#include <exception>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace swirl::detail {

/// True for `asio::awaitable<T>`: what the dispatcher's coroutine (on the default executor) can await.
template <class T>
struct is_awaitable : std::false_type {};
template <class T>
struct is_awaitable<asio::awaitable<T>> : std::true_type {};
template <class T>
inline constexpr bool is_awaitable_v = is_awaitable<std::remove_cvref_t<T>>::value;

/// What awaiting `T` gives: `T` itself when it is not an `asio::awaitable<T>`.
template <class T>
struct awaited {
    using type = T;
};
template <class T>
struct awaited<asio::awaitable<T>> {
    using type = T;
};
template <class T>
using awaited_t = typename awaited<std::remove_cvref_t<T>>::type;

/// True when an action or hook returning `R` can be run: void or `Reply`, plain or as an `asio::awaitable`.
template <class R, class Reply>
inline constexpr bool returns_reply_or_void =
    std::is_void_v<awaited_t<R>> || std::is_same_v<std::remove_cvref_t<awaited_t<R>>, Reply>;

/// True when the dispatcher makes controller `C` from its services, of type `Services` (`void`: it has none).
template <class C, class Services>
inline constexpr bool made_from_services = [] {
    if constexpr (std::is_void_v<Services>) return false;
    else return std::is_constructible_v<C, Services&>;
}();

/// Action `A` of controller `C` for context `Ctx`: callable as `(controller.*A::method)(ctx)`, and what it returns.
template <class Ctx, class C, class A>
struct ActionSignature {
    static constexpr bool takes_ctx = std::is_invocable_v<decltype(A::method), C&, Ctx&>;
    using result = typename std::conditional_t<takes_ctx, std::invoke_result<decltype(A::method), C&, Ctx&>,
                                               std::type_identity<void>>::type;
    static constexpr bool returns_reply = returns_reply_or_void<result, typename Ctx::reply_type>;
    /// The dispatcher runs only valid actions; `check_route` reports the others.
    static constexpr bool valid = takes_ctx && returns_reply;
};

// The hooks. Each is "declared" when the controller has a member of that name (a single, non-template one) or one
// callable the way the dispatcher calls it; a declared hook the dispatcher cannot call is an error, not silently
// skipped.

/// `before_action(Ctx&)` or `before_action(std::string_view action)`, returning bool, plain or awaited.
template <class C, class Ctx>
struct BeforeAction {
    static constexpr bool with_ctx = requires(C& c, Ctx& ctx) { c.before_action(ctx); };
    static constexpr bool with_name = requires(C& c, std::string_view action) { c.before_action(action); };
    static constexpr bool declared = with_ctx || with_name || requires { &C::before_action; };
    static constexpr bool takes_ctx_or_name = with_ctx || with_name;
    static constexpr bool returns_bool = [] {
        if constexpr (with_ctx)
            return std::convertible_to<awaited_t<decltype(std::declval<C&>().before_action(std::declval<Ctx&>()))>, bool>;
        else if constexpr (with_name)
            return std::convertible_to<awaited_t<decltype(std::declval<C&>().before_action(std::string_view{}))>, bool>;
        else
            return true;
    }();
    static constexpr bool valid = declared && takes_ctx_or_name && returns_bool;
};

/// `after_action(Ctx&)` or `after_action(std::string_view action)`, returning void or a reply.
template <class C, class Ctx>
struct AfterAction {
    static constexpr bool with_ctx = requires(C& c, Ctx& ctx) { c.after_action(ctx); };
    static constexpr bool with_name = requires(C& c, std::string_view action) { c.after_action(action); };
    static constexpr bool declared = with_ctx || with_name || requires { &C::after_action; };
    static constexpr bool takes_ctx_or_name = with_ctx || with_name;
    static constexpr bool returns_reply = [] {
        using Reply = typename Ctx::reply_type;
        if constexpr (with_ctx)
            return returns_reply_or_void<decltype(std::declval<C&>().after_action(std::declval<Ctx&>())), Reply>;
        else if constexpr (with_name)
            return returns_reply_or_void<decltype(std::declval<C&>().after_action(std::string_view{})), Reply>;
        else
            return true;
    }();
    static constexpr bool valid = declared && takes_ctx_or_name && returns_reply;
};

/// `action_not_found(Ctx&)` or `action_not_found(std::string_view action)`, returning void or a reply.
template <class C, class Ctx>
struct ActionNotFound {
    static constexpr bool with_ctx = requires(C& c, Ctx& ctx) { c.action_not_found(ctx); };
    static constexpr bool with_name = requires(C& c, std::string_view action) { c.action_not_found(action); };
    static constexpr bool declared = with_ctx || with_name || requires { &C::action_not_found; };
    static constexpr bool takes_ctx_or_name = with_ctx || with_name;
    static constexpr bool returns_reply = [] {
        using Reply = typename Ctx::reply_type;
        if constexpr (with_ctx)
            return returns_reply_or_void<decltype(std::declval<C&>().action_not_found(std::declval<Ctx&>())), Reply>;
        else if constexpr (with_name)
            return returns_reply_or_void<decltype(std::declval<C&>().action_not_found(std::string_view{})), Reply>;
        else
            return true;
    }();
    static constexpr bool valid = declared && takes_ctx_or_name && returns_reply;
};

/// `on_exception(Ctx&, std::exception_ptr)` or `on_exception(std::exception_ptr)`, returning void or a reply.
template <class C, class Ctx>
struct OnException {
    static constexpr bool with_ctx = requires(C& c, Ctx& ctx, std::exception_ptr e) { c.on_exception(ctx, e); };
    static constexpr bool with_exception = requires(C& c, std::exception_ptr e) { c.on_exception(e); };
    static constexpr bool declared = with_ctx || with_exception || requires { &C::on_exception; };
    static constexpr bool takes_ctx_or_name = with_ctx || with_exception;
    static constexpr bool returns_reply = [] {
        using Reply = typename Ctx::reply_type;
        using E = std::exception_ptr;
        if constexpr (with_ctx)
            return returns_reply_or_void<decltype(std::declval<C&>().on_exception(std::declval<Ctx&>(), E{})), Reply>;
        else if constexpr (with_exception)
            return returns_reply_or_void<decltype(std::declval<C&>().on_exception(E{})), Reply>;
        else
            return true;
    }();
    static constexpr bool valid = declared && takes_ctx_or_name && returns_reply;
};

/// The hook's name before it became `before_action`, in any form.
template <class C, class Ctx>
inline constexpr bool declares_on_request = requires(C& c, Ctx& ctx) { c.on_request(ctx); } ||
    requires(C& c, std::string_view action) { c.on_request(action); } || requires { &C::on_request; };

// The conditions the diagnostics print. Each is its last argument; the others are there to be printed, which is why
// the checks below take the names as template arguments rather than reading them from the route: the compiler
// then prints their values, not `Route::wire_name`.

/// False when the action's member function cannot be called with the context.
template <FixedString Controller, FixedString Action, bool Ok>
inline constexpr bool action_takes_ctx = Ok;
/// False when the action returns neither void nor the context's reply type, plain or as an `asio::awaitable`.
template <FixedString Controller, FixedString Action, bool Ok>
inline constexpr bool action_returns_reply_or_void = Ok;
/// False when the hook cannot be called with the context or the action's name (`on_exception`: and the exception).
template <FixedString Controller, FixedString Hook, bool Ok>
inline constexpr bool hook_takes_ctx_or_action_name = Ok;
/// False when the hook returns something it may not.
template <FixedString Controller, FixedString Hook, bool Ok>
inline constexpr bool hook_returns_what_it_may = Ok;
/// False when the controller still has the hook's old name.
template <FixedString Controller, bool Ok>
inline constexpr bool controller_has_no_on_request_hook = Ok;
/// False when the dispatcher has no services for the controller and cannot default-construct it.
template <FixedString Controller, bool Ok>
inline constexpr bool controller_is_default_constructible = Ok;
/// False when the controller can be made neither from the dispatcher's services nor by default.
template <FixedString Controller, bool Ok>
inline constexpr bool controller_is_constructible_from_services_or_default = Ok;
/// False when the dispatcher was given services that no controller is constructible from.
template <class Services, bool Ok>
inline constexpr bool some_controller_takes_the_services = Ok;

/// Reports a mistake in one action. Always true: the assertions do the reporting.
template <FixedString Controller, FixedString Action, bool TakesCtx, bool ReturnsOk>
constexpr bool report_action() {
    static_assert(action_takes_ctx<Controller, Action, TakesCtx>,
                  "swirl::Dispatcher: this action (controller and action named here) must be a member function of "
                  "its controller taking the context: `asio::awaitable<Reply> action(Ctx& ctx)`");
    static_assert(action_returns_reply_or_void<Controller, Action, ReturnsOk>,
                  "swirl::Dispatcher: this action (controller and action named here) must return "
                  "asio::awaitable<Ctx::reply_type>, asio::awaitable<void>, Ctx::reply_type or void");
    return true;
}

/// Reports a hook the dispatcher cannot call. Always true.
template <FixedString Controller, FixedString Hook, bool TakesOk, bool ReturnsOk>
constexpr bool report_hook() {
    static_assert(hook_takes_ctx_or_action_name<Controller, Hook, TakesOk>,
                  "swirl::Dispatcher: this controller hook (controller and hook named here) must take Ctx& or "
                  "std::string_view (the action's name); on_exception takes (Ctx&, std::exception_ptr) or "
                  "(std::exception_ptr)");
    static_assert(hook_returns_what_it_may<Controller, Hook, ReturnsOk>,
                  "swirl::Dispatcher: this controller hook (controller and hook named here) must return bool for "
                  "before_action (false vetoes the action), void or Ctx::reply_type for the others; plain or as an "
                  "asio::awaitable");
    return true;
}

/// Reports a controller still using the hook's old name. Always true.
template <FixedString Controller, bool Ok>
constexpr bool report_renamed_hook() {
    static_assert(controller_has_no_on_request_hook<Controller, Ok>,
                  "swirl::Dispatcher: the controller hook on_request is now called before_action (on_request is the "
                  "server's HTTP event): rename it in this controller (named here), or its check would never run");
    return true;
}

/// Reports every mistake in the hooks and actions of `Route`'s controller, each once, naming them. Always true.
template <class Ctx, class Route, class... A>
constexpr bool check_route(std::tuple<A...>*) {
    using C = typename Route::type;
    using Before = BeforeAction<C, Ctx>;
    using After = AfterAction<C, Ctx>;
    using NotFound = ActionNotFound<C, Ctx>;
    using Exception = OnException<C, Ctx>;
    constexpr auto name = Route::wire_name;
    return report_renamed_hook<name, !declares_on_request<C, Ctx>>() &&
           report_hook<name, "before_action", !Before::declared || Before::takes_ctx_or_name, Before::returns_bool>() &&
           report_hook<name, "after_action", !After::declared || After::takes_ctx_or_name, After::returns_reply>() &&
           report_hook<name, "action_not_found", !NotFound::declared || NotFound::takes_ctx_or_name,
                       NotFound::returns_reply>() &&
           report_hook<name, "on_exception", !Exception::declared || Exception::takes_ctx_or_name,
                       Exception::returns_reply>() &&
           (report_action<name, A::wire_name, ActionSignature<Ctx, C, A>::takes_ctx,
                          !ActionSignature<Ctx, C, A>::takes_ctx || ActionSignature<Ctx, C, A>::returns_reply>() &&
            ...);
}

/// Reports a controller the dispatcher cannot construct: from `Services&` when it has services (`void`: none),
/// else by default. Always true.
template <FixedString Controller, bool HasServices, bool Ok>
constexpr bool report_construction() {
    if constexpr (HasServices) {
        static_assert(controller_is_constructible_from_services_or_default<Controller, Ok>,
                      "swirl::Dispatcher: this controller (named here) can be constructed neither from the "
                      "dispatcher's services (Services&) nor by default");
    } else {
        static_assert(controller_is_default_constructible<Controller, Ok>,
                      "swirl::Dispatcher: this controller (named here) has no default constructor: construct the "
                      "dispatcher with the services it takes, `Dispatcher dispatcher(services)`");
    }
    return true;
}

/// Reports services no controller takes: surely a mistake (a controller taking another type, or taking them
/// non-const when they were given const), which would otherwise default-construct the controllers silently.
/// Always true.
template <class Services, bool Ok>
constexpr bool report_unused_services() {
    static_assert(some_controller_takes_the_services<Services, Ok>,
                  "swirl::Dispatcher: none of its controllers is constructible from these services (Services&, type "
                  "named here): give a controller a constructor taking them, or construct the dispatcher without them");
    return true;
}

/// Reports a controller of `Route` that the dispatcher cannot construct. Always true.
template <class Route, class Services>
constexpr bool check_construction() {
    using C = typename Route::type;
    return report_construction<Route::wire_name, !std::is_void_v<Services>,
                               made_from_services<C, Services> || std::is_default_constructible_v<C>>();
}

} // namespace swirl::detail
