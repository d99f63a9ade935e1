#pragma once
/// The parser policy of the dispatcher: decode a message into a `Caller`, encode a `Reply` into a frame.

#include <swirl/protocol/frame.hpp>
#include <swirl/dispatch/reply.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace swirl {

/// A decoded message: which controller and action to run, with the parser's arguments.
template <class Args>
struct Caller {
    std::string controller;
    std::string action;
    Args args{};
};

namespace detail {
/// The least a connection offers a parser (id, send, close): parsers are checked against it, so a parser
/// takes its connection as a template parameter and works with the server's and a test's connection alike.
struct ParserConnection {
    std::uint64_t id() const noexcept;
    void send(std::string_view payload, Opcode opcode = Opcode::text);
    bool close(std::uint16_t code, std::string_view reason);
};
} // namespace detail

/// A parser names its argument type (`args_type`) and reply content type (`content_type`), and offers
/// `decode(frame, connection)`: none means "dispatch nothing, send nothing" (a parser may push its own error
/// report first), and `encode(reply, caller, connection)`: none means "send nothing". Both are const: one parser
/// serves every connection on every thread.
template <class P, class Connection>
concept ParserFor = requires { typename P::args_type; typename P::content_type; } &&
    requires(const P& parser, Frame& frame, Connection& connection, const Caller<typename P::args_type>& caller,
             const Reply<typename P::content_type>& reply) {
        { parser.decode(frame, connection) } -> std::same_as<std::optional<Caller<typename P::args_type>>>;
        { parser.encode(reply, caller, connection) } -> std::same_as<std::optional<Outgoing>>;
    };

/// A parser usable with any connection type.
template <class P>
concept Parser = ParserFor<P, detail::ParserConnection>;

} // namespace swirl
