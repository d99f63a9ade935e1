#pragma once
/// A dependency-free parser for line commands: `action arg arg ...` → `Caller{controller, action, {arg, ...}}`.

#include <swirl/protocol/frame.hpp>
#include <swirl/dispatch/parser.hpp>
#include <swirl/dispatch/reply.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swirl {

using TextReply = Reply<std::string>;

/// Splits a text message on ASCII whitespace: the first word is the action, the rest its arguments (views into
/// the frame's payload, valid while the message is dispatched). Every call goes to `controller`. Empty messages
/// and non-text frames dispatch nothing. Replies are sent as they are; error replies as `error: <text>`.
struct TextParser {
    using args_type = std::vector<std::string_view>;
    using content_type = std::string;

    std::string controller = "Index";

    template <class Connection>
    std::optional<Caller<args_type>> decode(Frame& frame, Connection&) const {
        if (frame.opcode != Opcode::text) return std::nullopt;
        std::optional<Caller<args_type>> call;
        const std::string_view text = frame.payload;
        std::size_t i = 0;
        while (i < text.size()) {
            while (i < text.size() && is_space(text[i])) ++i;
            const std::size_t start = i;
            while (i < text.size() && !is_space(text[i])) ++i;
            if (start == i) break;
            const std::string_view word = text.substr(start, i - start);
            if (!call) call.emplace(Caller<args_type>{controller, std::string(word), {}});
            else call->args.push_back(word);
        }
        return call;
    }

    template <class Connection>
    std::optional<Outgoing> encode(const TextReply& reply, const Caller<args_type>&, Connection&) const {
        if (!reply.error.empty()) return Outgoing{"error: " + reply.error, Opcode::text};
        if (!reply.message) return std::nullopt;
        return Outgoing{*reply.message, reply.opcode};
    }

private:
    static constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
};

} // namespace swirl
