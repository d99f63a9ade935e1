#include "doctest.hpp"

#include <swirl/dispatch/text_parser.hpp>

#include <string>
#include <vector>

namespace {

struct Sink {
    std::uint64_t id() const noexcept { return 1; }
    void send(std::string_view, swirl::Opcode = swirl::Opcode::text) { ++sent; }
    bool close(std::uint16_t, std::string_view) { return true; }
    int sent = 0;
};

swirl::Frame text(std::string payload) {
    swirl::Frame f;
    f.payload = std::move(payload);
    return f;
}

} // namespace

TEST_CASE("text parser: first word is the action, the rest are arguments") {
    swirl::TextParser parser;
    Sink sink;
    auto frame = text("join  lobby\tred\r\n");
    const auto call = parser.decode(frame, sink);
    REQUIRE(call);
    CHECK(call->controller == "Index");
    CHECK(call->action == "join");
    CHECK(call->args == std::vector<std::string_view>{"lobby", "red"});
    // Arguments are views into the payload: no copy per argument.
    CHECK(call->args[0].data() >= frame.payload.data());
    CHECK(call->args[0].data() < frame.payload.data() + frame.payload.size());
    CHECK(sink.sent == 0);
}

TEST_CASE("text parser: a word alone is an action without arguments; the controller is configurable") {
    swirl::TextParser parser{.controller = "Chat"};
    Sink sink;
    auto frame = text("ping");
    const auto call = parser.decode(frame, sink);
    REQUIRE(call);
    CHECK(call->controller == "Chat");
    CHECK(call->action == "ping");
    CHECK(call->args.empty());
}

TEST_CASE("text parser: empty, blank and non-text messages dispatch nothing") {
    swirl::TextParser parser;
    Sink sink;
    for (const std::string payload : {"", " ", " \t\r\n "}) {
        auto frame = text(payload);
        CHECK_FALSE(parser.decode(frame, sink));
    }
    auto binary = text("hello");
    binary.opcode = swirl::Opcode::binary;
    CHECK_FALSE(parser.decode(binary, sink));
    CHECK(sink.sent == 0);
}

TEST_CASE("text parser: a huge message splits into every word") {
    std::string payload = "sum";
    for (int i = 0; i < 100000; ++i) payload.append(" ").append(std::to_string(i));  // not " " + ...: -Wrestrict
    swirl::TextParser parser;
    Sink sink;
    auto frame = text(payload);
    const auto call = parser.decode(frame, sink);
    REQUIRE(call);
    REQUIRE(call->args.size() == 100000);
    CHECK(call->args.front() == "0");
    CHECK(call->args.back() == "99999");
}

TEST_CASE("text parser: replies are sent as they are, errors prefixed, nothing for an empty reply") {
    swirl::TextParser parser;
    Sink sink;
    const swirl::Caller<swirl::TextParser::args_type> call{"Index", "x", {}};
    const auto ok = parser.encode(swirl::TextReply::ok("done"), call, sink);
    REQUIRE(ok);
    CHECK(ok->payload == "done");
    CHECK(ok->opcode == swirl::Opcode::text);
    const auto binary = parser.encode(swirl::TextReply::ok(std::string("\x00\x01", 2), swirl::Opcode::binary), call, sink);
    REQUIRE(binary);
    CHECK(binary->payload == std::string("\x00\x01", 2));
    CHECK(binary->opcode == swirl::Opcode::binary);
    const auto error = parser.encode(swirl::TextReply::failure("unknown action: Index.x"), call, sink);
    REQUIRE(error);
    CHECK(error->payload == "error: unknown action: Index.x");
    CHECK_FALSE(parser.encode(swirl::TextReply{}, call, sink));
    CHECK_FALSE(parser.encode(swirl::TextReply::close(4000), call, sink));
}
