#include "doctest.hpp"

#include <swirl/protocol/message_reader.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using swirl::MessageReader;
using swirl::Opcode;
using swirl::ReadEvent;
using swirl::ReaderLimits;
using swirl::Role;

namespace {

constexpr swirl::MaskKey test_key{0x37, 0xFA, 0x21, 0x3D};

/// A masked client frame.
std::string cf(std::string_view data, Opcode op = Opcode::text, bool fin = true) {
    return swirl::pack(data, op, fin, test_key);
}

/// An unmasked server frame.
std::string sf(std::string_view data, Opcode op = Opcode::text, bool fin = true) { return swirl::pack(data, op, fin); }

std::string close_frame(std::uint16_t code, std::string_view reason = {}) {
    std::string p;
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xFF);
    p += reason;
    return cf(p, Opcode::close);
}

std::string text_of(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

std::string binary_of(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + 7) & 0xFF);
    return s;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Event {
    ReadEvent event{};
    Opcode opcode{};
    std::string payload;
    std::uint16_t code = 0;
    std::string reason;
    std::uint8_t rsv = 0;
    bool operator==(const Event&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Event& e) {
    os << "{event=" << static_cast<int>(e.event) << " opcode=" << static_cast<int>(e.opcode)
       << " payload_size=" << e.payload.size() << " code=" << e.code << " reason=\"" << e.reason << "\" rsv="
       << static_cast<int>(e.rsv) << "}";
    return os;
}

std::ostream& operator<<(std::ostream& os, const std::vector<Event>& v) {
    os << "[";
    for (const auto& e : v) os << e << " ";
    return os << "]";
}

enum class Chunking { whole, bytewise, random };

const char* name(Chunking c) {
    switch (c) {
    case Chunking::whole: return "whole";
    case Chunking::bytewise: return "bytewise";
    case Chunking::random: return "random";
    }
    return "?";
}

/// Feeds `chunk` to `reader` until consumed, appending events; returns false once an error was reported.
bool feed_chunk(MessageReader& reader, std::string_view chunk, std::vector<Event>& out) {
    while (!chunk.empty()) {
        const auto r = reader.read(bytes_of(chunk));
        REQUIRE(r.consumed <= chunk.size());
        if (r.event == ReadEvent::need_more) {
            CHECK(r.consumed == chunk.size());  // need_more always means "all input used"
            if (r.consumed == 0) return true;   // guard against a stuck reader
        } else {
            Event e;
            e.event = r.event;
            if (r.event == ReadEvent::error) {
                e.code = reader.error_code();
                e.reason = std::string(reader.error_reason());
                CHECK_FALSE(e.reason.empty());
                out.push_back(std::move(e));
                return false;
            }
            // The frame is only valid until the next read(): copy it out.
            const auto& f = reader.frame();
            e.opcode = f.opcode;
            e.payload = f.payload;
            e.code = f.code;
            e.reason = f.reason;
            e.rsv = f.rsv;
            out.push_back(std::move(e));
        }
        chunk.remove_prefix(r.consumed);
    }
    return true;
}

std::vector<Event> run(std::string_view bytes, Chunking chunking, Role role = Role::server, ReaderLimits limits = {},
                       bool compression = false) {
    MessageReader reader(role, limits);
    reader.set_compression(compression);
    std::vector<Event> out;
    std::mt19937 rng(20240607u);
    std::uniform_int_distribution<std::size_t> size(1, 97);
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        std::size_t n = bytes.size() - pos;
        if (chunking == Chunking::bytewise) n = 1;
        else if (chunking == Chunking::random) n = std::min(n, size(rng));
        if (!feed_chunk(reader, bytes.substr(pos, n), out)) break;
        pos += n;
    }
    return out;
}

/// Runs `bytes` in all three chunkings, checks they agree, and returns the events.
std::vector<Event> read_all(std::string_view bytes, Role role = Role::server, ReaderLimits limits = {},
                            bool compression = false) {
    const auto whole = run(bytes, Chunking::whole, role, limits, compression);
    for (const auto c : {Chunking::bytewise, Chunking::random}) {
        INFO("chunking: ", name(c));
        CHECK(run(bytes, c, role, limits, compression) == whole);
    }
    return whole;
}

Event message(Opcode op, std::string payload) { return {ReadEvent::message, op, std::move(payload), 0, {}, 0}; }
/// A message delivered compressed (RSV1), as received.
Event compressed(Opcode op, std::string payload) {
    return {ReadEvent::message, op, std::move(payload), 0, {}, swirl::rsv::rsv1};
}
Event control(ReadEvent ev, Opcode op, std::string payload) { return {ev, op, std::move(payload), 0, {}, 0}; }

/// The single error event expected from `bytes`, with its code.
void check_error(std::string_view bytes, std::uint16_t code, Role role = Role::server, ReaderLimits limits = {},
                 bool compression = false) {
    const auto events = read_all(bytes, role, limits, compression);
    REQUIRE(!events.empty());
    CHECK(events.back().event == ReadEvent::error);
    CHECK(events.back().code == code);
    for (std::size_t i = 0; i + 1 < events.size(); ++i) CHECK(events[i].event != ReadEvent::error);
}

std::string with_first_byte_or(std::string frame, std::uint8_t bits) {
    frame[0] = static_cast<char>(static_cast<std::uint8_t>(frame[0]) | bits);
    return frame;
}

} // namespace

TEST_CASE("reader delivers text and binary messages of boundary sizes in every chunking") {
    for (const std::size_t n : {0u, 1u, 125u, 126u, 65535u, 65536u}) {
        INFO("size ", n);
        const auto text = text_of(n);
        const auto bin = binary_of(n);
        CHECK(read_all(cf(text)) == std::vector<Event>{message(Opcode::text, text)});
        CHECK(read_all(cf(bin, Opcode::binary)) == std::vector<Event>{message(Opcode::binary, bin)});
    }
}

TEST_CASE("reader delivers several messages from one stream in order") {
    const std::string stream = cf("one") + cf(binary_of(300), Opcode::binary) + cf("") + cf("three");
    CHECK(read_all(stream) == std::vector<Event>{message(Opcode::text, "one"), message(Opcode::binary, binary_of(300)),
                                                 message(Opcode::text, ""), message(Opcode::text, "three")});
}

TEST_CASE("reader as client accepts unmasked server frames") {
    const std::string stream = sf("hello") + sf(binary_of(70000), Opcode::binary) + sf("p", Opcode::ping);
    CHECK(read_all(stream, Role::client) ==
          std::vector<Event>{message(Opcode::text, "hello"), message(Opcode::binary, binary_of(70000)),
                             control(ReadEvent::ping, Opcode::ping, "p")});
}

TEST_CASE("reader reassembles a fragmented message with ping and pong between fragments") {
    const std::string stream = cf("Hello, ", Opcode::text, false) + cf("p1", Opcode::ping) +
                               cf("wor", Opcode::continuation, false) + cf("p2", Opcode::pong) +
                               cf("ld!", Opcode::continuation, true);
    CHECK(read_all(stream) == std::vector<Event>{control(ReadEvent::ping, Opcode::ping, "p1"),
                                                 control(ReadEvent::pong, Opcode::pong, "p2"),
                                                 message(Opcode::text, "Hello, world!")});

    const auto big = binary_of(200000);
    const std::string bin = cf(big.substr(0, 70000), Opcode::binary, false) + cf("", Opcode::ping) +
                            cf(big.substr(70000, 70000), Opcode::continuation, false) +
                            cf(big.substr(140000), Opcode::continuation, true);
    CHECK(read_all(bin) ==
          std::vector<Event>{control(ReadEvent::ping, Opcode::ping, ""), message(Opcode::binary, big)});
}

TEST_CASE("reader reports in_message while a fragmented message is incomplete") {
    MessageReader reader;
    const std::string first = cf("ab", Opcode::text, false);
    CHECK(reader.read(bytes_of(first)).event == ReadEvent::need_more);
    CHECK(reader.in_message());
    const std::string ping = cf("x", Opcode::ping);
    CHECK(reader.read(bytes_of(ping)).event == ReadEvent::ping);
    CHECK(reader.in_message());
    const std::string last = cf("", Opcode::continuation, true);
    CHECK(reader.read(bytes_of(last)).event == ReadEvent::message);
    CHECK_FALSE(reader.in_message());
    CHECK(reader.frame().payload == "ab");
}

TEST_CASE("reader is at rest only between frames with no message partly received") {
    MessageReader reader;
    CHECK(reader.at_rest());
    const std::string whole = cf("hello");
    CHECK(reader.read(bytes_of(whole).subspan(0, 1)).event == ReadEvent::need_more);  // half a header
    CHECK_FALSE(reader.at_rest());
    CHECK(reader.read(bytes_of(whole).subspan(1, 6)).event == ReadEvent::need_more);  // header, part of the payload
    CHECK_FALSE(reader.at_rest());
    CHECK(reader.read(bytes_of(whole).subspan(7)).event == ReadEvent::message);
    CHECK(reader.at_rest());
    const std::string first = cf("ab", Opcode::text, false);
    CHECK(reader.read(bytes_of(first)).event == ReadEvent::need_more);  // a fragment: the message goes on
    CHECK_FALSE(reader.at_rest());
    const std::string ping = cf("x", Opcode::ping);
    CHECK(reader.read(bytes_of(ping)).event == ReadEvent::ping);
    CHECK_FALSE(reader.at_rest());
    const std::string last = cf("cd", Opcode::continuation, true);
    CHECK(reader.read(bytes_of(last)).event == ReadEvent::message);
    CHECK(reader.at_rest());
    CHECK(reader.frame().payload == "abcd");
}

TEST_CASE("readers at rest are interchangeable: each reads the next frame from its start") {
    MessageReader a, b;
    const std::string one = cf("one"), two = cf("two", Opcode::binary);
    REQUIRE(a.read(bytes_of(one)).event == ReadEvent::message);
    REQUIRE(a.at_rest());
    REQUIRE(b.read(bytes_of(two)).event == ReadEvent::message);
    CHECK(b.frame().payload == "two");
    CHECK(b.frame().opcode == Opcode::binary);
    REQUIRE(a.read(bytes_of(two)).event == ReadEvent::message);  // a delivered "one" last: it starts afresh
    CHECK(a.frame().payload == "two");
}

TEST_CASE("reader reports a close frame without payload as code 1005") {
    const auto events = read_all(cf("", Opcode::close));
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == ReadEvent::close);
    CHECK(events[0].opcode == Opcode::close);
    CHECK(events[0].code == swirl::close_code::no_status);
    CHECK(events[0].reason.empty());
}

TEST_CASE("reader reports a close frame's code and reason") {
    const auto events = read_all(close_frame(1000, "bye \xE2\x82\xAC"));
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == ReadEvent::close);
    CHECK(events[0].code == 1000);
    CHECK(events[0].reason == "bye \xE2\x82\xAC");
}

TEST_CASE("reader ignores input after a close frame") {
    // In the stream: nothing after the close is reported, not even errors.
    const std::string stream = cf("before") + close_frame(1001, "away") + cf("after") + std::string("\xFF\xFF\xFF");
    const auto events = read_all(stream);
    REQUIRE(events.size() == 2);
    CHECK(events[0] == message(Opcode::text, "before"));
    CHECK(events[1].event == ReadEvent::close);
    CHECK(events[1].code == 1001);
    CHECK(events[1].reason == "away");

    MessageReader reader;
    const std::string close = close_frame(1000);
    CHECK(reader.read(bytes_of(close)).event == ReadEvent::close);
    const std::string more = cf("more");
    const auto r = reader.read(bytes_of(more));
    CHECK(r.event == ReadEvent::need_more);
    CHECK(r.consumed == more.size());
    CHECK(reader.frame().code == 1000);  // the close frame stays available
}

TEST_CASE("reader rejects an unmasked client frame with 1002") {
    check_error(sf("hi"), 1002, Role::server);
    check_error(sf("", Opcode::ping), 1002, Role::server);
}

TEST_CASE("reader rejects a masked server frame with 1002") {
    check_error(cf("hi"), 1002, Role::client);
    check_error(cf("", Opcode::close), 1002, Role::client);
}

TEST_CASE("reader rejects frames with RSV bits set with 1002") {
    for (const std::uint8_t bit : {swirl::rsv::rsv1, swirl::rsv::rsv2, swirl::rsv::rsv3}) {
        INFO("rsv bit ", static_cast<int>(bit));
        check_error(with_first_byte_or(cf("hello"), bit), 1002);
        check_error(with_first_byte_or(cf("", Opcode::ping), bit), 1002);
    }
}

TEST_CASE("with compression, RSV1 on a first data frame marks the message compressed and delivers it as received") {
    using swirl::rsv::rsv1;
    // Not UTF-8 (compressed bytes never are, in general): checked only after inflating, by the caller.
    const std::string raw("\xF2\x48\xCD\xC9\xC9\x07\x00", 7);
    CHECK(read_all(with_first_byte_or(cf(raw), rsv1), Role::server, {}, true) ==
          std::vector<Event>{compressed(Opcode::text, raw)});
    CHECK(read_all(with_first_byte_or(cf(raw, Opcode::binary), rsv1), Role::server, {}, true) ==
          std::vector<Event>{compressed(Opcode::binary, raw)});
    CHECK(read_all(with_first_byte_or(sf(raw), rsv1), Role::client, {}, true) ==
          std::vector<Event>{compressed(Opcode::text, raw)});
    // Fragmented: RSV1 on the first frame only, a ping between the fragments; then an uncompressed message, still
    // UTF-8 checked, and a compressed one again on the fast path.
    const std::string stream = with_first_byte_or(cf(raw.substr(0, 3), Opcode::text, false), rsv1) + cf("p", Opcode::ping) +
                               cf(raw.substr(3), Opcode::continuation, true) + cf("plain") +
                               with_first_byte_or(cf(raw), rsv1);
    CHECK(read_all(stream, Role::server, {}, true) ==
          std::vector<Event>{control(ReadEvent::ping, Opcode::ping, "p"), compressed(Opcode::text, raw),
                             message(Opcode::text, "plain"), compressed(Opcode::text, raw)});
    check_error(cf("\xFF") + with_first_byte_or(cf(raw), rsv1), 1007, Role::server, {}, true);
}

TEST_CASE("with compression, RSV1 on a continuation or control frame and RSV2/RSV3 anywhere are 1002") {
    using namespace swirl::rsv;
    check_error(cf("a", Opcode::text, false) + with_first_byte_or(cf("b", Opcode::continuation), rsv1), 1002, Role::server, {}, true);
    check_error(with_first_byte_or(cf("a", Opcode::text, false), rsv1) + with_first_byte_or(cf("b", Opcode::continuation), rsv1), 1002,
                Role::server, {}, true);
    for (const Opcode op : {Opcode::ping, Opcode::pong, Opcode::close})
        check_error(with_first_byte_or(cf("", op), rsv1), 1002, Role::server, {}, true);
    for (const std::uint8_t bit : {rsv2, rsv3, static_cast<std::uint8_t>(rsv1 | rsv2)}) {
        INFO("rsv bits ", static_cast<int>(bit));
        check_error(with_first_byte_or(cf("hello"), bit), 1002, Role::server, {}, true);
    }
    MessageReader reader;
    CHECK_FALSE(reader.compression());
    reader.set_compression(true);
    CHECK(reader.compression());
    const std::string bad = with_first_byte_or(cf("x", Opcode::ping), rsv1);
    CHECK(reader.read(bytes_of(bad)).event == ReadEvent::error);
    CHECK(reader.error_reason() == "RSV1 set on a control frame");
}

TEST_CASE("a compressed message may take compressed_wire_limit wire bytes; more is 1009") {
    using swirl::rsv::rsv1;
    CHECK(swirl::compressed_wire_limit(800) == 800 + 100 + 1024);
    CHECK(swirl::compressed_wire_limit(~std::uint64_t{0} - 5) == ~std::uint64_t{0});
    const ReaderLimits limits{800, 800};
    const std::size_t wire = 800 + 100 + 1024;
    CHECK(read_all(with_first_byte_or(cf(binary_of(wire), Opcode::binary), rsv1), Role::server, limits, true) ==
          std::vector<Event>{compressed(Opcode::binary, binary_of(wire))});
    check_error(with_first_byte_or(cf(binary_of(wire + 1), Opcode::binary), rsv1), 1009, Role::server, limits, true);
    // Across fragments, and the continuation frames get the slack too.
    const auto data = binary_of(wire + 1);
    check_error(with_first_byte_or(cf(data.substr(0, 900), Opcode::binary, false), rsv1) +
                    cf(data.substr(900), Opcode::continuation, true), 1009, Role::server, limits, true);
    CHECK(read_all(with_first_byte_or(cf(data.substr(0, 900), Opcode::binary, false), rsv1) +
                       cf(data.substr(900, 1024), Opcode::continuation, true), Role::server, limits, true) ==
          std::vector<Event>{compressed(Opcode::binary, data.substr(0, wire))});
    // Uncompressed messages keep the plain limits.
    check_error(cf(binary_of(801), Opcode::binary), 1009, Role::server, limits, true);
}

TEST_CASE("reader rejects reserved opcodes with 1002") {
    for (const int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        INFO("opcode ", op);
        check_error(cf("x", static_cast<Opcode>(op)), 1002);
        check_error(cf("", static_cast<Opcode>(op)), 1002);
    }
}

TEST_CASE("reader rejects a fragmented control frame with 1002") {
    check_error(cf("p", Opcode::ping, false), 1002);
    check_error(cf("p", Opcode::pong, false), 1002);
    check_error(cf("", Opcode::close, false), 1002);
}

TEST_CASE("reader rejects a control frame with a 126-byte payload with 1002") {
    check_error(cf(std::string(126, 'p'), Opcode::ping), 1002);
    check_error(cf(std::string(126, 'p'), Opcode::close), 1002);
    // 125 is the largest allowed.
    CHECK(read_all(cf(std::string(125, 'p'), Opcode::pong)) ==
          std::vector<Event>{control(ReadEvent::pong, Opcode::pong, std::string(125, 'p'))});
    // Rejected at the header, before the payload.
    check_error(cf(std::string(126, 'p'), Opcode::ping).substr(0, 8), 1002);
}

TEST_CASE("reader rejects a continuation frame without a message to continue with 1002") {
    check_error(cf("x", Opcode::continuation, true), 1002);
    check_error(cf("x", Opcode::continuation, false), 1002);
    check_error(cf("a") + cf("x", Opcode::continuation, true), 1002);
}

TEST_CASE("reader rejects a new data frame inside a fragmented message with 1002") {
    check_error(cf("a", Opcode::text, false) + cf("b", Opcode::text, true), 1002);
    check_error(cf("a", Opcode::binary, false) + cf("b", Opcode::binary, true), 1002);
    check_error(cf("a", Opcode::text, false) + cf("p", Opcode::ping) + cf("b", Opcode::text, false), 1002);
}

TEST_CASE("reader rejects a non-minimal payload length encoding with 1002") {
    auto masked = [](std::string header, std::string_view payload) {
        header.append(reinterpret_cast<const char*>(test_key.data()), 4);
        std::string body(payload);
        swirl::apply_mask(body.data(), body.size(), test_key);
        return header + body;
    };
    // 16-bit length holding 5.
    check_error(masked(std::string("\x81\xFE\x00\x05", 4), "hello"), 1002);
    // 16-bit length holding 125.
    check_error(masked(std::string("\x81\xFE\x00\x7D", 4), std::string(125, 'a')), 1002);
    // 64-bit length holding 5 and 65535.
    check_error(masked(std::string("\x82\xFF\x00\x00\x00\x00\x00\x00\x00\x05", 10), "hello"), 1002);
    check_error(masked(std::string("\x82\xFF\x00\x00\x00\x00\x00\x00\xFF\xFF", 10), ""), 1002);
    // 64-bit length with the top bit set.
    check_error(masked(std::string("\x82\xFF\x80\x00\x00\x00\x00\x01\x00\x00", 10), ""), 1002);
    // The shortest forms are fine.
    CHECK(read_all(masked(std::string("\x82\xFE\x00\x7E", 4), binary_of(126))) ==
          std::vector<Event>{message(Opcode::binary, binary_of(126))});
    CHECK(read_all(masked(std::string("\x82\xFF\x00\x00\x00\x00\x00\x01\x00\x00", 10), binary_of(65536))) ==
          std::vector<Event>{message(Opcode::binary, binary_of(65536))});
}

TEST_CASE("reader rejects a close frame with a 1-byte payload with 1002") {
    check_error(cf("\x03", Opcode::close), 1002);
}

TEST_CASE("reader rejects invalid close codes with 1002") {
    for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
        INFO("code ", code);
        check_error(close_frame(static_cast<std::uint16_t>(code)), 1002);
        check_error(close_frame(static_cast<std::uint16_t>(code), "reason"), 1002);
    }
}

TEST_CASE("reader accepts valid close codes") {
    for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999}) {
        INFO("code ", code);
        const auto events = read_all(close_frame(static_cast<std::uint16_t>(code), "r"));
        REQUIRE(events.size() == 1);
        CHECK(events[0].event == ReadEvent::close);
        CHECK(events[0].code == code);
        CHECK(events[0].reason == "r");
    }
}

TEST_CASE("reader rejects a close reason with invalid UTF-8 with 1007") {
    check_error(close_frame(1000, "bad \xFF"), 1007);
    check_error(close_frame(1000, "cut \xE2\x82"), 1007);
    check_error(close_frame(1000, "\xED\xA0\x80"), 1007);  // surrogate
}

TEST_CASE("reader rejects invalid UTF-8 in a text message with 1007") {
    for (const std::string_view bad : {std::string_view("\xFF"), std::string_view("\xC0\xAF"),            // overlong
                                       std::string_view("\xE0\x80\xAF"), std::string_view("\xED\xA0\x80"),  // surrogate
                                       std::string_view("\xF4\x90\x80\x80"),                                // > U+10FFFF
                                       std::string_view("a\x80" "b"), std::string_view("\xF5\x80\x80\x80")}) {
        INFO("payload size ", bad.size());
        check_error(cf(std::string("ok ") + std::string(bad) + " tail"), 1007);
    }
}

TEST_CASE("reader reports invalid UTF-8 as soon as the first impossible byte arrives") {
    // A large text frame whose 11th payload byte is impossible; only the first half is ever sent.
    std::string text = text_of(100000);
    text[10] = '\xFF';
    const std::string frame = cf(text);
    const std::size_t header = frame.size() - text.size();
    const std::string half = frame.substr(0, header + text.size() / 2);

    for (const auto c : {Chunking::whole, Chunking::bytewise, Chunking::random}) {
        INFO("chunking: ", name(c));
        const auto events = run(half, c);
        REQUIRE(events.size() == 1);
        CHECK(events[0].event == ReadEvent::error);
        CHECK(events[0].code == 1007);
    }

    // Byte by byte: every read before the bad byte needs more, the one delivering it reports the error.
    MessageReader reader;
    for (std::size_t i = 0; i < header + 10; ++i)
        REQUIRE(reader.read(bytes_of(std::string_view(frame).substr(i, 1))).event == ReadEvent::need_more);
    CHECK(reader.read(bytes_of(std::string_view(frame).substr(header + 10, 1))).event == ReadEvent::error);
    CHECK(reader.error_code() == 1007);
}

TEST_CASE("reader rejects invalid UTF-8 that appears only in the second fragment with 1007") {
    const std::string first = cf("valid \xE2\x82\xAC", Opcode::text, false);
    const std::string second = cf("bad \xC3\x28 and more text", Opcode::continuation, false);
    const std::string third = cf("end", Opcode::continuation, true);
    // The first fragment alone is fine.
    CHECK(read_all(first).empty());
    check_error(first + second + third, 1007);
    // Reported before the fragment (or the message) ends.
    check_error(first + second.substr(0, second.size() - 1), 1007);
}

TEST_CASE("reader accepts a multi-byte character split across fragments") {
    // U+20AC (E2 82 AC) and U+1F600 (F0 9F 98 80) cut between fragments, with a ping in between.
    const std::string stream = cf("a\xE2", Opcode::text, false) + cf("\x82", Opcode::continuation, false) +
                               cf("\xAC" "b\xF0\x9F", Opcode::continuation, false) + cf("", Opcode::ping) +
                               cf("\x98\x80", Opcode::continuation, true);
    CHECK(read_all(stream) == std::vector<Event>{control(ReadEvent::ping, Opcode::ping, ""),
                                                 message(Opcode::text, "a\xE2\x82\xAC" "b\xF0\x9F\x98\x80")});
}

TEST_CASE("reader rejects a text message ending inside a UTF-8 sequence with 1007") {
    check_error(cf("abc\xE2\x82"), 1007);
    check_error(cf("abc\xF0\x9F\x98"), 1007);
    check_error(cf("abc\xE2", Opcode::text, false) + cf("\x82", Opcode::continuation, true), 1007);
    // Zero-length final fragment after an incomplete sequence.
    check_error(cf("abc\xC3", Opcode::text, false) + cf("", Opcode::continuation, true), 1007);
}

TEST_CASE("reader never checks UTF-8 in binary messages") {
    const std::string junk("\xFF\xFE\xC0\xAF\xED\xA0\x80\xE2\x82", 9);
    CHECK(read_all(cf(junk, Opcode::binary)) == std::vector<Event>{message(Opcode::binary, junk)});
    CHECK(read_all(cf(junk.substr(0, 4), Opcode::binary, false) + cf(junk.substr(4), Opcode::continuation, true)) ==
          std::vector<Event>{message(Opcode::binary, junk)});
    // Ping payloads are not checked either.
    CHECK(read_all(cf(junk, Opcode::ping)) == std::vector<Event>{control(ReadEvent::ping, Opcode::ping, junk)});
}

TEST_CASE("reader rejects a frame over max_frame_size with 1009 as soon as the header arrives") {
    const ReaderLimits limits{100, 1000};
    const std::string over = cf(text_of(101));
    const std::size_t header = over.size() - 101;
    // Only the header is sent: no payload byte is needed to report the error.
    check_error(over.substr(0, header), 1009, Role::server, limits);
    check_error(over, 1009, Role::server, limits);
    check_error(cf(binary_of(70000), Opcode::binary).substr(0, 14), 1009, Role::server, limits);
    // Exactly at the limit is fine.
    CHECK(read_all(cf(text_of(100)), Role::server, limits) == std::vector<Event>{message(Opcode::text, text_of(100))});
}

TEST_CASE("reader rejects a message over max_message_size across fragments with 1009") {
    const ReaderLimits limits{100, 150};
    const auto data = text_of(151);
    check_error(cf(data.substr(0, 75), Opcode::text, false) + cf(data.substr(75), Opcode::continuation, true), 1009,
                Role::server, limits);
    // Reported at the header of the fragment that crosses the limit.
    const std::string second = cf(data.substr(75), Opcode::continuation, true);
    check_error(cf(data.substr(0, 75), Opcode::text, false) + second.substr(0, 6), 1009, Role::server, limits);
    // A single frame over the message limit but within the frame limit.
    check_error(cf(text_of(101)), 1009, Role::server, ReaderLimits{1000, 100});
    // Three fragments exactly at the limit are fine, and so is the next message.
    const auto exact = text_of(150);
    const std::string ok = cf(exact.substr(0, 50), Opcode::text, false) + cf(exact.substr(50, 50), Opcode::continuation, false) +
                           cf(exact.substr(100), Opcode::continuation, true) + cf(exact.substr(0, 100));
    CHECK(read_all(ok, Role::server, limits) ==
          std::vector<Event>{message(Opcode::text, exact), message(Opcode::text, exact.substr(0, 100))});
}

TEST_CASE("reader keeps returning error after an error") {
    MessageReader reader;
    const std::string bad = sf("unmasked");
    const auto r = reader.read(bytes_of(bad));
    REQUIRE(r.event == ReadEvent::error);
    CHECK(reader.error_code() == 1002);
    const std::string reason(reader.error_reason());
    CHECK_FALSE(reason.empty());

    const std::string good = cf("valid");
    for (int i = 0; i < 3; ++i) {
        const auto again = reader.read(bytes_of(good));
        CHECK(again.event == ReadEvent::error);
        CHECK(again.consumed == good.size());
        CHECK(reader.error_code() == 1002);
        CHECK(reader.error_reason() == reason);
    }
    CHECK(reader.read({}).event == ReadEvent::error);
}

TEST_CASE("reader gives a non-empty error_reason for every error") {
    const std::vector<std::string> bad = {
        sf("x"),
        with_first_byte_or(cf("x"), swirl::rsv::rsv1),
        cf("x", static_cast<Opcode>(3)),
        cf("x", Opcode::ping, false),
        cf(std::string(126, 'x'), Opcode::ping),
        cf("x", Opcode::continuation),
        cf("a", Opcode::text, false) + cf("b"),
        std::string("\x81\xFE\x00\x05\x01\x02\x03\x04", 8),
        cf("\x03", Opcode::close),
        close_frame(1004),
        close_frame(1000, "\xFF"),
        cf("\xFF"),
        cf("\xE2"),
        cf(text_of(2000)),
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
        INFO("case ", i);
        MessageReader reader(Role::server, ReaderLimits{1000, 1000});
        std::vector<Event> events;
        feed_chunk(reader, bad[i], events);
        REQUIRE(events.size() == 1);
        CHECK(events[0].event == ReadEvent::error);
        CHECK(events[0].code != 0);
        CHECK_FALSE(reader.error_reason().empty());
    }
    MessageReader client(Role::client);
    std::vector<Event> events;
    feed_chunk(client, cf("x"), events);
    REQUIRE(events.size() == 1);
    CHECK_FALSE(client.error_reason().empty());
}

TEST_CASE("reader reuses the payload capacity between messages of the same size") {
    for (const std::size_t n : {100u, 5000u, 65536u, 200000u}) {
        for (const auto c : {Chunking::whole, Chunking::bytewise, Chunking::random}) {
            INFO("size ", n, " chunking ", name(c));
            MessageReader reader;
            const std::string frame = cf(text_of(n));
            std::size_t first_capacity = 0;
            for (int round = 0; round < 4; ++round) {
                std::vector<Event> events;
                // Feed one message in the chosen chunking, checking capacity right after delivery.
                std::mt19937 rng(7u);
                std::uniform_int_distribution<std::size_t> size(1, 97);
                std::size_t pos = 0;
                std::size_t capacity = 0;
                while (pos < frame.size()) {
                    std::size_t len = frame.size() - pos;
                    if (c == Chunking::bytewise) len = 1;
                    else if (c == Chunking::random) len = std::min(len, size(rng));
                    const auto r = reader.read(bytes_of(std::string_view(frame).substr(pos, len)));
                    REQUIRE(r.consumed == len);
                    if (r.event == ReadEvent::message) {
                        CHECK(reader.frame().payload.size() == n);
                        capacity = reader.frame().payload.capacity();
                    } else {
                        REQUIRE(r.event == ReadEvent::need_more);
                    }
                    pos += len;
                }
                REQUIRE(capacity >= n);
                if (round == 0) first_capacity = capacity;
                else CHECK(capacity == first_capacity);
            }
        }
    }
}

TEST_CASE("reader keeps the message buffer when smaller messages follow a large one") {
    MessageReader reader;
    const std::string big = cf(binary_of(10000), Opcode::binary);
    REQUIRE(reader.read(bytes_of(big)).event == ReadEvent::message);
    const std::size_t capacity = reader.frame().payload.capacity();
    for (const std::size_t n : {10u, 5000u, 10000u}) {
        const std::string f = cf(binary_of(n), Opcode::binary);
        REQUIRE(reader.read(bytes_of(f)).event == ReadEvent::message);
        CHECK(reader.frame().payload == binary_of(n));
        CHECK(reader.frame().payload.capacity() == capacity);
    }
}

TEST_CASE("a shorter message after a longer one carries only its own bytes, and only they are UTF-8 checked") {
    const std::string not_utf8(3000, '\xFF');
    const std::string stream = cf(not_utf8, Opcode::binary) + cf("short") + cf(text_of(40), Opcode::text, false) +
                               cf("", Opcode::continuation, false) + cf(text_of(7), Opcode::continuation) +
                               cf(not_utf8, Opcode::binary) + cf("");
    CHECK(read_all(stream) == std::vector<Event>{message(Opcode::binary, not_utf8), message(Opcode::text, "short"),
                                                 message(Opcode::text, text_of(40) + text_of(7)),
                                                 message(Opcode::binary, not_utf8), message(Opcode::text, "")});
}

TEST_CASE("a handler may take, grow or shrink the delivered payload") {
    MessageReader reader;
    const std::string big = cf(binary_of(5000), Opcode::binary);
    REQUIRE(reader.read(bytes_of(big)).event == ReadEvent::message);
    const std::string taken = std::move(reader.frame().payload);
    CHECK(taken == binary_of(5000));
    const std::string small = cf(text_of(100));
    REQUIRE(reader.read(bytes_of(small)).event == ReadEvent::message);
    CHECK(reader.frame().payload == text_of(100));
    reader.frame().payload.append(10000, 'x');
    REQUIRE(reader.read(bytes_of(small)).event == ReadEvent::message);
    CHECK(reader.frame().payload == text_of(100));
    reader.frame().payload.clear();
    REQUIRE(reader.read(bytes_of(big)).event == ReadEvent::message);
    CHECK(reader.frame().payload == binary_of(5000));
}

TEST_CASE("release_buffer frees a large message buffer between messages, never mid-message") {
    MessageReader reader;
    const std::string big = cf(binary_of(100000), Opcode::binary);
    REQUIRE(reader.read(bytes_of(big)).event == ReadEvent::message);
    reader.release_buffer(200000);
    CHECK(reader.frame().payload.capacity() >= 100000);  // within the limit: kept
    reader.release_buffer(65536);
    CHECK(reader.frame().payload.capacity() < 65536);

    // Half of a fragmented message, then half of a frame: the buffer holds received bytes and stays.
    const std::string first = cf(binary_of(70000), Opcode::binary, false);
    REQUIRE(reader.read(bytes_of(first)).event == ReadEvent::need_more);
    const std::string last = cf(binary_of(30000), Opcode::continuation);
    const std::size_t half = last.size() / 2;
    REQUIRE(reader.read(bytes_of(std::string_view(last).substr(0, half))).event == ReadEvent::need_more);
    reader.release_buffer(0);
    REQUIRE(reader.read(bytes_of(std::string_view(last).substr(half))).event == ReadEvent::message);
    CHECK(reader.frame().payload == binary_of(70000) + binary_of(30000));

    // A short message after a release decodes as usual.
    reader.release_buffer(0);
    REQUIRE(reader.read(bytes_of(cf("after"))).event == ReadEvent::message);
    CHECK(reader.frame().payload == "after");
}

TEST_CASE("take_buffer hands over the message buffer between messages, never mid-message") {
    MessageReader reader;
    REQUIRE(reader.read(bytes_of(cf(binary_of(5000), Opcode::binary))).event == ReadEvent::message);
    const char* storage = reader.frame().payload.data();
    CHECK(reader.buffer_capacity() >= 5000);
    const std::string lent = reader.take_buffer();
    CHECK(lent.data() == storage);
    CHECK(reader.buffer_capacity() < 5000);

    // Without a buffer, the next message gets a new one.
    REQUIRE(reader.read(bytes_of(cf("after", Opcode::text))).event == ReadEvent::message);
    CHECK(reader.frame().payload == "after");

    // Half of a fragmented message: its buffer stays with the reader.
    REQUIRE(reader.read(bytes_of(cf(binary_of(3000), Opcode::binary, false))).event == ReadEvent::need_more);
    CHECK(reader.take_buffer().empty());
    REQUIRE(reader.read(bytes_of(cf(binary_of(10), Opcode::continuation))).event == ReadEvent::message);
    CHECK(reader.frame().payload == binary_of(3000) + binary_of(10));
}

TEST_CASE("a reader keeps working after being moved between messages") {
    swirl::MessageReader original(swirl::Role::server);
    const std::string first = swirl::pack("first", swirl::Opcode::text, true, swirl::MaskKey{1, 2, 3, 4});
    const std::string second = swirl::pack("second", swirl::Opcode::text, true, swirl::MaskKey{5, 6, 7, 8});
    auto bytes = [](const std::string& s) { return std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); };
    REQUIRE(original.read(bytes(first)).event == swirl::ReadEvent::message);
    CHECK(original.frame().payload == "first");
    swirl::MessageReader moved(std::move(original));
    REQUIRE(moved.read(bytes(second)).event == swirl::ReadEvent::message);
    CHECK(moved.frame().payload == "second");
}

TEST_CASE("reader adopts a buffer when a handler moved the payload away, and only then") {
    MessageReader reader;
    REQUIRE(reader.read(bytes_of(cf(binary_of(5000), Opcode::binary))).event == ReadEvent::message);
    std::string small(1000, 's');
    CHECK_FALSE(reader.adopt_buffer(small));  // the reader's own buffer is larger: kept
    CHECK(small.size() == 1000);
    CHECK(reader.frame().payload == binary_of(5000));

    std::string spare(20000, 'z');  // a written payload: stale contents, longer than what comes next
    const char* spare_storage = spare.data();
    std::string taken = std::move(reader.frame().payload);  // a handler moves the payload into send()
    CHECK(taken == binary_of(5000));
    CHECK(reader.adopt_buffer(spare));
    CHECK(spare.capacity() < 20000);  // the reader's emptied string came back

    const std::string next = binary_of(300);
    REQUIRE(reader.read(bytes_of(cf(next, Opcode::binary))).event == ReadEvent::message);
    CHECK(reader.frame().payload == next);  // only the new bytes, none of the stale 'z'
    CHECK(reader.frame().payload.data() == spare_storage);

    // Mid-message the buffer is the message's: nothing is swapped in.
    const std::string fragments = cf("first half", Opcode::text, false);
    REQUIRE(reader.read(bytes_of(fragments)).event == ReadEvent::need_more);
    std::string another(50000, 'a');
    CHECK_FALSE(reader.adopt_buffer(another));
    CHECK(another.size() == 50000);
}
