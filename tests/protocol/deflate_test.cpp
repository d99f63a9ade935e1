#include "doctest.hpp"

#include <swirl/protocol/deflate.hpp>

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using swirl::Deflater;
using swirl::InflateResult;
using swirl::Inflater;

namespace {

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s += static_cast<char>(b);
    return s;
}

const std::string tail = bytes({0x00, 0x00, 0xFF, 0xFF});

/// zlib as a reference, one shot per message: raw deflate with Z_SYNC_FLUSH and the tail cut off (RFC 7692 §7.2.1).
/// Window 8 is asked of zlib as 9, which it would do by itself for a zlib stream.
class ReferenceDeflate {
public:
    explicit ReferenceDeflate(int bits, int level = Z_DEFAULT_COMPRESSION, int strategy = Z_DEFAULT_STRATEGY) {
        REQUIRE(deflateInit2(&z_, level, Z_DEFLATED, -std::max(bits, 9), 8, strategy) == Z_OK);
    }
    ~ReferenceDeflate() { deflateEnd(&z_); }
    ReferenceDeflate(const ReferenceDeflate&) = delete;
    ReferenceDeflate& operator=(const ReferenceDeflate&) = delete;

    std::string compress(std::string_view message) {
        if (message.empty()) return bytes({0x00});  // zlib skips a sync flush right after another
        std::string out(deflateBound(&z_, message.size()) + 64, '\0');
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
        z_.avail_in = static_cast<uInt>(message.size());
        z_.next_out = reinterpret_cast<Bytef*>(out.data());
        z_.avail_out = static_cast<uInt>(out.size());
        REQUIRE(deflate(&z_, Z_SYNC_FLUSH) == Z_OK);
        REQUIRE(z_.avail_in == 0);
        REQUIRE(z_.avail_out > 0);
        out.resize(out.size() - z_.avail_out);
        REQUIRE(out.ends_with(tail));
        out.resize(out.size() - 4);
        return out;
    }
    void reset() { deflateReset(&z_); }

private:
    z_stream z_{};
};

/// zlib as a reference inflater: the payload plus the tail, one byte of output per call. zlib checks a distance
/// against its window only when it reaches before the current call's output, so this way every distance is checked
/// against the window of `bits`: the output decodes for a peer that holds no more.
class ReferenceInflate {
public:
    explicit ReferenceInflate(int bits) { REQUIRE(inflateInit2(&z_, -bits) == Z_OK); }
    ~ReferenceInflate() { inflateEnd(&z_); }
    ReferenceInflate(const ReferenceInflate&) = delete;
    ReferenceInflate& operator=(const ReferenceInflate&) = delete;

    std::optional<std::string> inflate(std::string payload, std::size_t expected_size) {
        payload += tail;
        std::string out;
        out.reserve(expected_size);
        z_.next_in = reinterpret_cast<Bytef*>(payload.data());
        z_.avail_in = static_cast<uInt>(payload.size());
        bool between_blocks = false;
        while (true) {
            Bytef byte;
            z_.next_out = &byte;
            z_.avail_out = 1;
            const uInt before = z_.avail_in;
            const int rc = ::inflate(&z_, Z_SYNC_FLUSH);
            if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;
            const bool progress = z_.avail_out == 0 || z_.avail_in != before;
            if (progress) between_blocks = z_.data_type == 128;  // a call without progress resets the flag
            if (z_.avail_out == 0) out += static_cast<char>(byte);
            else if (!progress || z_.avail_in == 0) break;
        }
        if (z_.avail_in != 0 || !between_blocks) return std::nullopt;
        return out;
    }
    void reset() { inflateReset(&z_); }

private:
    z_stream z_{};
};

/// Messages that exercise the window: text, repeats at short and long distances, binary noise, empty.
std::vector<std::string> sample_messages() {
    std::mt19937 rng(7692);
    std::vector<std::string> out;
    out.emplace_back("Hello");
    out.emplace_back("Hello");
    out.emplace_back("");
    std::string text;
    for (int i = 0; i < 400; ++i) text += "The quick brown fox " + std::to_string(i % 37) + " jumps over the lazy dog. ";
    out.push_back(text);  // ~11 KiB with repeats at every distance up to a few KiB
    std::string noise(3000, '\0');
    for (auto& c : noise) c = static_cast<char>(rng());
    out.push_back(noise + noise.substr(0, 500));  // a repeat 3000 bytes back: beyond windows 8..11
    std::string far(70000, '\0');
    for (std::size_t i = 0; i < far.size(); ++i) far[i] = static_cast<char>("abcdefgh"[rng() % 8]);
    out.push_back(far + far.substr(0, 2000));  // a repeat 70000 bytes back: beyond every window
    out.push_back(text.substr(100, 300));      // refers back into the earlier message with context takeover
    out.push_back(std::string(100000, 'z'));
    return out;
}

/// Splits `s` into pieces: whole (0), byte by byte (1), random sizes (2).
std::vector<std::string_view> pieces(std::string_view s, int how, std::mt19937& rng) {
    std::vector<std::string_view> out;
    if (how == 0) {
        out.push_back(s);
        return out;
    }
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t n = how == 1 ? 1 : 1 + rng() % std::min<std::size_t>(s.size() - pos, rng() % 2 ? 7 : 3000);
        n = std::min(n, s.size() - pos);
        out.push_back(s.substr(pos, n));
        pos += n;
    }
    if (rng() % 3 == 0) out.push_back({});  // an empty last frame now and then
    return out;
}

/// Inflates `payload` fed in `how` pieces, the last one with fin; the final result.
InflateResult feed(Inflater& inf, std::string_view payload, int how, std::mt19937& rng, std::string& out,
                   std::size_t limit = std::size_t(1) << 30) {
    auto parts = pieces(payload, how, rng);
    if (parts.empty()) parts.push_back({});
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto r = inf.inflate(parts[i], i + 1 == parts.size(), out, limit);
        if (r != InflateResult::ok) return r;
    }
    return InflateResult::ok;
}

std::string compress_one(std::string_view message, int bits = 15) {
    Deflater d(bits, true);
    std::string out;
    d.compress(message, out);
    return out;
}

/// A message of `compressed_kib` KiB or so that inflates to `copies` MiB of zeros, without ever holding them:
/// zlib compresses the first MiB, then the compressed form of one more MiB (which only refers back into zeros) is
/// repeated. Each piece ends byte-aligned on a sync flush, so the pieces concatenate into one valid stream.
std::string zero_bomb(std::size_t copies) {
    const std::string mib(1 << 20, '\0');
    ReferenceDeflate ref(15, 9);
    std::string first = ref.compress(mib) + tail;  // the tails stay: they are empty stored blocks between pieces
    const std::string next = ref.compress(mib) + tail;
    std::string out = first;
    for (std::size_t i = 1; i < copies; ++i) out += next;
    out.resize(out.size() - 4);
    return out;
}

} // namespace

TEST_CASE("RFC 7692 §7.2.3: the example payloads inflate to Hello") {
    Inflater inf;
    std::string out;
    // §7.2.3.1: one compressed block, whole and in two frames.
    const std::string hello = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    REQUIRE(inf.inflate(hello, true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    out.clear();
    REQUIRE(inf.inflate(hello.substr(0, 3), false, out, 100) == InflateResult::ok);
    CHECK(inf.in_message());
    REQUIRE(inf.inflate(hello.substr(3), true, out, 100) == InflateResult::ok);
    CHECK_FALSE(inf.in_message());
    CHECK(out == "Hello");
    // §7.2.3.2: the second message refers into the first one's window.
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    // §7.2.3.3: a stored block.
    out.clear();
    REQUIRE(inf.inflate(bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    // §7.2.3.4: a block with BFINAL set, then the byte that lets the tail complete an empty stored block.
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    // §7.2.3.5: two blocks in one message.
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}), true, out, 100) ==
            InflateResult::ok);
    CHECK(out == "Hello");
}

TEST_CASE("the Deflater gives RFC 7692's bytes for Hello, with and without context takeover") {
    Deflater shared_context(15, false);
    std::string out;
    CHECK(shared_context.compress("Hello", out) == 7);
    CHECK(out == bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
    out.clear();
    shared_context.compress("Hello", out);
    CHECK(out == bytes({0xf2, 0x00, 0x11, 0x00, 0x00}));  // §7.2.3.2

    Deflater fresh(15, true);
    for (int i = 0; i < 3; ++i) {
        out.clear();
        fresh.compress("Hello", out);
        CHECK(out == bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
    }
    // compress appends.
    std::string framed = "HDR";
    fresh.compress("Hello", framed);
    CHECK(framed == "HDR" + bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
}

TEST_CASE("an empty message is one byte and inflates back to nothing") {
    Deflater d;
    std::string out;
    CHECK(d.compress("", out) == 1);
    CHECK(out == bytes({0x00}));
    Inflater inf;
    std::string msg = "stale";
    msg.clear();
    CHECK(inf.inflate(out, true, msg, 0) == InflateResult::ok);
    CHECK(msg.empty());
    // An empty payload is an empty message, fed at once or as an empty first frame.
    CHECK(inf.inflate(std::string_view{}, true, msg, 0) == InflateResult::ok);
    CHECK(inf.inflate(std::string_view{}, false, msg, 0) == InflateResult::ok);
    CHECK(inf.inflate(std::string_view{}, true, msg, 0) == InflateResult::ok);
    CHECK(msg.empty());
    // The stream is intact afterwards.
    CHECK(inf.inflate(compress_one("Hello"), true, msg, 5) == InflateResult::ok);
    CHECK(msg == "Hello");
}

TEST_CASE("the Deflater's output inflates with zlib's raw inflate, for every window and both takeover modes") {
    const auto messages = sample_messages();
    for (int bits = 8; bits <= 15; ++bits) {
        for (bool no_context : {false, true}) {
            INFO("window bits ", bits, ", no context takeover ", no_context);
            Deflater d(bits, no_context);
            ReferenceInflate ref(bits);  // 8: a 256-byte window, though zlib compresses with 9
            std::string payload;
            for (const auto& m : messages) {
                payload.clear();
                d.compress(m, payload);
                const auto back = ref.inflate(payload, m.size());
                REQUIRE(back);
                CHECK(*back == m);
                if (no_context) ref.reset();  // each message stands alone
            }
        }
    }
}

TEST_CASE("zlib's output inflates with the Inflater: every window, both modes, whole, byte by byte and in random chunks") {
    const auto messages = sample_messages();
    std::mt19937 rng(15);
    for (int bits = 8; bits <= 15; ++bits) {
        for (bool no_context : {false, true}) {
            for (int how = 0; how < 3; ++how) {
                INFO("window bits ", bits, ", no context takeover ", no_context, ", feeding ", how);
                ReferenceDeflate ref(bits);
                Inflater inf(bits, no_context);
                std::string out;
                for (const auto& m : messages) {
                    if (how == 1 && m.size() > 20000) continue;  // byte by byte: the short ones will do
                    const std::string payload = ref.compress(m);
                    if (no_context) ref.reset();
                    out.clear();
                    REQUIRE(feed(inf, payload, how, rng, out) == InflateResult::ok);
                    CHECK(out.size() == m.size());
                    CHECK(out == m);
                }
            }
        }
    }
}

TEST_CASE("the Inflater reads what the Deflater writes, message after message") {
    const auto messages = sample_messages();
    std::mt19937 rng(9);
    for (int bits : {8, 9, 12, 15}) {
        for (bool no_context : {false, true}) {
            INFO("window bits ", bits, ", no context takeover ", no_context);
            Deflater d(bits, no_context, 1, 1);  // fastest and smallest settings still interoperate
            Inflater inf(bits, no_context);
            std::string payload, out;
            for (int round = 0; round < 3; ++round) {
                for (const auto& m : messages) {
                    payload.clear();
                    d.compress(m, payload);
                    out.clear();
                    REQUIRE(feed(inf, payload, 2, rng, out) == InflateResult::ok);
                    CHECK(out == m);
                }
            }
        }
    }
}

TEST_CASE("a message that inflates to exactly the limit passes and one byte more fails") {
    const auto messages = sample_messages();
    std::mt19937 rng(1009);
    for (const auto& m : messages) {
        if (m.empty()) continue;
        const std::string payload = compress_one(m);
        for (int how = 0; how < 3; ++how) {
            if (how == 1 && m.size() > 20000) continue;
            INFO("size ", m.size(), ", feeding ", how);
            Inflater inf(15, true);
            std::string out;
            CHECK(feed(inf, payload, how, rng, out, m.size()) == InflateResult::ok);
            CHECK(out == m);
            out.clear();
            CHECK(feed(inf, payload, how, rng, out, m.size() - 1) == InflateResult::too_big);
            CHECK(out == m.substr(0, m.size() - 1));
            CHECK(inf.error_reason() == "inflated message exceeds the size limit");
            CHECK(swirl::close_code_for(InflateResult::too_big) == 1009);
            // The inflater is reset: the next message is fine.
            out.clear();
            CHECK(feed(inf, payload, how, rng, out, m.size()) == InflateResult::ok);
            CHECK(out == m);
        }
    }
}

TEST_CASE("a deflate bomb stops at the limit, having allocated no more than it") {
    // About 1 KiB that would inflate to 1 MiB (DEFLATE's ratio tops out near 1:1032).
    const std::string small = compress_one(std::string(1 << 20, '\0'));
    CHECK(small.size() < 1100);
    for (std::size_t limit : {std::size_t(0), std::size_t(1), std::size_t(1000), std::size_t(64 << 10)}) {
        INFO("limit ", limit);
        Inflater inf;
        std::string out;
        CHECK(inf.inflate(small, true, out, limit) == InflateResult::too_big);
        CHECK(out.size() == limit);
        CHECK(out.capacity() <= std::max<std::size_t>(limit, 15) + 32);
        CHECK(out == std::string(limit, '\0'));
    }
    // About 1 MiB that would inflate to 1 GiB: stopped at 1 MiB after reading a few KiB of it.
    const std::string big = zero_bomb(1024);
    CHECK(big.size() < (2u << 20));
    Inflater inf;
    std::string out;
    CHECK(inf.inflate(big, true, out, 1 << 20) == InflateResult::too_big);
    CHECK(out.size() == (1u << 20));
    CHECK(out.capacity() <= (1u << 20) + 32);
    // Frame by frame, too: 64 KiB frames.
    out.clear();
    out.shrink_to_fit();
    InflateResult r = InflateResult::ok;
    std::size_t frames = 0;
    for (std::size_t pos = 0; pos < big.size() && r == InflateResult::ok; pos += 65536, ++frames) {
        const auto piece = std::string_view(big).substr(pos, 65536);
        r = inf.inflate(piece, pos + piece.size() == big.size(), out, 3 << 20);
    }
    CHECK(r == InflateResult::too_big);
    CHECK(frames <= 4);
    CHECK(out.size() == (3u << 20));
    CHECK(out.capacity() <= (3u << 20) + 32);
    // And the same bomb under a generous limit inflates to its full size in one go (64 MiB of it).
    const std::string medium = zero_bomb(64);
    out.clear();
    CHECK(inf.inflate(medium, true, out, 64 << 20) == InflateResult::ok);
    CHECK(out.size() == (64u << 20));
    CHECK(std::all_of(out.begin(), out.end(), [](char c) { return c == 0; }));
}

TEST_CASE("corrupt data fails distinctly from too big") {
    CHECK(swirl::close_code_for(InflateResult::corrupt) == 1007);
    const std::string hello = compress_one("Hello, hello, hello");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"reserved block type", bytes({0x07, 0x00})},
        {"bad stored length", bytes({0x00, 0x05, 0x00, 0x00, 0x00, 'x'})},
        {"distance before the start", bytes({0xf2, 0x00, 0x11, 0x00, 0x00})},  // §7.2.3.2's second message, alone
        {"truncated: ends inside a block", hello.substr(0, hello.size() - 3)},
        {"garbage", std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8)},
        {"a lone partial stored header", bytes({0x00, 0x00})},
    };
    std::mt19937 rng(1007);
    for (const auto& [what, payload] : cases) {
        for (int how = 0; how < 3; ++how) {
            INFO(what, ", feeding ", how);
            Inflater inf;
            std::string out;
            CHECK(feed(inf, payload, how, rng, out, 1 << 20) == InflateResult::corrupt);
            CHECK_FALSE(inf.error_reason().empty());
            CHECK_FALSE(inf.in_message());
            // Reset after the failure: the next message inflates.
            out.clear();
            CHECK(inf.inflate(compress_one("again"), true, out, 100) == InflateResult::ok);
            CHECK(out == "again");
        }
    }
}

TEST_CASE("a distance beyond the agreed window is corrupt once it reaches before zlib's history") {
    std::string m(5000, '\0');
    std::mt19937 rng(3);
    for (auto& c : m) c = static_cast<char>(rng());
    m += m.substr(0, 1000);  // refers 5000 bytes back
    const std::string payload = compress_one(m, 15);
    for (int bits = 8; bits <= 12; ++bits) {
        INFO(bits);
        // Byte by byte, each call's output is short: the distance reaches before the window's 2^bits bytes.
        Inflater small(bits);
        std::string out;
        CHECK(feed(small, payload, 1, rng, out, 1 << 20) == InflateResult::corrupt);
        CHECK(small.error_reason() == "invalid distance too far back");
        // Across messages, the window is all there is.
        Inflater context(bits);
        const std::string first = compress_one(m.substr(0, 5000), 15);
        out.clear();
        REQUIRE(context.inflate(first, true, out, 1 << 20) == InflateResult::ok);
        Deflater d(15, false);
        std::string both;
        d.compress(m.substr(0, 5000), both);
        both.clear();
        d.compress(m.substr(0, 1000), both);  // refers 5000 bytes back, into the previous message
        out.clear();
        CHECK(context.inflate(both, true, out, 1 << 20) == InflateResult::corrupt);
    }
    Inflater enough(13);
    std::string out;
    CHECK(feed(enough, payload, 1, rng, out, 1 << 20) == InflateResult::ok);
    CHECK(out == m);
}

TEST_CASE("without context takeover the inflater forgets the previous message") {
    const std::string first = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    const std::string refers_back = bytes({0xf2, 0x00, 0x11, 0x00, 0x00});
    Inflater keeps(15, false);
    Inflater forgets(15, true);
    std::string out;
    REQUIRE(keeps.inflate(first, true, out, 100) == InflateResult::ok);
    REQUIRE(forgets.inflate(first, true, out, 100) == InflateResult::ok);
    out.clear();
    CHECK(keeps.inflate(refers_back, true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    CHECK(forgets.inflate(refers_back, true, out, 100) == InflateResult::corrupt);
    // reset() forgets on demand.
    keeps.reset();
    CHECK(keeps.inflate(refers_back, true, out, 100) == InflateResult::corrupt);
}

TEST_CASE("a stream ended with BFINAL starts afresh, with or without the extra byte") {
    Inflater inf;
    std::string out;
    // Without the byte RFC 7692 §7.2.3.4 adds: the message ends with the final block.
    REQUIRE(inf.inflate(bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    // The next message is a new stream, fed in pieces.
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf2, 0x48}), false, out, 100) == InflateResult::ok);
    REQUIRE(inf.inflate(bytes({0xcd, 0xc9, 0xc9, 0x07, 0x00}), true, out, 100) == InflateResult::ok);
    CHECK(out == "Hello");
    // Two complete streams in one message, then the sync flush.
    out.clear();
    REQUIRE(inf.inflate(bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), true,
                        out, 100) == InflateResult::ok);
    CHECK(out == "HelloHello");
    // zlib's Z_FINISH output, as a sender without sync flush would make it.
    std::string finished(64, '\0');
    z_stream z{};
    REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string text = "finished with BFINAL, finished with BFINAL";
    z.next_in = reinterpret_cast<Bytef*>(text.data());
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(finished.data());
    z.avail_out = static_cast<uInt>(finished.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    finished.resize(finished.size() - z.avail_out);
    deflateEnd(&z);
    out.clear();
    CHECK(inf.inflate(finished, true, out, 100) == InflateResult::ok);
    CHECK(out == text);
}

TEST_CASE("an inflater moved in the middle of a message carries on") {
    const std::string m = sample_messages()[3];
    const std::string payload = compress_one(m);
    Inflater a;
    std::string out;
    REQUIRE(a.inflate(std::string_view(payload).substr(0, 100), false, out, 1 << 20) == InflateResult::ok);
    Inflater b = std::move(a);
    REQUIRE(b.inflate(std::string_view(payload).substr(100), true, out, 1 << 20) == InflateResult::ok);
    CHECK(out == m);
    Inflater c;
    c = std::move(b);
    out.clear();
    REQUIRE(c.inflate(compress_one("next"), true, out, 100) == InflateResult::ok);
    CHECK(out == "next");
}

TEST_CASE("buffers keep their capacity: a warm buffer is not reallocated") {
    const auto messages = sample_messages();
    Deflater d(15, false);
    Inflater inf(15, false);
    std::string payload, out;
    payload.reserve(1 << 20);
    out.reserve(1 << 20);
    const auto payload_data = payload.data();
    const auto out_data = out.data();
    for (int round = 0; round < 3; ++round) {
        for (const auto& m : messages) {
            payload.clear();
            d.compress(m, payload);
            out.clear();
            REQUIRE(inf.inflate(payload, true, out, 1 << 20) == InflateResult::ok);
            CHECK(out == m);
        }
    }
    CHECK(payload.data() == payload_data);
    CHECK(out.data() == out_data);
}

TEST_CASE("shared compression: a fresh-context compressor's bytes decode on any connection whose window fits") {
    Deflater shared(10, true);
    std::string once;
    shared.compress("a broadcast, a broadcast, a broadcast", once);
    // The same bytes whatever came before.
    std::string again;
    shared.compress("something else entirely", again);
    again.clear();
    shared.compress("a broadcast, a broadcast, a broadcast", again);
    CHECK(again == once);

    // A connection with context takeover takes them in between its own messages, then resets its compressor.
    Deflater own(15, false);
    Inflater client(15, false);
    std::string payload, out;
    own.compress("own message one", payload);
    REQUIRE(client.inflate(payload, true, out, 1000) == InflateResult::ok);
    out.clear();
    REQUIRE(client.inflate(once, true, out, 1000) == InflateResult::ok);
    CHECK(out == "a broadcast, a broadcast, a broadcast");
    own.reset();
    payload.clear();
    own.compress("own message one, own message two", payload);
    out.clear();
    REQUIRE(client.inflate(payload, true, out, 1000) == InflateResult::ok);
    CHECK(out == "own message one, own message two");

    CHECK(shared.fits(swirl::DeflateParams{}));
    CHECK(shared.fits(swirl::DeflateParams{true, false, 10, 0}));
    CHECK_FALSE(shared.fits(swirl::DeflateParams{true, false, 9, 0}));
    CHECK(Deflater(9, true).fits(swirl::DeflateParams{false, false, 8, 0}));
    CHECK(Deflater(8, true).fits(swirl::DeflateParams{false, false, 8, 0}));
    CHECK_FALSE(Deflater(8, false).fits(swirl::DeflateParams{}));  // with context takeover, bytes are per connection
}

TEST_CASE("the codec follows the agreed parameters") {
    const swirl::DeflateParams p{true, false, 9, 11};
    const Deflater d = Deflater::for_server(p);
    CHECK(d.window_bits() == 9);
    CHECK(d.no_context_takeover());
    const Inflater inf = Inflater::for_server(p);
    CHECK(inf.window_bits() == 11);
    CHECK_FALSE(inf.no_context_takeover());
    CHECK(Inflater::for_client(p).window_bits() == 9);
    CHECK(Inflater::for_client(p).no_context_takeover());
    CHECK(Deflater::for_client(p).window_bits() == 11);
}

TEST_CASE("bad settings are refused at construction") {
    CHECK_THROWS_AS(Inflater(7), std::invalid_argument);
    CHECK_THROWS_AS(Inflater(16), std::invalid_argument);
    CHECK_THROWS_AS(Deflater(7), std::invalid_argument);
    CHECK_THROWS_AS(Deflater(15, false, 10), std::invalid_argument);
    CHECK_THROWS_AS(Deflater(15, false, 6, 0), std::invalid_argument);
    CHECK_THROWS_AS(Deflater(15, false, 6, 10), std::invalid_argument);
    CHECK_NOTHROW(Deflater(8, false, 0, 1));
}

TEST_CASE("a large message round-trips in frames") {
    std::string m;
    std::mt19937 rng(42);
    while (m.size() < (5u << 20)) m += "line " + std::to_string(rng() % 100000) + " of a log file\n";
    Deflater d(15, false, 1);
    std::string payload;
    d.compress(m, payload);
    CHECK(payload.size() < m.size() / 2);
    Inflater inf;
    std::string out;
    CHECK(feed(inf, payload, 2, rng, out, m.size()) == InflateResult::ok);
    CHECK(out == m);
}

#else

TEST_CASE("without zlib the codec header declares only the tail") {
    CHECK(swirl::deflate_tail[3] == 0xFF);
}

#endif
