// Must not compile: controller "Users" is constructed from the application's services, and the dispatcher was
// given none. tests/compile_fail_test.py checks that this is one short error naming the controller and the fix.
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Services {
    int pool = 0;
};

struct Users {
    explicit Users(Services& s) : services(s) {}
    swirl::TextReply count(Ctx&) { return swirl::TextReply::ok(std::to_string(services.pool)); }
    Services& services;
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Users, "Users", swirl::Action<"count", &Users::count>>>;

void serve() {
    Dispatcher dispatcher;  // should be `Dispatcher dispatcher(services)`
    Connection connection;
    swirl::Frame frame;
    asio::io_context io;
    asio::co_spawn(io, dispatcher.on_message(connection, frame), asio::detached);
}
