// The Parser concept: the shipped parsers satisfy it, and non-conforming types are rejected by name.
#include "doctest.hpp"

#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/text_parser.hpp>

#include <optional>
#include <string>

namespace {

struct NoTypes {};

struct DecodeReturnsBool {
    using args_type = int;
    using content_type = std::string;
    template <class C>
    bool decode(swirl::Frame&, C&) const { return true; }
    template <class C>
    std::optional<swirl::Outgoing> encode(const swirl::Reply<std::string>&, const swirl::Caller<int>&, C&) const {
        return std::nullopt;
    }
};

struct NoEncode {
    using args_type = int;
    using content_type = std::string;
    template <class C>
    std::optional<swirl::Caller<int>> decode(swirl::Frame&, C&) const { return std::nullopt; }
};

struct MutatingDecode {  // decode must be const: one parser serves every thread
    using args_type = int;
    using content_type = std::string;
    template <class C>
    std::optional<swirl::Caller<int>> decode(swirl::Frame&, C&) { return std::nullopt; }
    template <class C>
    std::optional<swirl::Outgoing> encode(const swirl::Reply<std::string>&, const swirl::Caller<int>&, C&) const {
        return std::nullopt;
    }
};

struct Minimal {
    using args_type = int;
    using content_type = std::string;
    template <class C>
    std::optional<swirl::Caller<int>> decode(swirl::Frame&, C&) const { return std::nullopt; }
    template <class C>
    std::optional<swirl::Outgoing> encode(const swirl::Reply<std::string>&, const swirl::Caller<int>&, C&) const {
        return std::nullopt;
    }
};

static_assert(swirl::Parser<swirl::TextParser>);
static_assert(swirl::Parser<Minimal>);
static_assert(!swirl::Parser<int>);
static_assert(!swirl::Parser<NoTypes>);
static_assert(!swirl::Parser<DecodeReturnsBool>);
static_assert(!swirl::Parser<NoEncode>);
static_assert(!swirl::Parser<MutatingDecode>);

} // namespace

TEST_CASE("reply factories set status, message, close code and reason") {
    using R = swirl::Reply<std::string>;
    CHECK(R{}.empty());
    const auto ok = R::ok("hi", swirl::Opcode::binary);
    CHECK(ok.status == swirl::ReplyStatus::ok);
    CHECK(ok.message == "hi");
    CHECK(ok.opcode == swirl::Opcode::binary);
    CHECK_FALSE(ok.empty());
    const auto bye = R::response_and_close("bye", 4000, "done");
    CHECK(bye.status == swirl::ReplyStatus::response_and_close);
    CHECK(bye.message == "bye");
    CHECK(bye.code == 4000);
    CHECK(bye.reason == "done");
    const auto close = R::close(1008, "policy");
    CHECK(close.status == swirl::ReplyStatus::close);
    CHECK_FALSE(close.message);
    CHECK(close.code == 1008);
    CHECK_FALSE(close.empty());
    const auto failure = R::failure("unknown action: x");
    CHECK(failure.status == swirl::ReplyStatus::ok);
    CHECK(failure.error == "unknown action: x");
    CHECK_FALSE(failure.empty());
}
