#include "doctest.hpp"

#include <swirl/protocol/detail/sha1.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

std::string to_hex(const swirl::detail::Sha1::Digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (auto b : d) {
        out += digits[b >> 4];
        out += digits[b & 0xF];
    }
    return out;
}

std::string hex_sha1(std::string_view data) { return to_hex(swirl::detail::sha1(data)); }

/// The first `n` characters of "0123456789" repeated.
std::string digits(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('0' + i % 10);
    return s;
}

constexpr std::string_view abc448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

} // namespace

TEST_CASE("sha1 matches the FIPS 180 short vectors") {
    CHECK(hex_sha1("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex_sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(abc448.size() == 56);
    CHECK(hex_sha1(abc448) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST_CASE("sha1 of one million 'a' fed in uneven chunks matches FIPS 180") {
    const std::string million(1'000'000, 'a');
    CHECK(hex_sha1(million) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

    swirl::detail::Sha1 h;
    std::size_t pos = 0, step = 1;
    while (pos < million.size()) {
        const std::size_t n = std::min(step, million.size() - pos);
        h.update(std::string_view(million).substr(pos, n));
        pos += n;
        step = step * 7 % 1021 + 1;  // 1, 8, 57, 400, ... uneven, including 0-mod-64 and odd sizes
    }
    h.update("");  // an empty update changes nothing
    CHECK(to_hex(h.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("sha1 pads correctly around block boundaries") {
    // Expected values from `printf '%s' <input> | sha1sum`.
    struct Case {
        std::size_t len;
        const char* digest;
    };
    const Case cases[] = {
        {55, "9f3a4ce7f66b1b74c34da2c5d732c39f81e0f8df"},
        {56, "0a40b8fbdaafb7c29651618ac15d27e772287130"},
        {63, "984b0f2f6d78c24020f5a79d409f67ab99302891"},
        {64, "cf0800f7644ace3cb4c3fa33388d3ba0ea3c8b6e"},
        {65, "92de3a8444fe6d15268f0ba810aa43bc8b3a4ffe"},
        {119, "d1ba16c5f745875597b6d0b9061f30b5a5c89092"},
        {120, "deb4cf0a6f315d8403e5eff0923a8c5c52f21ac8"},
        {127, "37209e395c65a99a396343f89d79aa2e1687d04f"},
        {128, "b5d36071c0845df9e0727b58ec97d2796f3312d0"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.len);
        const std::string input = digits(c.len);
        CHECK(hex_sha1(input) == c.digest);

        swirl::detail::Sha1 h;
        for (char ch : input) h.update(std::string_view(&ch, 1));
        CHECK(to_hex(h.finish()) == c.digest);
    }
}

TEST_CASE("sha1 gives the same digest for every two-way split of the input") {
    for (std::size_t cut = 0; cut <= abc448.size(); ++cut) {
        CAPTURE(cut);
        swirl::detail::Sha1 h;
        h.update(abc448.substr(0, cut));
        h.update(abc448.substr(cut));
        CHECK(to_hex(h.finish()) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }
}

TEST_CASE("sha1 reproduces the RFC 6455 handshake example digest") {
    CHECK(hex_sha1("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11") ==
          "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
}

TEST_CASE("sha1 with the CPU's SHA extensions matches the portable code block for block") {
#if SWIRL_SHA1_X86
    if (!swirl::detail::sha1_blocks::cpu_has_sha_extensions()) {
        MESSAGE("this CPU has no SHA extensions: only the portable code runs here");
        return;
    }
    std::uint32_t x = 12345;  // a fixed pseudo-random sequence (xorshift)
    std::array<std::uint8_t, 64 * 9> data{};
    for (int trial = 0; trial < 200; ++trial) {
        for (auto& byte : data) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            byte = static_cast<std::uint8_t>(x);
        }
        const std::size_t blocks = static_cast<std::size_t>(trial) % 10;
        swirl::detail::sha1_blocks::State portable{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, x};
        auto accelerated = portable;
        swirl::detail::sha1_blocks::portable(portable, data.data(), blocks);
        swirl::detail::sha1_blocks::with_sha_extensions(accelerated, data.data(), blocks);
        CAPTURE(trial);
        CHECK(accelerated == portable);
    }
#else
    MESSAGE("not x86: only the portable code exists here");
#endif
}
