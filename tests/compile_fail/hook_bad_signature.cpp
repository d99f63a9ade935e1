// Must not compile: controller "Index" has a before_action hook the dispatcher cannot call (it takes an int).
// Were it skipped as absent, its check would silently never run.
// tests/compile_fail_test.py checks that this is one short error naming the controller and the hook.
#include <swirl/dispatch/dispatcher.hpp>
#include <swirl/dispatch/text_parser.hpp>

struct Connection {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) {}
    bool close(std::uint16_t, std::string_view) { return true; }
};

using Ctx = swirl::Context<swirl::TextParser, Connection>;

struct Index {
    bool before_action(int user) { return user != 0; }  // should take Ctx& or std::string_view
    swirl::TextReply hello(Ctx&) { return swirl::TextReply::ok("hello"); }
};

using Dispatcher = swirl::Dispatcher<Ctx, swirl::Controller<Index, "Index", swirl::Action<"hello", &Index::hello>>>;

asio::awaitable<void> on_message(Dispatcher& dispatcher, Connection& connection, swirl::Frame& frame) {
    co_await dispatcher.on_message(connection, frame);
}
