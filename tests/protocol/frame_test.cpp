#include "doctest.hpp"

#include <swirl/protocol/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr swirl::MaskKey rfc_key{0x37, 0xFA, 0x21, 0x3D};

Bytes encode(const swirl::FrameHeader& h) {
    std::uint8_t buf[swirl::max_frame_header_size];
    const std::size_t n = swirl::encode_frame_header(buf, h);
    return Bytes(buf, buf + n);
}

swirl::HeaderDecode decode(const Bytes& in, swirl::FrameHeader& h, std::size_t n) {
    return swirl::decode_frame_header(std::span<const std::uint8_t>(in.data(), n), h);
}

swirl::HeaderDecode decode(const Bytes& in, swirl::FrameHeader& h) { return decode(in, h, in.size()); }

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::string str(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s += static_cast<char>(b);
    return s;
}

std::string text_of(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

constexpr std::uint64_t lengths[] = {0, 1, 125, 126, 127, 65535, 65536, (std::uint64_t{1} << 32) + 5,
                                     (std::uint64_t{1} << 63) - 1};

std::size_t expected_header_size(std::uint64_t len, bool masked) {
    const std::size_t base = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    return base + (masked ? 4 : 0);
}

} // namespace

TEST_CASE("frame header round trips every length class with and without a mask") {
    for (std::uint64_t len : lengths) {
        for (bool masked : {false, true}) {
            CAPTURE(len);
            CAPTURE(masked);
            swirl::FrameHeader h;
            h.opcode = swirl::Opcode::binary;
            h.masked = masked;
            h.mask = {0x01, 0x02, 0x03, 0x04};
            h.payload_length = len;
            const Bytes wire = encode(h);
            CHECK(wire.size() == expected_header_size(len, masked));
            if (!masked) CHECK(swirl::unmasked_header_size(len) == wire.size());
            CHECK(((wire[1] & 0x80) != 0) == masked);
            const int len7 = wire[1] & 0x7F;
            CHECK(len7 == (len < 126 ? static_cast<int>(len) : len <= 0xFFFF ? 126 : 127));

            swirl::FrameHeader out;
            const auto r = decode(wire, out);
            CHECK(r.status == swirl::HeaderStatus::ok);
            CHECK(r.size == wire.size());
            CHECK(out.payload_length == len);
            CHECK(out.masked == masked);
            CHECK(out.opcode == swirl::Opcode::binary);
            CHECK(out.fin);
            CHECK(out.rsv == 0);
            if (masked) CHECK(out.mask == h.mask);
        }
    }
}

TEST_CASE("frame header encodes extended lengths big-endian") {
    swirl::FrameHeader h;
    h.opcode = swirl::Opcode::binary;
    h.payload_length = (std::uint64_t{1} << 32) + 5;
    CHECK(encode(h) == Bytes{0x82, 0x7F, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05});
    h.payload_length = 65535;
    CHECK(encode(h) == Bytes{0x82, 0x7E, 0xFF, 0xFF});
    h.payload_length = 125;
    CHECK(encode(h) == Bytes{0x82, 0x7D});
    h.payload_length = 126;
    h.masked = true;
    h.mask = rfc_key;
    CHECK(encode(h) == Bytes{0x82, 0xFE, 0x00, 0x7E, 0x37, 0xFA, 0x21, 0x3D});
}

TEST_CASE("frame header keeps fin, RSV bits and the opcode") {
    for (bool fin : {false, true}) {
        for (std::uint8_t rsv = 0; rsv < 8; ++rsv) {
            for (std::uint8_t op = 0; op < 16; ++op) {
                CAPTURE(fin);
                CAPTURE(int(rsv));
                CAPTURE(int(op));
                swirl::FrameHeader h;
                h.fin = fin;
                h.rsv = static_cast<std::uint8_t>(rsv << 4);
                h.opcode = static_cast<swirl::Opcode>(op);
                h.payload_length = 3;
                const Bytes wire = encode(h);
                REQUIRE(wire.size() == 2);
                CHECK(wire[0] == ((fin ? 0x80 : 0) | (rsv << 4) | op));
                swirl::FrameHeader out;
                CHECK(decode(wire, out).status == swirl::HeaderStatus::ok);
                CHECK(out.fin == fin);
                CHECK(out.rsv == (rsv << 4));
                CHECK(static_cast<int>(out.opcode) == op);
            }
        }
    }
    // The RSV constants are the three bits below FIN.
    CHECK((swirl::rsv::rsv1 | swirl::rsv::rsv2 | swirl::rsv::rsv3) == 0x70);
}

TEST_CASE("frame header encoding drops bits outside the RSV field") {
    swirl::FrameHeader h;
    h.fin = false;
    h.rsv = 0xFF;
    h.opcode = swirl::Opcode::text;
    CHECK(encode(h)[0] == 0x71);
}

TEST_CASE("opcode classification follows RFC 6455") {
    CHECK_FALSE(swirl::is_control(swirl::Opcode::continuation));
    CHECK_FALSE(swirl::is_control(swirl::Opcode::text));
    CHECK_FALSE(swirl::is_control(swirl::Opcode::binary));
    CHECK(swirl::is_control(swirl::Opcode::close));
    CHECK(swirl::is_control(swirl::Opcode::ping));
    CHECK(swirl::is_control(swirl::Opcode::pong));
    for (int op = 0; op < 16; ++op) {
        CAPTURE(op);
        const bool known = op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
        CHECK(swirl::is_known_opcode(static_cast<std::uint8_t>(op)) == known);
    }
    swirl::Frame f;
    f.opcode = swirl::Opcode::binary;
    CHECK(f.is_binary());
    CHECK_FALSE(f.is_text());
    CHECK_FALSE(f.is_control());
    f.opcode = swirl::Opcode::ping;
    CHECK(f.is_control());
}

TEST_CASE("pack produces the RFC 6455 section 5.7 example bytes") {
    // A single-frame unmasked text message.
    CHECK(swirl::pack("Hello") == str({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    // A single-frame masked text message.
    CHECK(swirl::pack("Hello", swirl::Opcode::text, true, rfc_key) ==
          str({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    // A fragmented unmasked text message.
    CHECK(swirl::pack("Hel", swirl::Opcode::text, false) == str({0x01, 0x03, 0x48, 0x65, 0x6c}));
    CHECK(swirl::pack("lo", swirl::Opcode::continuation, true) == str({0x80, 0x02, 0x6c, 0x6f}));
    // Unmasked ping and masked pong.
    CHECK(swirl::pack("Hello", swirl::Opcode::ping) == str({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    CHECK(swirl::pack("Hello", swirl::Opcode::pong, true, rfc_key) ==
          str({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    // 256 bytes of binary data in a single unmasked frame.
    const std::string b256 = swirl::pack(std::string(256, '\x5A'), swirl::Opcode::binary);
    CHECK(b256.size() == 4 + 256);
    CHECK(b256.substr(0, 4) == str({0x82, 0x7E, 0x01, 0x00}));
    CHECK(b256.substr(4) == std::string(256, '\x5A'));
    // 64 KiB of binary data in a single unmasked frame.
    const std::string b64k = swirl::pack(std::string(65536, '\x01'), swirl::Opcode::binary);
    CHECK(b64k.size() == 10 + 65536);
    CHECK(b64k.substr(0, 10) == str({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    CHECK(b64k.substr(10) == std::string(65536, '\x01'));
}

TEST_CASE("frame header decoding reports incomplete input with the needed size at every truncation point") {
    for (std::uint64_t len : lengths) {
        for (bool masked : {false, true}) {
            swirl::FrameHeader h;
            h.masked = masked;
            h.mask = rfc_key;
            h.payload_length = len;
            const Bytes wire = encode(h);
            for (std::size_t cut = 0; cut < wire.size(); ++cut) {
                CAPTURE(len);
                CAPTURE(masked);
                CAPTURE(cut);
                swirl::FrameHeader out;
                const auto r = decode(wire, out, cut);
                CHECK(r.status == swirl::HeaderStatus::incomplete);
                CHECK(r.size == (cut < 2 ? 2 : wire.size()));
                CHECK(r.size > cut);
            }
            swirl::FrameHeader out;
            CHECK(decode(wire, out).status == swirl::HeaderStatus::ok);
        }
    }
}

TEST_CASE("frame header decoding uses only the header bytes when payload follows") {
    const std::string wire = swirl::pack("Hello", swirl::Opcode::text, true, rfc_key);
    swirl::FrameHeader h;
    const auto r = decode(to_bytes(wire), h);
    CHECK(r.status == swirl::HeaderStatus::ok);
    CHECK(r.size == 6);
    CHECK(h.payload_length == 5);
    CHECK(h.mask == rfc_key);
}

TEST_CASE("frame header decoding rejects non-minimal and oversized lengths") {
    swirl::FrameHeader h;
    // 16-bit length field carrying a value that fits in 7 bits.
    CHECK(decode(Bytes{0x82, 0x7E, 0x00, 0x7D}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7E, 0x00, 0x00}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7E, 0x00, 0x7E}, h).status == swirl::HeaderStatus::ok);
    CHECK(h.payload_length == 126);
    // 64-bit length field carrying a value that fits in 16 bits.
    CHECK(decode(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, h).status == swirl::HeaderStatus::ok);
    CHECK(h.payload_length == 65536);
    // 64-bit length with the most significant bit set.
    CHECK(decode(Bytes{0x82, 0x7F, 0x80, 0, 0, 0, 0, 1, 0, 0}, h).status == swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, h).status ==
          swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, h).status ==
          swirl::HeaderStatus::bad_length);
    CHECK(decode(Bytes{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, h).status ==
          swirl::HeaderStatus::ok);
    CHECK(h.payload_length == 0x7FFFFFFFFFFFFFFFull);
}

TEST_CASE("pack and unpack round trip masked and unmasked frames") {
    for (std::size_t n : {0u, 1u, 5u, 125u, 126u, 127u, 65535u, 65536u, 70001u}) {
        for (auto op : {swirl::Opcode::text, swirl::Opcode::binary, swirl::Opcode::continuation}) {
            for (bool fin : {true, false}) {
                for (bool masked : {false, true}) {
                    CAPTURE(n);
                    CAPTURE(static_cast<int>(op));
                    CAPTURE(fin);
                    CAPTURE(masked);
                    const std::string payload = text_of(n);
                    const auto key = masked ? std::optional<swirl::MaskKey>(rfc_key) : std::nullopt;
                    const std::string wire = swirl::pack(payload, op, fin, key);
                    CHECK(wire.size() == expected_header_size(n, masked) + n);
                    if (masked && n > 0) CHECK(wire.substr(wire.size() - n) != payload);
                    if (!masked) CHECK(wire.substr(wire.size() - n) == payload);

                    const auto f = swirl::unpack(wire);
                    REQUIRE(f.has_value());
                    CHECK(f->opcode == op);
                    CHECK(f->fin == fin);
                    CHECK(f->rsv == 0);
                    CHECK(f->payload == payload);
                    CHECK(f->code == 0);
                    CHECK(f->reason.empty());
                }
            }
        }
    }
    // Control frames too.
    for (auto op : {swirl::Opcode::ping, swirl::Opcode::pong}) {
        const auto f = swirl::unpack(swirl::pack("are you there?", op, true, rfc_key));
        REQUIRE(f.has_value());
        CHECK(f->opcode == op);
        CHECK(f->payload == "are you there?");
    }
}

TEST_CASE("unpack reports RSV bits from the wire") {
    const auto f = swirl::unpack(str({0xC1, 0x02, 'h', 'i'}));  // FIN + RSV1, text
    REQUIRE(f.has_value());
    CHECK(f->rsv == swirl::rsv::rsv1);
    CHECK(f->fin);
    CHECK(f->payload == "hi");
}

TEST_CASE("unpack with consumed accepts trailing bytes and reports the frame length") {
    for (bool masked : {false, true}) {
        CAPTURE(masked);
        const auto key = masked ? std::optional<swirl::MaskKey>(rfc_key) : std::nullopt;
        const std::string first = swirl::pack("first", swirl::Opcode::text, true, key);
        const std::string second = swirl::pack(std::string(300, 'z'), swirl::Opcode::binary, true, key);
        const std::string stream = first + second + "\x81";  // and the start of a third

        std::size_t consumed = 0;
        const auto a = swirl::unpack(stream, &consumed);
        REQUIRE(a.has_value());
        CHECK(a->payload == "first");
        CHECK(consumed == first.size());

        std::size_t consumed2 = 0;
        const auto b = swirl::unpack(std::string_view(stream).substr(consumed), &consumed2);
        REQUIRE(b.has_value());
        CHECK(b->opcode == swirl::Opcode::binary);
        CHECK(b->payload == std::string(300, 'z'));
        CHECK(consumed2 == second.size());

        std::size_t consumed3 = 0;
        CHECK_FALSE(swirl::unpack(std::string_view(stream).substr(consumed + consumed2), &consumed3).has_value());
    }
}

TEST_CASE("unpack without consumed rejects trailing bytes") {
    const std::string wire = swirl::pack("Hello");
    CHECK(swirl::unpack(wire).has_value());
    CHECK_FALSE(swirl::unpack(wire + "x").has_value());
    CHECK_FALSE(swirl::unpack(wire + wire).has_value());
    CHECK_FALSE(swirl::unpack(swirl::pack("Hello", swirl::Opcode::text, true, rfc_key) + '\0').has_value());
}

TEST_CASE("unpack rejects truncated frames at every length") {
    for (bool masked : {false, true}) {
        const auto key = masked ? std::optional<swirl::MaskKey>(rfc_key) : std::nullopt;
        for (std::size_t n : {0u, 5u, 200u}) {
            const std::string wire = swirl::pack(text_of(n), swirl::Opcode::binary, true, key);
            for (std::size_t cut = 0; cut < wire.size(); ++cut) {
                CAPTURE(masked);
                CAPTURE(n);
                CAPTURE(cut);
                const std::string_view part = std::string_view(wire).substr(0, cut);
                CHECK_FALSE(swirl::unpack(part).has_value());
                std::size_t consumed = 0;
                CHECK_FALSE(swirl::unpack(part, &consumed).has_value());
            }
        }
    }
}

TEST_CASE("unpack rejects frames with a non-minimal length") {
    std::string wire = str({0x82, 0x7E, 0x00, 0x05}) + "Hello";
    CHECK_FALSE(swirl::unpack(wire).has_value());
    std::size_t consumed = 0;
    CHECK_FALSE(swirl::unpack(wire, &consumed).has_value());
}

TEST_CASE("unpack of a close frame fills in the code and reason") {
    for (bool masked : {false, true}) {
        CAPTURE(masked);
        const auto key = masked ? std::optional<swirl::MaskKey>(rfc_key) : std::nullopt;
        const auto f = swirl::unpack(swirl::pack(swirl::close_payload(1001, "going away"), swirl::Opcode::close, true, key));
        REQUIRE(f.has_value());
        CHECK(f->opcode == swirl::Opcode::close);
        CHECK(f->is_control());
        CHECK(f->code == 1001);
        CHECK(f->reason == "going away");
        CHECK(f->payload == str({0x03, 0xE9}) + "going away");

        const auto g = swirl::unpack(swirl::pack(swirl::close_payload(4999, ""), swirl::Opcode::close, true, key));
        REQUIRE(g.has_value());
        CHECK(g->code == 4999);
        CHECK(g->reason.empty());
    }
    // Code bytes with the high bit set are not sign-extended.
    const auto h = swirl::unpack(str({0x88, 0x02, 0xFF, 0xFF}));
    REQUIRE(h.has_value());
    CHECK(h->code == 0xFFFF);
}

TEST_CASE("unpack of an empty close frame reports code 1005") {
    const auto f = swirl::unpack(str({0x88, 0x00}));
    REQUIRE(f.has_value());
    CHECK(f->opcode == swirl::Opcode::close);
    CHECK(f->code == swirl::close_code::no_status);
    CHECK(f->code == 1005);
    CHECK(f->reason.empty());
    CHECK(f->payload.empty());

    const auto m = swirl::unpack(swirl::pack("", swirl::Opcode::close, true, rfc_key));
    REQUIRE(m.has_value());
    CHECK(m->code == 1005);
}

TEST_CASE("close_payload puts the code big-endian before the reason") {
    CHECK(swirl::close_payload(1000, "") == str({0x03, 0xE8}));
    CHECK(swirl::close_payload(1000, "bye") == str({0x03, 0xE8, 'b', 'y', 'e'}));
    CHECK(swirl::close_payload(4999, "r") == str({0x13, 0x87, 'r'}));
    CHECK(swirl::close_payload(0xFFFF, "") == str({0xFF, 0xFF}));
    CHECK(swirl::close_payload(swirl::close_code::no_status, "") == "");
    CHECK(swirl::close_payload(swirl::close_code::no_status, "ignored") == "");
    // A reason with embedded NUL and UTF-8 survives untouched.
    const std::string reason = std::string("a\0b", 3) + "\xC3\xA9";
    CHECK(swirl::close_payload(1011, reason) == str({0x03, 0xF3}) + reason);
}

TEST_CASE("encode_unmasked_header matches encode_frame_header for server frames") {
    for (const std::uint64_t length : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 40}) {
        for (const bool fin : {true, false}) {
            swirl::FrameHeader h;
            h.fin = fin;
            h.opcode = swirl::Opcode::binary;
            h.payload_length = length;
            std::uint8_t expected[swirl::max_frame_header_size];
            std::uint8_t got[swirl::max_frame_header_size];
            const std::size_t n = swirl::encode_frame_header(expected, h);
            REQUIRE(swirl::encode_unmasked_header(got, swirl::Opcode::binary, fin, length) == n);
            CHECK(std::equal(expected, expected + n, got));
        }
    }
}
