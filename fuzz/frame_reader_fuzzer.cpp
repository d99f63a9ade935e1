/// libFuzzer target: swirl::MessageReader (frame parser + message assembler) on arbitrary byte streams.
///
/// Input layout: [flags][frame limit][message limit][chunk seed] then the stream. Flags: bit 0 picks the role tried
/// first, bit 1 turns permessage-deflate's RSV1 on (`set_compression`).
/// The stream is read four ways: by a plain whole-buffer reference model written here, by the reader fed the
/// whole stream, in input-derived chunks (moving the reader between calls now and then), and byte by byte.
/// All four must produce the same events at the same stream offsets, and every call must keep the reader's
/// contract (consumed ≤ input, need_more consumes everything, close/error are final).

#include "fuzz_support.hpp"

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/message_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using swirl::MessageReader;
using swirl::Opcode;
using swirl::ReadEvent;
using swirl::ReaderLimits;
using swirl::Role;

/// One event as seen by the application.
struct Event {
    ReadEvent event{};
    Opcode opcode{};
    std::string payload;
    std::uint16_t code = 0;  ///< close code, or the error's close code
    std::string reason;
    std::size_t end = 0;     ///< stream offset just after the frame that completed it (0 for errors)
    std::uint8_t rsv = 0;    ///< messages: RSV1 when delivered compressed

    bool operator==(const Event&) const = default;
};

/// Limits small enough to be hit by short inputs, plus the default and "unlimited".
std::uint64_t limit_from(std::uint8_t b) {
    if (b == 0xFF) return std::numeric_limits<std::uint64_t>::max();
    if (b >= 0xF0) return ReaderLimits{}.max_frame_size;
    return std::uint64_t{b} * 4;
}

bool is_valid_close_reason(std::string_view reason) { return fuzz::utf8_reference_valid(reason); }

/// The reference model: RFC 6455 §5 applied to the complete stream, one frame after another, with the same
/// check order as the reader where several violations sit in one header. Text is checked as far as it has
/// arrived, so a bad byte fails the message even if its frame is cut off.
std::vector<Event> reference_events(Role role, const ReaderLimits& limits, bool compression, std::span<const std::uint8_t> s) {
    std::vector<Event> out;
    auto error = [&](std::uint16_t code) {
        out.push_back({ReadEvent::error, Opcode{}, {}, code, {}, 0, 0});
        return out;
    };
    std::size_t pos = 0;
    bool in_message = false;
    bool message_compressed = false;
    Opcode message_opcode = Opcode::text;
    std::string message;
    while (true) {
        const std::size_t left = s.size() - pos;
        if (left < 2) return out;
        const std::uint8_t b0 = s[pos], b1 = s[pos + 1];
        const bool fin = (b0 & 0x80) != 0;
        const std::uint8_t rsv = b0 & 0x70;
        const std::uint8_t op = b0 & 0x0F;
        const bool masked = (b1 & 0x80) != 0;
        std::uint64_t len = b1 & 0x7F;
        const std::size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
        const std::size_t header = 2 + ext + (masked ? 4 : 0);
        if (left < header) return out;
        if (ext != 0) {
            len = 0;
            for (std::size_t i = 0; i < ext; ++i) len = len * 256 + s[pos + 2 + i];
            const bool shortest = ext == 2 ? len >= 126 : len > 0xFFFF && len < (std::uint64_t{1} << 63);
            if (!shortest) return error(swirl::close_code::protocol_error);
        }
        const bool control = op >= 0x8;
        const bool known = op <= 0x2 || (op >= 0x8 && op <= 0xA);
        // RSV1 is only ever allowed on the first frame of a data message, and only with compression.
        if ((rsv & ~(compression ? swirl::rsv::rsv1 : 0)) != 0 || !known) return error(swirl::close_code::protocol_error);
        if ((role == Role::server) != masked) return error(swirl::close_code::protocol_error);
        if (control && (rsv != 0 || !fin || len > 125)) return error(swirl::close_code::protocol_error);
        if (!control) {
            if ((op == 0x0) != in_message) return error(swirl::close_code::protocol_error);
            if (op == 0x0 && rsv != 0) return error(swirl::close_code::protocol_error);
            const bool compressed = op == 0x0 ? message_compressed : rsv != 0;
            const std::uint64_t max_frame = compressed ? swirl::compressed_wire_limit(limits.max_frame_size) : limits.max_frame_size;
            const std::uint64_t max_message = compressed ? swirl::compressed_wire_limit(limits.max_message_size) : limits.max_message_size;
            if (len > max_frame) return error(swirl::close_code::message_too_big);
            if (op != 0x0) {
                in_message = true;
                message_compressed = compressed;
                message_opcode = static_cast<Opcode>(op);
                message.clear();
            }
            if (message.size() > max_message || len > max_message - message.size())
                return error(swirl::close_code::message_too_big);
        }

        const std::size_t avail = static_cast<std::size_t>(std::min<std::uint64_t>(len, left - header));
        std::string payload(avail, '\0');
        for (std::size_t i = 0; i < avail; ++i) {
            const std::uint8_t key = masked ? s[pos + header - 4 + i % 4] : 0;
            payload[i] = static_cast<char>(s[pos + header + i] ^ key);
        }
        if (!control) {
            message += payload;
            if (message_opcode == Opcode::text && !message_compressed && fuzz::utf8_reference(message).first_bad < message.size())
                return error(swirl::close_code::invalid_payload);
        }
        if (avail < len) return out;  // the frame is cut off
        pos += header + avail;

        if (!control) {
            if (!fin) continue;
            in_message = false;
            if (message_opcode == Opcode::text && !message_compressed && !fuzz::utf8_reference_valid(message))
                return error(swirl::close_code::invalid_payload);
            out.push_back({ReadEvent::message, message_opcode, message, 0, {}, pos,
                           message_compressed ? swirl::rsv::rsv1 : std::uint8_t{0}});
            continue;
        }
        if (op == 0x9 || op == 0xA) {
            out.push_back({op == 0x9 ? ReadEvent::ping : ReadEvent::pong, static_cast<Opcode>(op), payload, 0, {}, pos, 0});
            continue;
        }
        if (payload.size() == 1) return error(swirl::close_code::protocol_error);
        Event close{ReadEvent::close, Opcode::close, payload, swirl::close_code::no_status, {}, pos, 0};
        if (!payload.empty()) {
            close.code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(payload[0]) * 256 + static_cast<std::uint8_t>(payload[1]));
            if (!swirl::close_code::is_valid(close.code)) return error(swirl::close_code::protocol_error);
            close.reason = payload.substr(2);
            if (!is_valid_close_reason(close.reason)) return error(swirl::close_code::invalid_payload);
        }
        out.push_back(std::move(close));
        return out;
    }
}

enum class Feeding { whole, chunked, bytewise };

/// Runs a MessageReader over `s`, checking the per-call contract, and returns the events it produced.
std::vector<Event> reader_events(Role role, const ReaderLimits& limits, bool compression, std::span<const std::uint8_t> s,
                                 Feeding how, std::uint64_t seed) {
    fuzz::Chunker chunker(seed);
    MessageReader reader(role, limits);
    reader.set_compression(compression);
    FUZZ_CHECK(reader.role() == role && !reader.in_message() && reader.compression() == compression);
    std::vector<Event> out;
    std::size_t pos = 0;
    bool stopped = false;  // a close or error was reported

    while (pos < s.size() && !stopped) {
        const std::size_t left = s.size() - pos;
        const std::size_t n = how == Feeding::whole ? left : how == Feeding::bytewise ? 1 : chunker.size(left);
        const auto chunk = s.subspan(pos, n);
        std::size_t off = 0;
        while (true) {
            const auto r = reader.read(chunk.subspan(off));
            FUZZ_CHECK(r.consumed <= chunk.size() - off);
            off += r.consumed;
            if (how == Feeding::chunked && chunker.coin(8)) {
                // The reader must survive moves while it holds a delivered frame.
                MessageReader moved(std::move(reader));
                reader = std::move(moved);
            }
            if (r.event == ReadEvent::need_more) {
                FUZZ_CHECK(off == chunk.size());
                break;
            }
            if (r.event == ReadEvent::error) {
                const auto code = reader.error_code();
                FUZZ_CHECK(code == swirl::close_code::protocol_error || code == swirl::close_code::invalid_payload ||
                           code == swirl::close_code::message_too_big);
                FUZZ_CHECK(!reader.error_reason().empty());
                out.push_back({ReadEvent::error, Opcode{}, {}, code, {}, 0, 0});
                stopped = true;
                break;
            }
            FUZZ_CHECK(r.consumed > 0);  // every event completes at least one byte: no livelock
            const swirl::Frame& f = reader.frame();
            Event e{r.event, f.opcode, f.payload, 0, {}, pos + off, 0};
            switch (r.event) {
            case ReadEvent::message:
                FUZZ_CHECK(f.opcode == Opcode::text || f.opcode == Opcode::binary);
                FUZZ_CHECK(f.fin && (f.rsv == 0 || (compression && f.rsv == swirl::rsv::rsv1)) && !reader.in_message());
                FUZZ_CHECK(f.payload.size() <= (f.rsv != 0 ? swirl::compressed_wire_limit(limits.max_message_size) : limits.max_message_size));
                if (f.opcode == Opcode::text && f.rsv == 0) FUZZ_CHECK(swirl::is_valid_utf8(f.payload));
                e.rsv = f.rsv;
                break;
            case ReadEvent::ping:
            case ReadEvent::pong:
                FUZZ_CHECK(f.opcode == (r.event == ReadEvent::ping ? Opcode::ping : Opcode::pong));
                FUZZ_CHECK(f.payload.size() <= 125);
                break;
            case ReadEvent::close:
                FUZZ_CHECK(f.opcode == Opcode::close && f.payload.size() <= 125);
                if (f.payload.empty()) {
                    FUZZ_CHECK(f.code == swirl::close_code::no_status && f.reason.empty());
                } else {
                    FUZZ_CHECK(f.payload.size() >= 2 && swirl::close_code::is_valid(f.code));
                    FUZZ_CHECK(f.payload == swirl::close_payload(f.code, f.reason));
                    FUZZ_CHECK(swirl::is_valid_utf8(f.reason));
                }
                e.code = f.code;
                e.reason = f.reason;
                stopped = true;
                break;
            default: FUZZ_CHECK(false && "unexpected event");
            }
            out.push_back(std::move(e));
            if (stopped || off == chunk.size()) break;
        }
        pos += off;
        if (stopped) {
            // Final states: an error repeats, a close swallows everything, both consume all they are given.
            const auto rest = s.subspan(pos);
            for (int i = 0; i < 2; ++i) {
                const auto r = reader.read(rest);
                FUZZ_CHECK(r.consumed == rest.size());
                FUZZ_CHECK(r.event == (out.back().event == ReadEvent::error ? ReadEvent::error : ReadEvent::need_more));
            }
        }
    }
    if (!stopped) {
        // Everything was consumed: an empty read changes nothing.
        const auto r = reader.read({});
        FUZZ_CHECK(r.event == ReadEvent::need_more && r.consumed == 0);
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    ReaderLimits limits;
    limits.max_frame_size = limit_from(in.byte());
    limits.max_message_size = limit_from(in.byte());
    const std::uint64_t seed = in.byte();
    const auto stream = in.rest();

    // Bit 0 picks the role tried first; both roles always run, so every stream is checked as client and server.
    for (const Role role : (flags & 1) ? std::initializer_list<Role>{Role::client, Role::server}
                                       : std::initializer_list<Role>{Role::server, Role::client}) {
        const bool compression = (flags & 2) != 0;
        const auto expected = reference_events(role, limits, compression, stream);
        FUZZ_CHECK(reader_events(role, limits, compression, stream, Feeding::whole, seed) == expected);
        FUZZ_CHECK(reader_events(role, limits, compression, stream, Feeding::chunked, seed ^ flags) == expected);
        if (stream.size() <= 1024) FUZZ_CHECK(reader_events(role, limits, compression, stream, Feeding::bytewise, seed) == expected);
    }
    return 0;
}
