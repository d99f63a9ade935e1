// Must not compile: controller "Admin" still names its veto hook `on_request`, which is now `before_action`.
// Were it accepted, the dispatcher would never call it and the authorisation check would silently vanish.
// tests/compile_fail_test.py checks that this is one short error naming the controller and the new name.
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Admin {
    bool on_request(Ctx& ctx) { return !ctx.args().empty() && ctx.args()[0] == "secret"; }
    asio::awaitable<swirl::TextReply> shutdown(Ctx&) { co_return swirl::TextReply::ok("shutting down"); }
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Admin, "Admin", swirl::Action<"shutdown", &Admin::shutdown>>>;

asio::awaitable<void> on_message(Dispatcher& dispatcher, Connection& connection, swirl::Frame& frame) {
    co_await dispatcher.on_message(connection, frame);
}
