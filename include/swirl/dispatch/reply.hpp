#pragma once
/// What a dispatched action answers: EasySwoole's Socket `Response`, with its three statuses.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace swirl {

/// How the dispatcher delivers a `Reply` (EasySwoole's STATUS_OK, STATUS_RESPONSE_AND_CLOSE, STATUS_CLOSE).
enum class ReplyStatus {
    ok,                  ///< encode the message (if any) and push it
    response_and_close,  ///< push the message, then close with `code` and `reason`
    close,               ///< close with `code` and `reason`, pushing nothing
};

/// An action's answer. `Content` is the parser's message type (`std::string` for text, a JSON value for JSON).
/// A default-constructed reply sends nothing.
template <class Content>
struct Reply {
    using content_type = Content;

    ReplyStatus status = ReplyStatus::ok;
    std::optional<Content> message;  ///< none: push nothing
    std::string error;               ///< non-empty: the call failed; the parser encodes it as an error report
    Opcode opcode = Opcode::text;    ///< a hint for parsers whose wire format allows both
    std::uint16_t code = close_code::normal;  ///< for the two closing statuses
    std::string reason;

    static Reply ok(Content message, Opcode opcode = Opcode::text) {
        Reply r;
        r.message = std::move(message);
        r.opcode = opcode;
        return r;
    }
    static Reply response_and_close(Content message, std::uint16_t code = close_code::normal, std::string reason = {}) {
        Reply r = ok(std::move(message));
        r.status = ReplyStatus::response_and_close;
        r.code = code;
        r.reason = std::move(reason);
        return r;
    }
    static Reply close(std::uint16_t code = close_code::normal, std::string reason = {}) {
        Reply r;
        r.status = ReplyStatus::close;
        r.code = code;
        r.reason = std::move(reason);
        return r;
    }
    /// An error report to the client (unknown action, bad arguments); the connection stays open.
    static Reply failure(std::string error) {
        Reply r;
        r.error = std::move(error);
        return r;
    }

    /// True when delivering this reply pushes nothing and closes nothing.
    bool empty() const noexcept { return status == ReplyStatus::ok && !message && error.empty(); }
};

/// An encoded message ready to push.
struct Outgoing {
    std::string payload;
    Opcode opcode = Opcode::text;
};

} // namespace swirl
