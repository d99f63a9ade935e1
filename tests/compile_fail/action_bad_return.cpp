// Must not compile: the action `join` of controller "Rooms" returns a string, not a reply.
// tests/compile_fail_test.py checks that this is one short error naming the controller and the action, and that
// nothing follows it (without the guard, Asio's await_transform would add a hundred lines).
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

#include <string>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Rooms {
    asio::awaitable<std::string> join(Ctx&);  // should return asio::awaitable<swirl::TextReply>
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Rooms, "Rooms", swirl::Action<"join", &Rooms::join>>>;

asio::awaitable<void> on_message(Dispatcher& dispatcher, Connection& connection, swirl::Frame& frame) {
    co_await dispatcher.on_message(connection, frame);
}
