// The dispatcher against a fake connection: routing, lifecycle hooks in EasySwoole's order, vetoes, not-found,
// exception paths and every reply status.
#include "doctest.hpp"

#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

struct FakeConnection {
    std::uint64_t id_value = 1;
    std::vector<std::pair<std::string, swirl::Opcode>> sent;
    std::optional<std::pair<std::uint16_t, std::string>> closed;

    std::uint64_t id() const noexcept { return id_value; }
    void send(std::string_view payload, swirl::Opcode opcode = swirl::Opcode::text) { sent.emplace_back(payload, opcode); }
    bool close(std::uint16_t code, std::string_view reason) {
        closed.emplace(code, reason);
        return true;
    }
    std::vector<std::string> payloads() const {
        std::vector<std::string> all;
        for (const auto& [p, op] : sent) all.push_back(p);
        return all;
    }
};

using Ctx = swirl::Context<swirl::TextParser, FakeConnection>;
using swirl::TextReply;

/// What the hooks and actions of the test controllers did, in order.
std::vector<std::string> trace;

/// Dispatches one text message and runs it to completion.
template <class D>
void dispatch(D& dispatcher, FakeConnection& connection, std::string text) {
    asio::io_context io;
    swirl::Frame frame;
    frame.payload = std::move(text);
    asio::co_spawn(io, dispatcher.on_message(connection, frame), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();
}

struct Plain {
    int calls = 0;
    asio::awaitable<TextReply> hello(Ctx& ctx) {
        ++calls;
        std::string who = ctx.args().empty() ? "world" : std::string(ctx.args()[0]);
        co_return TextReply::ok("hello, " + who + " #" + std::to_string(calls));
    }
    asio::awaitable<void> quiet(Ctx&) { co_return; }
    asio::awaitable<void> set_reply(Ctx& ctx) {
        ctx.reply() = TextReply::ok("set by the action");
        co_return;
    }
    asio::awaitable<void> raw(Ctx& ctx) {
        ctx.push(std::string("\x01\x02", 2), swirl::Opcode::binary);
        co_return;
    }
    asio::awaitable<TextReply> bye(Ctx&) { co_return TextReply::response_and_close("bye", 4000, "done"); }
    asio::awaitable<TextReply> drop(Ctx&) { co_return TextReply::close(4001, "dropped"); }
    asio::awaitable<TextReply> fail(Ctx&) { throw std::runtime_error("plain failure"); }
};

using PlainRoutes = swirl::Controller<Plain, "Index",
    swirl::Action<"hello", &Plain::hello>, swirl::Action<"quiet", &Plain::quiet>,
    swirl::Action<"set_reply", &Plain::set_reply>, swirl::Action<"raw", &Plain::raw>,
    swirl::Action<"bye", &Plain::bye>, swirl::Action<"drop", &Plain::drop>, swirl::Action<"fail", &Plain::fail>>;

/// Every hook, in the `Ctx&` form, recording what runs.
struct Hooked {
    bool before_action(Ctx& ctx) {
        trace.push_back("before_action " + ctx.action());
        if (ctx.action() == "secret") {
            ctx.reply() = TextReply::failure("denied");
            return false;
        }
        return true;
    }
    void action_not_found(Ctx& ctx) {
        trace.push_back("action_not_found " + ctx.action());
        ctx.reply() = TextReply::ok("no such thing: " + ctx.action());
    }
    void after_action(Ctx& ctx) { trace.push_back("after_action " + ctx.action()); }
    TextReply on_exception(Ctx& ctx, std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::invalid_argument& bad) {
            trace.push_back("on_exception " + ctx.action() + ": " + bad.what());
            return TextReply::failure(bad.what());
        }
    }

    asio::awaitable<TextReply> work(Ctx&) {
        trace.push_back("work");
        co_return TextReply::ok("worked");
    }
    asio::awaitable<TextReply> secret(Ctx&) {
        trace.push_back("secret");
        co_return TextReply::ok("leaked");
    }
    asio::awaitable<TextReply> bad_args(Ctx&) {
        trace.push_back("bad_args");
        throw std::invalid_argument("bad arguments");
    }
    asio::awaitable<TextReply> crash(Ctx&) {
        trace.push_back("crash");
        throw std::runtime_error("crashed");
    }
};

using HookedRoutes = swirl::Controller<Hooked, "Index",
    swirl::Action<"work", &Hooked::work>, swirl::Action<"secret", &Hooked::secret>,
    swirl::Action<"bad_args", &Hooked::bad_args>, swirl::Action<"crash", &Hooked::crash>>;

/// Hooks in the action-name form, as coroutines.
struct AsyncHooked {
    asio::awaitable<bool> before_action(std::string_view action) {
        trace.push_back("before_action " + std::string(action));
        co_return action != "no";
    }
    asio::awaitable<TextReply> action_not_found(std::string_view action) {
        co_return TextReply::ok("missing " + std::string(action));
    }
    asio::awaitable<void> after_action(std::string_view action) {
        trace.push_back("after_action " + std::string(action));
        co_return;
    }
    asio::awaitable<TextReply> yes(Ctx&) { co_return TextReply::ok("yes"); }
    asio::awaitable<TextReply> no(Ctx&) { co_return TextReply::ok("should not run"); }
};

/// A per-connection controller keeps state between messages.
struct Counter {
    int count = 0;
    asio::awaitable<TextReply> next(Ctx&) { co_return TextReply::ok(std::to_string(++count)); }
};

/// What an application hands its controllers: here a stand-in for a database pool.
struct Services {
    std::vector<std::string> rows;
    int controllers_made = 0;
};

/// Needs the services: it has no default constructor, and it cannot be moved (built in place, never copied).
struct Store {
    explicit Store(Services& s) : services(s) { ++services.controllers_made; }
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    asio::awaitable<TextReply> put(Ctx& ctx) {
        for (auto arg : ctx.args()) services.rows.emplace_back(arg);
        co_return TextReply::ok(std::to_string(services.rows.size()) + " rows");
    }
    asio::awaitable<TextReply> made(Ctx&) { co_return TextReply::ok(std::to_string(services.controllers_made)); }

    Services& services;
    std::mutex busy;  // not movable either
};

/// Reads the services through a const reference.
struct Reader {
    explicit Reader(const Services& s) : services(s) {}
    TextReply count(Ctx&) { return TextReply::ok(std::to_string(services.rows.size())); }
    const Services& services;
};

/// An aggregate holding the services needs no constructor: `Tally(services)` initialises its first member.
struct Tally {
    Services& services;
    TextReply rows(Ctx&) { return TextReply::ok(std::to_string(services.rows.size())); }
};

/// Hooks and actions the dispatcher cannot call (used only by compile-time checks: a dispatcher refuses them).
struct WrongHooks {
    bool before_action() { return true; }                           // takes nothing
    int after_action(Ctx&) { return 0; }                            // returns what no hook may
    bool on_request(Ctx&) { return true; }                          // the hook's old name
    void action_not_found(std::string_view) {}                      // fine
    asio::awaitable<TextReply> act(int) { co_return TextReply{}; }  // an action without Ctx&
    asio::awaitable<std::string> text(Ctx&) { co_return ""; }       // an action returning no reply
};

/// Actions that need no coroutine: a plain reply, or void.
struct Sync {
    TextReply ping(Ctx&) { return TextReply::ok("pong"); }
    void quiet(Ctx&) { trace.push_back("quiet"); }
    void set_reply(Ctx& ctx) { ctx.reply() = TextReply::ok("set"); }
    TextReply fail(Ctx&) { throw std::invalid_argument("sync failure"); }
    TextReply on_exception(std::exception_ptr) { return TextReply::failure("handled"); }
};

} // namespace

TEST_CASE("dispatcher: routes an action and sends the encoded reply") {
    swirl::Dispatcher<Ctx, PlainRoutes> dispatcher;
    FakeConnection c;
    dispatch(dispatcher, c, "hello Ada");
    CHECK(c.payloads() == std::vector<std::string>{"hello, Ada #1"});
    CHECK(c.sent[0].second == swirl::Opcode::text);
    CHECK_FALSE(c.closed);
}

TEST_CASE("dispatcher: a fresh controller serves every message by default") {
    swirl::Dispatcher<Ctx, PlainRoutes> dispatcher;
    FakeConnection c;
    dispatch(dispatcher, c, "hello a");
    dispatch(dispatcher, c, "hello b");
    CHECK(c.payloads() == std::vector<std::string>{"hello, a #1", "hello, b #1"});
}

TEST_CASE("dispatcher: per-connection controllers keep state per connection until on_close") {
    swirl::Dispatcher<Ctx, swirl::ConnectionController<Counter, "Index", swirl::Action<"next", &Counter::next>>> dispatcher;
    static_assert(decltype(dispatcher)::has_connection_controllers);
    static_assert(!swirl::Dispatcher<Ctx, PlainRoutes>::has_connection_controllers);
    FakeConnection a;
    FakeConnection b;
    b.id_value = 2;
    dispatch(dispatcher, a, "next");
    dispatch(dispatcher, a, "next");
    dispatch(dispatcher, b, "next");
    dispatch(dispatcher, a, "next");
    CHECK(a.payloads() == std::vector<std::string>{"1", "2", "3"});
    CHECK(b.payloads() == std::vector<std::string>{"1"});

    asio::io_context io;
    asio::co_spawn(io, dispatcher.on_close(a, 0), asio::detached);
    io.run();
    dispatch(dispatcher, a, "next");
    CHECK(a.payloads().back() == "1");
}

TEST_CASE("dispatcher: several controllers side by side, each found by name") {
    swirl::Dispatcher<Ctx, PlainRoutes,
                      swirl::Controller<Counter, "Counter", swirl::Action<"next", &Counter::next>>>
        dispatcher(swirl::TextParser{.controller = "Counter"});
    FakeConnection c;
    dispatch(dispatcher, c, "next");
    CHECK(c.payloads() == std::vector<std::string>{"1"});
    dispatch(dispatcher, c, "hello");  // Counter has no hello and no action_not_found hook
    CHECK(c.payloads().back() == "error: unknown action: Counter.hello");
}

TEST_CASE("dispatcher: unknown action and unknown controller get error replies; the connection stays open") {
    swirl::Dispatcher<Ctx, PlainRoutes> dispatcher;
    FakeConnection c;
    dispatch(dispatcher, c, "nope 1 2");
    CHECK(c.payloads() == std::vector<std::string>{"error: unknown action: Index.nope"});

    swirl::Dispatcher<Ctx, PlainRoutes> elsewhere(swirl::TextParser{.controller = "Missing"});
    dispatch(elsewhere, c, "hello");
    CHECK(c.payloads().back() == "error: unknown controller: Missing");
    CHECK_FALSE(c.closed);
}

TEST_CASE("dispatcher: hooks run in EasySwoole's order") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "work");
    CHECK(trace == std::vector<std::string>{"before_action work", "work", "after_action work"});
    CHECK(c.payloads() == std::vector<std::string>{"worked"});
}

TEST_CASE("dispatcher: before_action vetoes the action; after_action still runs") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "secret");
    CHECK(trace == std::vector<std::string>{"before_action secret", "after_action secret"});
    CHECK(c.payloads() == std::vector<std::string>{"error: denied"});
}

TEST_CASE("dispatcher: the controller's action_not_found answers unknown actions") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "missing");
    CHECK(trace == std::vector<std::string>{"before_action missing", "action_not_found missing", "after_action missing"});
    CHECK(c.payloads() == std::vector<std::string>{"no such thing: missing"});
}

TEST_CASE("dispatcher: on_exception handles what it knows, after_action runs, the connection stays open") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "bad_args");
    CHECK(trace == std::vector<std::string>{"before_action bad_args", "bad_args", "on_exception bad_args: bad arguments",
                                            "after_action bad_args"});
    CHECK(c.payloads() == std::vector<std::string>{"error: bad arguments"});
    CHECK_FALSE(c.closed);
}

TEST_CASE("dispatcher: an exception nobody handles closes with 1011 after after_action") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    dispatcher.log_level(swirl::LogLevel::off);
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "crash");  // on_exception rethrows runtime_error
    CHECK(trace == std::vector<std::string>{"before_action crash", "crash", "after_action crash"});
    CHECK(c.sent.empty());
    REQUIRE(c.closed);
    CHECK(c.closed->first == swirl::close_code::internal_error);
    CHECK(c.closed->second == "internal error");

    swirl::Dispatcher<Ctx, PlainRoutes> plain;  // no on_exception at all
    plain.log_level(swirl::LogLevel::off);
    FakeConnection d;
    dispatch(plain, d, "fail");
    REQUIRE(d.closed);
    CHECK(d.closed->first == swirl::close_code::internal_error);
}

TEST_CASE("dispatcher: the dispatcher-level handler sees unhandled exceptions; if it throws, 1011") {
    swirl::Dispatcher<Ctx, PlainRoutes> dispatcher;
    dispatcher.log_level(swirl::LogLevel::off);
    std::string seen;
    dispatcher.on_exception([&](Ctx& ctx, std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            seen = ctx.action() + ": " + ex.what();
        }
        return TextReply::failure("sorry");
    });
    FakeConnection c;
    dispatch(dispatcher, c, "fail");
    CHECK(seen == "fail: plain failure");
    CHECK(c.payloads() == std::vector<std::string>{"error: sorry"});
    CHECK_FALSE(c.closed);

    dispatcher.on_exception([](Ctx&, std::exception_ptr e) -> TextReply { std::rethrow_exception(e); });
    FakeConnection d;
    dispatch(dispatcher, d, "fail");
    REQUIRE(d.closed);
    CHECK(d.closed->first == swirl::close_code::internal_error);
}

TEST_CASE("dispatcher: coroutine hooks taking the action name") {
    swirl::Dispatcher<Ctx, swirl::Controller<AsyncHooked, "Index", swirl::Action<"yes", &AsyncHooked::yes>,
                                             swirl::Action<"no", &AsyncHooked::no>>>
        dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "yes");
    dispatch(dispatcher, c, "no");
    dispatch(dispatcher, c, "maybe");
    CHECK(trace == std::vector<std::string>{"before_action yes", "after_action yes", "before_action no", "after_action no",
                                            "before_action maybe", "after_action maybe"});
    CHECK(c.payloads() == std::vector<std::string>{"yes", "missing maybe"});
}

TEST_CASE("dispatcher: each reply status") {
    swirl::Dispatcher<Ctx, PlainRoutes> dispatcher;
    SUBCASE("response and close: push, then close with the reply's code and reason") {
        FakeConnection c;
        dispatch(dispatcher, c, "bye");
        CHECK(c.payloads() == std::vector<std::string>{"bye"});
        REQUIRE(c.closed);
        CHECK(c.closed->first == 4000);
        CHECK(c.closed->second == "done");
    }
    SUBCASE("close: close only") {
        FakeConnection c;
        dispatch(dispatcher, c, "drop");
        CHECK(c.sent.empty());
        REQUIRE(c.closed);
        CHECK(c.closed->first == 4001);
        CHECK(c.closed->second == "dropped");
    }
    SUBCASE("an action returning void sends nothing unless it sets the reply") {
        FakeConnection c;
        dispatch(dispatcher, c, "quiet");
        CHECK(c.sent.empty());
        dispatch(dispatcher, c, "set_reply");
        CHECK(c.payloads() == std::vector<std::string>{"set by the action"});
        CHECK_FALSE(c.closed);
    }
    SUBCASE("push bypasses the parser's encoding") {
        FakeConnection c;
        dispatch(dispatcher, c, "raw");
        REQUIRE(c.sent.size() == 1);
        CHECK(c.sent[0].first == std::string("\x01\x02", 2));
        CHECK(c.sent[0].second == swirl::Opcode::binary);
    }
}

TEST_CASE("dispatcher: a message the parser does not decode dispatches nothing") {
    swirl::Dispatcher<Ctx, HookedRoutes> dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "   ");
    CHECK(trace.empty());
    CHECK(c.sent.empty());
    CHECK_FALSE(c.closed);
}

TEST_CASE("dispatcher: a controller constructible from the services gets them; the others are default-constructed") {
    Services services;
    swirl::Dispatcher<Ctx, swirl::Controller<Store, "Index", swirl::Action<"put", &Store::put>, swirl::Action<"made", &Store::made>>,
                      swirl::Controller<Plain, "Plain", swirl::Action<"hello", &Plain::hello>>>
        dispatcher(services);
    FakeConnection c;
    dispatch(dispatcher, c, "put a b");
    dispatch(dispatcher, c, "put c");
    CHECK(services.rows == std::vector<std::string>{"a", "b", "c"});
    CHECK(c.payloads() == std::vector<std::string>{"2 rows", "3 rows"});
    dispatch(dispatcher, c, "made");
    CHECK(c.payloads().back() == "3");  // per message: a fresh Store each time, each from the same services
    CHECK(services.controllers_made == 3);
}

TEST_CASE("dispatcher: an aggregate controller holding the services is made from them") {
    Services services;
    services.rows = {"only"};
    swirl::Dispatcher<Ctx, swirl::Controller<Tally, "Index", swirl::Action<"rows", &Tally::rows>>> dispatcher(services);
    FakeConnection c;
    dispatch(dispatcher, c, "rows");
    CHECK(c.payloads() == std::vector<std::string>{"1"});
}

TEST_CASE("dispatcher: services and a parser together; a const services object reaches const-taking controllers") {
    Services services;
    services.rows = {"x", "y"};
    const Services& view = services;
    swirl::Dispatcher<Ctx, swirl::Controller<Reader, "Reader", swirl::Action<"count", &Reader::count>>> dispatcher(
        view, swirl::TextParser{.controller = "Reader"});
    FakeConnection c;
    dispatch(dispatcher, c, "count");
    services.rows.emplace_back("z");  // held by reference, not copied
    dispatch(dispatcher, c, "count");
    CHECK(c.payloads() == std::vector<std::string>{"2", "3"});
}

TEST_CASE("dispatcher: a per-connection controller is made from the services once per connection") {
    Services services;
    swirl::Dispatcher<Ctx, swirl::ConnectionController<Store, "Index", swirl::Action<"put", &Store::put>,
                                                       swirl::Action<"made", &Store::made>>>
        dispatcher(services);
    FakeConnection a;
    FakeConnection b;
    b.id_value = 2;
    dispatch(dispatcher, a, "put 1");
    dispatch(dispatcher, a, "put 2");
    dispatch(dispatcher, b, "made");
    CHECK(services.controllers_made == 2);
    CHECK(b.payloads() == std::vector<std::string>{"2"});
    dispatcher.forget(a);
    dispatch(dispatcher, a, "made");
    CHECK(a.payloads().back() == "3");
}

TEST_CASE("dispatcher: an lvalue parser is still the parser, not the services") {
    swirl::TextParser parser{.controller = "Counter"};
    swirl::Dispatcher<Ctx, PlainRoutes, swirl::Controller<Counter, "Counter", swirl::Action<"next", &Counter::next>>>
        dispatcher(parser);
    FakeConnection c;
    dispatch(dispatcher, c, "next");
    CHECK(c.payloads() == std::vector<std::string>{"1"});
}

TEST_CASE("dispatcher: actions may return a plain reply or void") {
    swirl::Dispatcher<Ctx, swirl::Controller<Sync, "Index", swirl::Action<"ping", &Sync::ping>, swirl::Action<"quiet", &Sync::quiet>,
                                             swirl::Action<"set_reply", &Sync::set_reply>, swirl::Action<"fail", &Sync::fail>>>
        dispatcher;
    FakeConnection c;
    trace.clear();
    dispatch(dispatcher, c, "ping");
    dispatch(dispatcher, c, "quiet");
    dispatch(dispatcher, c, "set_reply");
    dispatch(dispatcher, c, "fail");
    CHECK(trace == std::vector<std::string>{"quiet"});
    CHECK(c.payloads() == std::vector<std::string>{"pong", "set", "error: handled"});
    CHECK_FALSE(c.closed);
}

TEST_CASE("dispatcher: hooks and actions it cannot call are told apart from absent ones") {
    // tests/compile_fail/ checks that each of these is one short error naming the controller and the hook or action.
    using Before = swirl::detail::BeforeAction<WrongHooks, Ctx>;
    static_assert(Before::declared && !Before::takes_ctx_or_name && !Before::valid);
    using After = swirl::detail::AfterAction<WrongHooks, Ctx>;
    static_assert(After::declared && After::takes_ctx_or_name && !After::returns_reply && !After::valid);
    using NotFound = swirl::detail::ActionNotFound<WrongHooks, Ctx>;
    static_assert(NotFound::valid && NotFound::with_name && !NotFound::with_ctx);
    static_assert(swirl::detail::declares_on_request<WrongHooks, Ctx>);
    static_assert(!swirl::detail::declares_on_request<Hooked, Ctx>);
    static_assert(!swirl::detail::OnException<WrongHooks, Ctx>::declared);
    static_assert(!swirl::detail::BeforeAction<Plain, Ctx>::declared);
    static_assert(swirl::detail::BeforeAction<AsyncHooked, Ctx>::valid);
    using Act = swirl::detail::ActionSignature<Ctx, WrongHooks, swirl::Action<"act", &WrongHooks::act>>;
    static_assert(!Act::takes_ctx && !Act::valid);
    using Text = swirl::detail::ActionSignature<Ctx, WrongHooks, swirl::Action<"text", &WrongHooks::text>>;
    static_assert(Text::takes_ctx && !Text::returns_reply);
    using Ping = swirl::detail::ActionSignature<Ctx, Sync, swirl::Action<"ping", &Sync::ping>>;
    static_assert(Ping::valid);
    CHECK(swirl::detail::made_from_services<Store, Services>);
    CHECK(swirl::detail::made_from_services<Reader, const Services>);
    CHECK_FALSE(swirl::detail::made_from_services<Store, void>);
    CHECK_FALSE(swirl::detail::made_from_services<Plain, Services>);
}
