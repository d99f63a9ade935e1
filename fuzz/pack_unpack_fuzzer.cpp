/// libFuzzer target: swirl::pack / unpack, the frame header codec and chunked masking.
///
/// Input layout: [flags][mask key ×4][split seed] then the data.
///  - pack(data, opcode, fin, mask?) then unpack gives the same frame back, with or without trailing bytes;
///    any shorter prefix is refused.
///  - encode_frame_header / decode_frame_header round-trip any header, and report truncation correctly.
///  - unpack on the raw input never crashes, and any frame it returns re-packs to exactly the bytes it used
///    (lengths must be minimal, so there is only one encoding).
///  - mask_copy over input-derived pieces equals a plain XOR with the key.

#include "fuzz_support.hpp"

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace {

using swirl::Opcode;

/// The close code and reason unpack must report for a close payload.
void check_close_fields(const swirl::Frame& f) {
    if (f.opcode != Opcode::close) return;
    if (f.payload.size() < 2) {
        FUZZ_CHECK(f.code == swirl::close_code::no_status && f.reason.empty());
    } else {
        FUZZ_CHECK(f.code == (static_cast<std::uint8_t>(f.payload[0]) << 8 | static_cast<std::uint8_t>(f.payload[1])));
        FUZZ_CHECK(f.reason == std::string_view(f.payload).substr(2));
    }
}

/// `thorough` adds the trailing-bytes and truncation checks (skipped for 64 KiB payloads, where they only cost time).
void check_pack_round_trip(std::string_view data, Opcode op, bool fin, std::optional<swirl::MaskKey> key, bool thorough) {
    const std::string wire = swirl::pack(data, op, fin, key);
    const std::size_t header = 2 + (data.size() < 126 ? 0 : data.size() <= 0xFFFF ? 2 : 8) + (key ? 4 : 0);
    FUZZ_CHECK(wire.size() == header + data.size());

    const auto f = swirl::unpack(wire);
    FUZZ_CHECK(f.has_value());
    FUZZ_CHECK(f->opcode == op && f->fin == fin && f->rsv == 0 && f->payload == data);
    check_close_fields(*f);
    // Unmasked frames carry the data as is; masked ones do not (unless the key is all zero).
    if (!key) FUZZ_CHECK(std::string_view(wire).substr(header) == data);
    if (!thorough) return;

    // With trailing bytes: refused without `consumed`, accepted with it.
    const std::string longer = wire + std::string("\x81\x00", 2);
    FUZZ_CHECK(!swirl::unpack(longer).has_value());
    std::size_t consumed = 0;
    const auto g = swirl::unpack(longer, &consumed);
    FUZZ_CHECK(g.has_value() && consumed == wire.size() && g->payload == data);

    // Cut short anywhere (checking a few cut points keeps big frames cheap): refused.
    for (const std::size_t cut : {std::size_t{0}, std::size_t{1}, header - 1, header, wire.size() - 1}) {
        if (cut >= wire.size()) continue;
        std::size_t c = 12345;
        FUZZ_CHECK(!swirl::unpack(std::string_view(wire).substr(0, cut), &c).has_value());
        FUZZ_CHECK(c == 12345);  // nothing is reported for a refused frame
    }
}

void check_header_codec(std::uint8_t flags, const swirl::MaskKey& key, std::span<const std::uint8_t> data) {
    swirl::FrameHeader h;
    h.fin = (flags & 0x10) != 0;
    h.rsv = static_cast<std::uint8_t>((flags << 4) & 0x70);
    h.opcode = static_cast<Opcode>(flags & 0x0F);
    h.masked = (flags & 0x20) != 0;
    h.mask = key;
    std::uint64_t len = 0;
    for (std::size_t i = 0; i < 8 && i < data.size(); ++i) len = len << 8 | data[i];
    // Spread lengths over the three encodings, keeping the top bit clear as RFC 6455 requires.
    switch ((flags >> 6) & 3) {
    case 0: len %= 126; break;
    case 1: len %= 0x10000; break;
    case 2: len &= 0x7FFFFFFFFFFFFFFFull; break;
    default: len = 125 + len % 3 + (len & 1 ? 0xFFFF - 125 : 0); break;  // edges: 125..127, 0xFFFF..0x10001
    }
    h.payload_length = len;

    std::uint8_t buf[swirl::max_frame_header_size];
    const std::size_t n = swirl::encode_frame_header(buf, h);
    FUZZ_CHECK(n >= 2 && n <= swirl::max_frame_header_size);
    swirl::FrameHeader back;
    const auto d = swirl::decode_frame_header(std::span<const std::uint8_t>(buf, n), back);
    FUZZ_CHECK(d.status == swirl::HeaderStatus::ok && d.size == n);
    FUZZ_CHECK(back.fin == h.fin && back.rsv == h.rsv && back.opcode == h.opcode && back.masked == h.masked &&
               back.payload_length == h.payload_length);
    if (h.masked) FUZZ_CHECK(back.mask == h.mask);
    for (std::size_t cut = 0; cut < n; ++cut) {
        swirl::FrameHeader partial;
        const auto p = swirl::decode_frame_header(std::span<const std::uint8_t>(buf, cut), partial);
        FUZZ_CHECK(p.status == swirl::HeaderStatus::incomplete && p.size > cut && p.size <= n);
    }
}

/// unpack on arbitrary bytes; whatever it accepts must be the one canonical encoding of what it returned.
void check_unpack_raw(std::string_view bytes) {
    std::size_t consumed = 0;
    const auto f = swirl::unpack(bytes, &consumed);
    const auto exact = swirl::unpack(bytes);
    if (!f) {
        FUZZ_CHECK(!exact.has_value());
        return;
    }
    FUZZ_CHECK(consumed >= 2 && consumed <= bytes.size());
    FUZZ_CHECK(exact.has_value() == (consumed == bytes.size()));
    check_close_fields(*f);

    swirl::FrameHeader h;
    const auto span = std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    FUZZ_CHECK(swirl::decode_frame_header(span, h).status == swirl::HeaderStatus::ok);
    FUZZ_CHECK(h.opcode == f->opcode && h.fin == f->fin && h.rsv == f->rsv && h.payload_length == f->payload.size());
    std::string again = swirl::pack(f->payload, f->opcode, f->fin, h.masked ? std::optional(h.mask) : std::nullopt);
    again[0] = static_cast<char>(static_cast<std::uint8_t>(again[0]) | f->rsv);  // pack has no RSV parameter
    FUZZ_CHECK(again == bytes.substr(0, consumed));
}

/// mask_copy resumed across arbitrary pieces, in place or not, equals XOR with key[i % 4].
void check_mask(std::string_view data, const swirl::MaskKey& key, fuzz::Chunker& chunker) {
    std::string expected(data);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<char>(expected[i] ^ key[i % 4]);

    std::string out(data.size(), '\0');
    std::string in_place(data);
    std::size_t phase = 0, phase2 = 0, pos = 0;
    while (pos < data.size()) {
        const std::size_t n = chunker.size(data.size() - pos);
        phase = swirl::mask_copy(out.data() + pos, data.data() + pos, n, key, phase);
        phase2 = swirl::apply_mask(in_place.data() + pos, n, key, phase2);
        pos += n;
        FUZZ_CHECK(phase == pos % 4 && phase2 == phase);
    }
    FUZZ_CHECK(out == expected && in_place == expected);
    swirl::apply_mask(in_place.data(), in_place.size(), key);
    FUZZ_CHECK(in_place == data);  // masking twice restores the data
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_unpack_raw(std::string_view(reinterpret_cast<const char*>(data), size));

    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    swirl::MaskKey key{};
    for (auto& k : key) k = in.byte();
    fuzz::Chunker chunker(in.byte());
    const std::string_view payload = in.rest_chars();

    // Any 4-bit opcode: pack does not judge opcodes, unpack must still return them unchanged.
    const auto op = static_cast<Opcode>(flags & 0x0F);
    const bool fin = (flags & 0x10) != 0;
    const auto mask = (flags & 0x20) ? std::optional(key) : std::nullopt;
    check_pack_round_trip(payload, op, fin, mask, true);
    if ((flags & 0xC0) == 0xC0 && !payload.empty()) {
        // Repeat the data past 64 KiB to exercise the 64-bit length form.
        std::string big(payload);
        while (big.size() <= 0xFFFF) big += big;  // doubling: few instrumented iterations
        check_pack_round_trip(big, op, fin, mask, false);
    }

    check_header_codec(flags, key, in.rest());
    check_mask(payload, key, chunker);
    check_unpack_raw(payload);
    return 0;
}
