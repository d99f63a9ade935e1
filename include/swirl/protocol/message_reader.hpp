#pragma once
/// Sans-I/O reader: turns a byte stream into messages and control frames, enforcing RFC 6455 as it goes.
/// Every violation is reported with the close code the endpoint must send, as soon as the offending byte arrives.
///
/// With permessage-deflate negotiated (`set_compression(true)`, RFC 7692 §6), the first frame of a data message may
/// carry RSV1: the message is then reassembled as received and delivered compressed, `frame().rsv == rsv::rsv1`, for
/// the caller to inflate (swirl/protocol/deflate.hpp) and, for text, to check as UTF-8 afterwards. RSV1 on a
/// continuation or control frame, or on any frame without the extension, is 1002.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/mask.hpp>
#include <swirl/protocol/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace swirl {

/// Which side of the connection the reader is on: servers require masked frames, clients unmasked ones.
enum class Role { server, client };

struct ReaderLimits {
    std::uint64_t max_frame_size = 64ull << 20;    ///< payload bytes in one frame
    std::uint64_t max_message_size = 64ull << 20;  ///< payload bytes in one (reassembled) message
};

/// The wire bytes a compressed frame or message may take under `limit`, which bounds its inflated size (enforced
/// while inflating): an eighth more, plus 1 KiB, since DEFLATE may code data in more bytes than it had (9-bit
/// fixed-Huffman literals, 5 bytes per stored block, empty blocks). Saturates.
constexpr std::uint64_t compressed_wire_limit(std::uint64_t limit) noexcept {
    const std::uint64_t slack = limit / 8 + 1024;
    return limit > ~std::uint64_t{0} - slack ? ~std::uint64_t{0} : limit + slack;
}

enum class ReadEvent {
    need_more,  ///< all input consumed, nothing complete yet
    message,    ///< a whole text or binary message is in `frame()`
    ping,
    pong,
    close,      ///< a valid close frame is in `frame()`; the reader ignores further input
    error,      ///< a protocol violation; see `error_code()` / `error_reason()`; the reader is dead
};

struct ReadResult {
    ReadEvent event;
    std::size_t consumed;  ///< input bytes used; feed the rest again
};

class MessageReader {
public:
    explicit MessageReader(Role role = Role::server, ReaderLimits limits = {}) noexcept
        : role_(role), limits_(limits) {}

    /// Consumes input until one event is complete. The frame returned by `frame()` stays valid until the next call.
    ReadResult read(std::span<const std::uint8_t> input) {
        if (delivered_ != Delivered::none) settle_delivered();
        // A failed or closed reader is not in the header state: the general path answers it.
        if (state_ == State::header && header_len_ == 0 && !in_message_)
            if (const ReadResult whole = read_whole_message(input); whole.event != ReadEvent::need_more) return whole;
        return read_frames(input);
    }

    /// Frees the message buffer if its capacity exceeds `keep_capacity` and no message is partly received, so that
    /// a connection waiting for input does not hold a burst's buffer. `frame()` is invalid afterwards.
    void release_buffer(std::size_t keep_capacity) noexcept {
        if (!in_message_ && message_.payload.capacity() > keep_capacity) std::string().swap(message_.payload);
    }

    /// Hands over the message buffer, for the caller to pool while the connection waits for input: empty while a
    /// message is partly received (that buffer stays). `frame()` is invalid afterwards.
    std::string take_buffer() noexcept {
        if (in_message_) return {};
        return std::exchange(message_.payload, std::string());
    }

    /// Offers `buffer` (a pooled one, say) for the next message: swapped in only between messages, and only when
    /// larger than the reader's own. Saves allocating and zero-filling a new one. True when taken (`buffer` then
    /// holds what the reader had).
    bool adopt_buffer(std::string& buffer) noexcept {
        if (in_message_ || buffer.capacity() <= message_.payload.capacity()) return false;
        message_.payload.swap(buffer);
        return true;
    }

    /// permessage-deflate negotiated (or not): whether a first data frame may carry RSV1, marking its message as
    /// compressed. Such a message is delivered as received (`frame().rsv == rsv::rsv1`, text not yet UTF-8 checked),
    /// under `compressed_wire_limit` of the limits. Takes effect from the next frame header.
    void set_compression(bool enabled) noexcept { allowed_rsv_ = enabled ? rsv::rsv1 : 0; }
    bool compression() const noexcept { return allowed_rsv_ != 0; }

    /// The capacity of the buffer the next message is received into.
    std::size_t buffer_capacity() const noexcept { return message_.payload.capacity(); }

    /// The last completed message or control frame.
    Frame& frame() noexcept { return last_is_control_ ? control_ : message_; }
    std::uint16_t error_code() const noexcept { return error_code_; }
    std::string_view error_reason() const noexcept { return error_reason_; }
    /// True while a fragmented message is partly received.
    bool in_message() const noexcept { return in_message_; }
    /// True between frames with no message partly received: nothing read so far is waiting for more input, so the
    /// next frame may as well go to another reader of the same role and limits (a pooled one, say).
    bool at_rest() const noexcept { return state_ == State::header && header_len_ == 0 && !in_message_; }
    Role role() const noexcept { return role_; }
    const ReaderLimits& limits() const noexcept { return limits_; }

private:
    enum class State { header, payload, closed, failed };

    /// What the previous `read` delivered is the caller's until this call: clears a control frame, and keeps the
    /// message buffer for the next message unless one huge message would pin it. A message's buffer also keeps its
    /// size: the next message overwrites it, and only growth beyond it is zero-filled first.
    void settle_delivered() noexcept {
        if (delivered_ == Delivered::control) control_.payload.clear();
        else release_buffer(1u << 20);
        delivered_ = Delivered::none;
    }

    /// The general path: any input, a byte at a time if need be, through the header and payload states. Out of line,
    /// so that `read`'s common case stays small where it is inlined.
#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    ReadResult read_frames(std::span<const std::uint8_t> input) {
        if (state_ == State::failed || state_ == State::closed) return {state_ == State::failed ? ReadEvent::error : ReadEvent::need_more, input.size()};

        std::size_t used = 0;
        while (true) {
            if (state_ == State::header) {
                HeaderDecode head{HeaderStatus::incomplete, 0};
                if (header_len_ == 0 && (head = decode_frame_header(input.subspan(used), header_)).status != HeaderStatus::incomplete) {
                    used += head.size;  // the whole header is in the input: decoded in place
                } else {
                    const std::size_t want = header_need_ - header_len_;
                    const std::size_t take = std::min(want, input.size() - used);
                    std::copy_n(input.data() + used, take, header_buf_ + header_len_);
                    header_len_ += take;
                    used += take;
                    if (header_len_ < header_need_) return {ReadEvent::need_more, used};
                    head = decode_frame_header(std::span(header_buf_, header_len_), header_);
                    if (head.status == HeaderStatus::incomplete) {
                        header_need_ = head.size;
                        continue;
                    }
                }
                if (head.status == HeaderStatus::bad_length) return fail(close_code::protocol_error, "invalid payload length encoding", used);
                header_len_ = 0;
                header_need_ = 2;
                if (const auto r = begin_frame(); r.event == ReadEvent::error) return {r.event, used};
                // A zero-length payload completes the frame at once.
            } else {
                const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size() - used));
                if (take != 0) {
                    const bool control = is_control(header_.opcode);
                    std::string& dst = control ? control_.payload : message_.payload;
                    const std::size_t old = control ? dst.size() : message_size_;
                    if (dst.size() < old + take) dst.resize(old + take);
                    if (header_.masked) mask_phase_ = mask_copy(dst.data() + old, input.data() + used, take, header_.mask, mask_phase_);
                    else std::copy_n(input.data() + used, take, dst.data() + old);
                    used += take;
                    remaining_ -= take;
                    if (!control) {
                        message_size_ += take;
                        if (check_utf8_ && !utf8_.feed(std::string_view(dst).substr(old, take)))
                            return fail(close_code::invalid_payload, "invalid UTF-8 in text message", used);
                    }
                }
                if (remaining_ != 0) return {ReadEvent::need_more, used};
            }
            if (state_ == State::payload && remaining_ == 0) {
                state_ = State::header;
                const ReadEvent ev = finish_frame();
                if (ev == ReadEvent::error) return {ev, used};
                if (ev != ReadEvent::need_more) return {ev, used};
            }
            if (used == input.size() && state_ == State::header) return {ReadEvent::need_more, used};
        }
    }

    /// The common case, between messages: the input starts with a whole, final, valid data frame. Reads it in one
    /// step (what the general path would do, without its state machine). Anything else, errors included, is left
    /// to the general path (`need_more`, which this never answers otherwise), which decodes the header again. A plain
    /// `ReadResult`, not an optional one: the optional went through the stack, its event stored as 4 bytes and read
    /// back as 8, a store-forwarding stall that `perf` put at a third of `Session::consume`'s samples.
    ReadResult read_whole_message(std::span<const std::uint8_t> input) {
        constexpr ReadResult not_whole{ReadEvent::need_more, 0};
        // The header, checked here rather than decoded into `header_` (its length with decode_frame_header's
        // helpers): FIN set, RSV bits only as negotiated, text or binary, masked exactly when we are the server, a
        // length in its shortest form, all of it in the input.
        const std::size_t have = input.size();
        if (have < 2) return not_whole;
        const std::uint8_t b0 = input[0], b1 = input[1];
        const std::uint8_t op = b0 & 0x0F;
        if ((b0 & 0xF0 & ~allowed_rsv_) != 0x80 || (op != 0x1 && op != 0x2)) return not_whole;
        const bool masked = (b1 & 0x80) != 0;
        if (masked != (role_ == Role::server)) return not_whole;
        const std::uint8_t len7 = b1 & 0x7F;
        std::uint64_t length = len7;
        std::size_t head = 2;
        if (len7 >= 126) {
            head += detail::extended_length_size(len7);
            if (have < head || !detail::decode_payload_length(len7, input.data() + 2, length)) return not_whole;
        }
        MaskKey key{};
        if (masked) {
            if (have < head + 4) return not_whole;
            std::memcpy(key.data(), input.data() + head, 4);
            head += 4;
        }
        if (length > have - head || length > limits_.max_frame_size || length > limits_.max_message_size) return not_whole;

        const auto n = static_cast<std::size_t>(length);
        std::string& dst = message_.payload;
        if (dst.size() != n) dst.resize(n);  // the old bytes are overwritten; only growth is zero-filled
        if (masked) mask_copy(dst.data(), input.data() + head, n, key, 0);
        else std::copy_n(input.data() + head, n, dst.data());
        const std::size_t used = head + n;
        const auto rsv = static_cast<std::uint8_t>(b0 & 0x70);
        message_.opcode = static_cast<Opcode>(op);
        message_.rsv = rsv;
        message_.fin = true;
        message_size_ = n;
        if (op == 0x1 && rsv == 0) {
            // ASCII (the common case) needs no validator; otherwise it starts at the first byte that is not.
            const auto* const begin = reinterpret_cast<const std::uint8_t*>(dst.data());
            const auto* const high = detail::skip_ascii(begin, begin + n);
            if (high != begin + n) {
                utf8_.reset();
                if (!utf8_.feed(std::string_view(dst).substr(static_cast<std::size_t>(high - begin))))
                    return fail(close_code::invalid_payload, "invalid UTF-8 in text message", used);
                if (!utf8_.complete()) return fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence", used);
            }
        }
        last_is_control_ = false;
        delivered_ = Delivered::message;
        return ReadResult{ReadEvent::message, used};
    }

    ReadResult begin_frame() {
        const auto op = static_cast<std::uint8_t>(header_.opcode);
        if ((header_.rsv & ~allowed_rsv_) != 0) return fail(close_code::protocol_error, "reserved bits set without a negotiated extension", 0);
        if (!is_known_opcode(op)) return fail(close_code::protocol_error, "reserved opcode", 0);
        if (role_ == Role::server && !header_.masked) return fail(close_code::protocol_error, "client frame is not masked", 0);
        if (role_ == Role::client && header_.masked) return fail(close_code::protocol_error, "server frame is masked", 0);
        if (is_control(header_.opcode)) {
            if (header_.rsv != 0) return fail(close_code::protocol_error, "RSV1 set on a control frame", 0);
            if (!header_.fin) return fail(close_code::protocol_error, "fragmented control frame", 0);
            if (header_.payload_length > 125) return fail(close_code::protocol_error, "control frame payload over 125 bytes", 0);
            control_.opcode = header_.opcode;
            control_.payload.clear();
            control_.code = 0;
            control_.reason.clear();
        } else {
            if (header_.opcode == Opcode::continuation && !in_message_) return fail(close_code::protocol_error, "continuation frame without a message to continue", 0);
            if (header_.opcode != Opcode::continuation && in_message_) return fail(close_code::protocol_error, "new data frame inside a fragmented message", 0);
            if (header_.opcode == Opcode::continuation && header_.rsv != 0) return fail(close_code::protocol_error, "RSV1 set on a continuation frame", 0);
            // A compressed message's limits bound its inflated size; its wire bytes get compressed_wire_limit.
            const bool compressed = header_.opcode == Opcode::continuation ? message_.rsv != 0 : header_.rsv != 0;
            const std::uint64_t max_frame = compressed ? compressed_wire_limit(limits_.max_frame_size) : limits_.max_frame_size;
            const std::uint64_t max_message = compressed ? compressed_wire_limit(limits_.max_message_size) : limits_.max_message_size;
            if (header_.payload_length > max_frame) return fail(close_code::message_too_big, "frame exceeds the size limit", 0);
            if (header_.opcode != Opcode::continuation) {
                message_.opcode = header_.opcode;
                message_.rsv = header_.rsv;
                message_size_ = 0;
                utf8_.reset();
                check_utf8_ = header_.opcode == Opcode::text && !compressed;
                in_message_ = true;
            }
            if (header_.payload_length > max_message - std::min<std::uint64_t>(message_size_, max_message))
                return fail(close_code::message_too_big, "message exceeds the size limit", 0);
            // Grow ahead for the announced frame, but never trust a huge length before its bytes arrive.
            message_.payload.reserve(message_size_ + static_cast<std::size_t>(std::min<std::uint64_t>(header_.payload_length, 1u << 16)));
        }
        remaining_ = header_.payload_length;
        mask_phase_ = 0;
        state_ = State::payload;
        return {ReadEvent::need_more, 0};
    }

    ReadEvent finish_frame() {
        if (is_control(header_.opcode)) {
            last_is_control_ = true;
            delivered_ = Delivered::control;
            switch (header_.opcode) {
            case Opcode::ping: return ReadEvent::ping;
            case Opcode::pong: return ReadEvent::pong;
            default: break;
            }
            const std::string& p = control_.payload;
            if (p.size() == 1) return fail(close_code::protocol_error, "close frame with a 1-byte payload", 0).event;
            if (p.empty()) {
                control_.code = close_code::no_status;
            } else {
                control_.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(p[0]) << 8) | static_cast<std::uint8_t>(p[1]));
                if (!close_code::is_valid(control_.code)) return fail(close_code::protocol_error, "invalid close code", 0).event;
                control_.reason.assign(p, 2);
                if (!is_valid_utf8(control_.reason)) return fail(close_code::invalid_payload, "invalid UTF-8 in close reason", 0).event;
            }
            delivered_ = Delivered::none;  // keep the close frame: nothing follows it
            state_ = State::closed;
            return ReadEvent::close;
        }
        if (!header_.fin) return ReadEvent::need_more;
        in_message_ = false;
        if (check_utf8_ && !utf8_.complete())
            return fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence", 0).event;
        message_.payload.resize(message_size_);  // never grows here: drops what an earlier, longer message left
        message_.fin = true;
        last_is_control_ = false;
        delivered_ = Delivered::message;
        return ReadEvent::message;
    }

    ReadResult fail(std::uint16_t code, std::string_view reason, std::size_t used) noexcept {
        state_ = State::failed;
        error_code_ = code;
        error_reason_ = reason;
        return {ReadEvent::error, used};
    }

    Role role_;
    ReaderLimits limits_;
    State state_ = State::header;
    std::uint8_t header_buf_[max_frame_header_size]{};
    std::size_t header_len_ = 0;
    std::size_t header_need_ = 2;
    FrameHeader header_;
    std::uint64_t remaining_ = 0;
    std::size_t mask_phase_ = 0;
    bool in_message_ = false;
    bool check_utf8_ = false;      ///< the message being received is uncompressed text
    std::uint8_t allowed_rsv_ = 0;  ///< rsv::rsv1 with permessage-deflate (`set_compression`)
    std::size_t message_size_ = 0;  ///< payload bytes of the current message so far; `message_.payload` may be longer
    Utf8Validator utf8_;
    Frame message_;
    Frame control_;
    // Which frame the caller holds, and which to clear on the next read: flags, not pointers, so that a reader
    // can be moved.
    enum class Delivered { none, message, control };
    bool last_is_control_ = false;
    Delivered delivered_ = Delivered::none;
    std::uint16_t error_code_ = 0;
    std::string_view error_reason_;
};

} // namespace swirl
