// Must not compile: the action `hello` of controller "Index" does not take the context (Ctx&).
// tests/compile_fail_test.py checks that this is one short error naming the controller and the action, and that
// nothing follows it although the dispatcher is used (its message handler and runners are instantiated).
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Index {
    asio::awaitable<swirl::TextReply> hello();  // should be hello(Ctx&)
    asio::awaitable<swirl::TextReply> bye(Ctx&);
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Index, "Index",
    swirl::Action<"hello", &Index::hello>,
    swirl::Action<"bye", &Index::bye>>>;

asio::awaitable<void> on_message(Dispatcher& dispatcher, Connection& connection, swirl::Frame& frame) {
    co_await dispatcher.on_message(connection, frame);
}
