// Must not compile: the dispatcher is given services, but its one controller takes a different type (a Pool&, not
// the Services& it was given), so the services would silently go unused and the controller default-constructed.
// tests/compile_fail_test.py checks that this is one short error naming the services' type.
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Pool {
    int connections = 4;
};
struct Services {
    Pool pool;
};

struct Users {
    Users() = default;
    explicit Users(Pool& p) : pool(&p) {}  // should take Services&
    swirl::TextReply count(Ctx&) { return swirl::TextReply::ok(pool ? "pooled" : "no pool"); }
    Pool* pool = nullptr;
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Users, "Users", swirl::Action<"count", &Users::count>>>;

void serve() {
    Services services;
    Dispatcher dispatcher(services);
    Connection connection;
    swirl::Frame frame;
    asio::io_context io;
    asio::co_spawn(io, dispatcher.on_message(connection, frame), asio::detached);
}
