// Routes JSON text messages to controller actions, EasySwoole-style, and echoes binary messages as they are.
//   dispatch_server [--host 127.0.0.1] [--port 9501] [--threads N] ...
//                   [--deflate[=shared|dedicated] [--deflate-window BITS]]   (permessage-deflate; declined without)
// Send {"class":"Index","action":"hello","content":{"name":"Ada"}} (class defaults to Index, action to index).
#include "cli.hpp"

#include <swirl/dispatch/json_parser.hpp>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

using Server = swirl::Server<>;
using Ctx = swirl::Context<swirl::JsonParser, Server::Connection>;
using swirl::JsonReply;

/// What the controllers share, handed to them by the dispatcher instead of living in globals: here a message of
/// the day (a database pool or a cache would go here too). Every thread's controllers use it, hence the mutex.
class Services {
public:
    const std::string admin_token = "letmein";  // a demo's secret: take yours from your configuration

    std::string motd() {
        std::lock_guard lock(mutex_);
        return motd_;
    }
    void set_motd(std::string text) {
        std::lock_guard lock(mutex_);
        motd_ = std::move(text);
    }

private:
    std::mutex mutex_;
    std::string motd_ = "welcome";
};

class Index {
public:
    /// The dispatcher constructs a controller from its services when the controller takes them.
    explicit Index(Services& services) : services_(services) {}

    asio::awaitable<JsonReply> index(Ctx&) {
        co_return JsonReply::ok("actions: hello, echo, broadcast, whoami, add, motd, close, fail");
    }

    /// The message's "content" as it came: a scalar or array content arrives as {"content": value}.
    static nlohmann::json take_content(Ctx& ctx) {
        auto& args = ctx.args();
        return args.size() == 1 && args.contains("content") ? std::move(args["content"]) : std::move(args);
    }

    /// {"action":"hello","content":{"name":"Ada"}} → "hello, Ada"
    asio::awaitable<JsonReply> hello(Ctx& ctx) {
        co_return JsonReply::ok("hello, " + ctx.args().value("name", std::string("world")));
    }

    /// Replies with the content exactly as it came (used by the benchmark).
    asio::awaitable<JsonReply> echo(Ctx& ctx) { co_return JsonReply::ok(take_content(ctx)); }

    /// Pushes the content to every established connection, this one included, encoding it once.
    asio::awaitable<void> broadcast(Ctx& ctx) {
        const auto message = ctx.encode(JsonReply::ok(take_content(ctx)));
        ctx.server().broadcast(message->payload);
        co_return;
    }

    asio::awaitable<JsonReply> whoami(Ctx& ctx) { co_return JsonReply::ok(ctx.id()); }

    /// The message of the day, which Admin.motd sets. An action that needs no coroutine returns a plain reply.
    JsonReply motd(Ctx&) { return JsonReply::ok(services_.motd()); }

    /// {"action":"add","content":{"a":1,"b":2}} → 3; arguments that are not numbers throw std::invalid_argument,
    /// which `on_exception` turns into an error reply. Two integers add exactly or not at all: a sum (or an operand)
    /// outside the signed 64-bit range is an error reply, never a wrapped or rounded number.
    asio::awaitable<JsonReply> add(Ctx& ctx) {
        const auto& a = ctx.args()["a"];
        const auto& b = ctx.args()["b"];
        if (!a.is_number() || !b.is_number()) throw std::invalid_argument("add needs numbers a and b");
        if (a.is_number_integer() && b.is_number_integer()) {
            std::int64_t sum = 0;
            if (!fits_int64(a) || !fits_int64(b) ||
                __builtin_add_overflow(a.get<std::int64_t>(), b.get<std::int64_t>(), &sum))
                throw std::invalid_argument("add overflows a 64-bit integer");
            co_return JsonReply::ok(sum);
        }
        co_return JsonReply::ok(a.get<double>() + b.get<double>());
    }

    /// nlohmann keeps integers above INT64_MAX as unsigned; `get<std::int64_t>()` would wrap them.
    static bool fits_int64(const nlohmann::json& n) {
        return !n.is_number_unsigned() || n.get<std::uint64_t>() <= std::uint64_t(INT64_MAX);
    }

    /// Replies, then closes with 4000.
    asio::awaitable<JsonReply> close(Ctx&) { co_return JsonReply::response_and_close("bye", 4000, "bye"); }

    /// Throws an exception nobody handles: the connection is closed with 1011 and the error logged.
    asio::awaitable<JsonReply> fail(Ctx&) { throw std::runtime_error("fail was called"); }

    /// Bad arguments (ours, or a JSON value of the wrong type) become an error reply; anything else goes on to
    /// the dispatcher's default (close with 1011).
    JsonReply on_exception(std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::invalid_argument& bad) {
            return JsonReply::failure(bad.what());
        } catch (const nlohmann::json::type_error& bad) {
            return JsonReply::failure(std::string("bad arguments: ") + bad.what());
        }
    }

private:
    Services& services_;
};

/// Actions for whoever has the admin token:
/// {"class":"Admin","action":"motd","content":{"token":"letmein","text":"hello all"}} → "motd set"
class Admin {
public:
    explicit Admin(Services& services) : services_(services) {}

    /// Runs before each of Admin's actions; false vetoes the action (EasySwoole's onRequest).
    bool before_action(Ctx& ctx) {
        const auto& args = ctx.args();
        const auto token = args.find("token");
        if (token != args.end() && *token == services_.admin_token) return true;
        ctx.reply() = JsonReply::failure("admin actions need the admin token");
        return false;
    }

    JsonReply motd(Ctx& ctx) {
        const auto text = ctx.args().find("text");
        if (text == ctx.args().end() || !text->is_string()) return JsonReply::failure("motd needs a text");
        services_.set_motd(text->get<std::string>());
        return JsonReply::ok("motd set");
    }

private:
    Services& services_;
};

using Dispatcher = swirl::Dispatcher<Ctx,
    swirl::Controller<Index, "Index",
        swirl::Action<"index", &Index::index>,
        swirl::Action<"hello", &Index::hello>,
        swirl::Action<"echo", &Index::echo>,
        swirl::Action<"broadcast", &Index::broadcast>,
        swirl::Action<"whoami", &Index::whoami>,
        swirl::Action<"add", &Index::add>,
        swirl::Action<"motd", &Index::motd>,
        swirl::Action<"close", &Index::close>,
        swirl::Action<"fail", &Index::fail>>,
    swirl::Controller<Admin, "Admin",
        swirl::Action<"motd", &Admin::motd>>>;

int main(int argc, char** argv) {
    const examples::Cli cli(argc, argv, {});
    Server server(cli.settings());
    Services services;
    Dispatcher dispatcher(services);  // each controller is constructed from `services`
    server.on_message([&dispatcher](Server::Connection& connection, swirl::Frame& frame) -> asio::awaitable<void> {
        if (frame.is_text()) co_await dispatcher.on_message(connection, frame);
        else connection.send(frame.payload, frame.opcode);
    });
    return examples::serve(server, cli);
}
