#pragma once
/// What a dispatched action sees: its connection, the decoded call, and the reply being built.

#include <swirl/protocol/frame.hpp>
#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/reply.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace swirl {

/// One message being dispatched. Actions and controller hooks receive it; name it once in your app:
/// `using Ctx = swirl::Context<swirl::JsonParser, swirl::Server<>::Connection>;`
template <class ParserT, class ConnectionT>
    requires ParserFor<ParserT, ConnectionT>
class Context {
public:
    using parser_type = ParserT;
    using connection_type = ConnectionT;
    using args_type = typename ParserT::args_type;
    using content_type = typename ParserT::content_type;
    using caller_type = Caller<args_type>;
    using reply_type = Reply<content_type>;

    Context(const ParserT& parser, ConnectionT& connection, caller_type& caller) noexcept
        : parser_(parser), connection_(connection), caller_(caller) {}

    ConnectionT& connection() const noexcept { return connection_; }
    /// The server the connection belongs to (for `broadcast`, `push` to other ids, timers).
    decltype(auto) server() const requires requires(ConnectionT& c) { c.server(); } { return connection_.server(); }
    auto id() const { return connection_.id(); }

    const std::string& controller() const noexcept { return caller_.controller; }
    const std::string& action() const noexcept { return caller_.action; }
    args_type& args() noexcept { return caller_.args; }
    caller_type& caller() noexcept { return caller_; }

    /// The reply delivered after the action. An action returning a `Reply` replaces it; hooks and actions
    /// returning void may set it.
    reply_type& reply() noexcept { return reply_; }

    /// Pushes `data` to this connection now, bypassing the parser's encoding.
    void push(std::string_view data, Opcode opcode = Opcode::text) const { connection_.send(data, opcode); }

    /// Encodes `reply` as the parser would for this call, e.g. to broadcast it to other connections.
    std::optional<Outgoing> encode(const reply_type& reply) const { return parser_.encode(reply, caller_, connection_); }

private:
    const ParserT& parser_;
    ConnectionT& connection_;
    caller_type& caller_;
    reply_type reply_;
};

} // namespace swirl
