#pragma once
/// WebSocket frames (RFC 6455 §5.2): opcodes, the wire header, the `Frame` value and Swoole-style pack/unpack.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace swirl {

enum class Opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

constexpr bool is_control(Opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }
constexpr bool is_known_opcode(std::uint8_t op) noexcept { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

/// RSV bits as they sit in the first header byte.
namespace rsv {
inline constexpr std::uint8_t rsv1 = 0x40;
inline constexpr std::uint8_t rsv2 = 0x20;
inline constexpr std::uint8_t rsv3 = 0x10;
} // namespace rsv

/// The decoded fixed part of a frame: everything but the payload.
struct FrameHeader {
    bool fin = true;
    std::uint8_t rsv = 0;  ///< RSV bits in place (see `swirl::rsv`)
    Opcode opcode = Opcode::text;
    bool masked = false;
    MaskKey mask{};
    std::uint64_t payload_length = 0;
};

/// Largest possible header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
inline constexpr std::size_t max_frame_header_size = 14;

enum class HeaderStatus {
    ok,          ///< header decoded; `size` bytes used
    incomplete,  ///< need at least `size` bytes
    bad_length,  ///< 64-bit length with the top bit set, or a length not in its shortest form
};

struct HeaderDecode {
    HeaderStatus status;
    std::size_t size;
};

namespace detail {
/// How many extended payload length bytes follow a header's second byte whose low seven bits are `len7`.
constexpr std::size_t extended_length_size(std::uint8_t len7) noexcept { return len7 == 126 ? 2 : len7 == 127 ? 8 : 0; }

/// The payload length from `len7` and the `extended_length_size(len7)` bytes at `ext`; false when it is not in its
/// shortest form or has the top bit set (RFC 6455 §5.2).
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 at -O3 warns that `ext[0]` and `ext[1]` lie past a caller's 2-byte input where it has inlined that caller
// and not followed its length check (`in.size() < size` returns first): a false positive, silenced here rather than
// in every caller.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
inline bool decode_payload_length(std::uint8_t len7, const std::uint8_t* ext, std::uint64_t& length) noexcept {
    length = len7;
    if (len7 == 126) {
        length = static_cast<std::uint64_t>(ext[0]) << 8 | ext[1];
        return length >= 126;
    }
    if (len7 == 127) {
        length = 0;
        for (std::size_t i = 0; i < 8; ++i) length = length << 8 | ext[i];
        return length > 0xFFFF && (length >> 63) == 0;
    }
    return true;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
} // namespace detail

/// Decodes a frame header from the start of `in`. Opcode and RSV semantics are left to the caller.
inline HeaderDecode decode_frame_header(std::span<const std::uint8_t> in, FrameHeader& h) noexcept {
    if (in.size() < 2) return {HeaderStatus::incomplete, 2};
    const std::uint8_t b0 = in[0], b1 = in[1];
    const std::uint8_t len7 = b1 & 0x7F;
    const std::size_t ext = detail::extended_length_size(len7);
    const bool masked = (b1 & 0x80) != 0;
    const std::size_t size = 2 + ext + (masked ? 4 : 0);
    if (in.size() < size) return {HeaderStatus::incomplete, size};

    h.fin = (b0 & 0x80) != 0;
    h.rsv = b0 & 0x70;
    h.opcode = static_cast<Opcode>(b0 & 0x0F);
    h.masked = masked;
    if (!detail::decode_payload_length(len7, in.data() + 2, h.payload_length)) return {HeaderStatus::bad_length, size};
    if (masked) std::memcpy(h.mask.data(), in.data() + 2 + ext, 4);
    return {HeaderStatus::ok, size};
}

/// The length of an unmasked frame header for a payload of `payload_length` bytes.
constexpr std::size_t unmasked_header_size(std::uint64_t payload_length) noexcept {
    return payload_length < 126 ? 2 : payload_length <= 0xFFFF ? 4 : 10;
}

/// Encodes `h` into `out` (at least `max_frame_header_size` bytes); returns the header length.
inline std::size_t encode_frame_header(std::uint8_t* out, const FrameHeader& h) noexcept {
    out[0] = static_cast<std::uint8_t>((h.fin ? 0x80 : 0) | (h.rsv & 0x70) | (static_cast<std::uint8_t>(h.opcode) & 0x0F));
    const std::uint8_t mask_bit = h.masked ? 0x80 : 0;
    std::size_t n;
    if (h.payload_length < 126) {
        out[1] = static_cast<std::uint8_t>(mask_bit | h.payload_length);
        n = 2;
    } else if (h.payload_length <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = static_cast<std::uint8_t>(h.payload_length >> 8);
        out[3] = static_cast<std::uint8_t>(h.payload_length);
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (std::size_t i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(h.payload_length >> (56 - 8 * i));
        n = 10;
    }
    if (h.masked)
        for (std::size_t i = 0; i < 4; ++i) out[n++] = h.mask[i];
    return n;
}

/// Encodes the header of an unmasked (server-to-client) frame; `out` holds at least `max_frame_header_size` bytes.
/// `rsv_bits`: RSV bits in place (`rsv::rsv1` on the first frame of a compressed message).
inline std::size_t encode_unmasked_header(std::uint8_t* out, Opcode opcode, bool fin, std::uint64_t payload_length,
                                          std::uint8_t rsv_bits = 0) noexcept {
    FrameHeader h;
    h.fin = fin;
    h.rsv = rsv_bits;
    h.opcode = opcode;
    h.payload_length = payload_length;
    return encode_frame_header(out, h);
}

/// A WebSocket message or control frame as handed to the application.
struct Frame {
    Opcode opcode = Opcode::text;
    std::string payload;
    bool fin = true;
    std::uint8_t rsv = 0;
    /// Close frames only: the status code (`close_code::no_status` when the frame had none) and reason.
    std::uint16_t code = 0;
    std::string reason;

    bool is_text() const noexcept { return opcode == Opcode::text; }
    bool is_binary() const noexcept { return opcode == Opcode::binary; }
    bool is_control() const noexcept { return swirl::is_control(opcode); }
};

/// The payload of a close frame: status code then reason. `code == no_status` gives an empty payload.
inline std::string close_payload(std::uint16_t code, std::string_view reason) {
    if (code == close_code::no_status) return {};
    std::string p;
    p.reserve(2 + reason.size());
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xFF);
    p += reason;
    return p;
}

/// Serialises one frame, as Swoole's `WebSocket\Server::pack`. Server frames are unmasked; pass a key to mask
/// (clients must). `rsv_bits`: RSV bits in place (`rsv::rsv1` for a compressed message's first frame).
inline std::string pack(std::string_view data, Opcode opcode = Opcode::text, bool fin = true,
                        std::optional<MaskKey> mask = std::nullopt, std::uint8_t rsv_bits = 0) {
    FrameHeader h;
    h.fin = fin;
    h.rsv = rsv_bits;
    h.opcode = opcode;
    h.payload_length = data.size();
    h.masked = mask.has_value();
    if (mask) h.mask = *mask;
    std::uint8_t header[max_frame_header_size];
    const std::size_t n = encode_frame_header(header, h);
    std::string out;
    out.resize(n + data.size());
    std::memcpy(out.data(), header, n);
    if (mask) mask_copy(out.data() + n, data.data(), data.size(), *mask);
    else if (!data.empty()) std::memcpy(out.data() + n, data.data(), data.size());
    return out;
}

/// Parses one complete frame (masked or not) from the start of `bytes`, as Swoole's `unpack`.
/// With `consumed`, trailing bytes are allowed and the frame length is stored there;
/// without it, `bytes` must hold exactly one frame. Close frames get `code` and `reason` filled in.
inline std::optional<Frame> unpack(std::string_view bytes, std::size_t* consumed = nullptr) {
    const std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    FrameHeader h;
    const auto head = decode_frame_header(in, h);
    if (head.status != HeaderStatus::ok) return std::nullopt;
    if (h.payload_length > in.size() - head.size) return std::nullopt;
    const std::size_t total = head.size + static_cast<std::size_t>(h.payload_length);
    if (consumed) *consumed = total;
    else if (total != in.size()) return std::nullopt;

    Frame f;
    f.opcode = h.opcode;
    f.fin = h.fin;
    f.rsv = h.rsv;
    f.payload.assign(bytes.substr(head.size, static_cast<std::size_t>(h.payload_length)));
    if (h.masked) apply_mask(f.payload.data(), f.payload.size(), h.mask);
    if (f.opcode == Opcode::close) {
        if (f.payload.size() >= 2) {
            f.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(f.payload[0]) << 8) |
                                                static_cast<std::uint8_t>(f.payload[1]));
            f.reason = f.payload.substr(2);
        } else {
            f.code = close_code::no_status;
        }
    }
    return f;
}

} // namespace swirl
