#include "doctest.hpp"

#include <swirl/protocol/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <cstring>
#include <vector>

namespace {

constexpr swirl::MaskKey key{0x37, 0xFA, 0x21, 0x3D};

/// Deterministic, non-repeating test data.
std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed = 1) {
    std::vector<std::uint8_t> v(n);
    std::uint8_t x = seed;
    for (auto& b : v) {
        x = static_cast<std::uint8_t>(x * 29 + 71);
        b = x;
    }
    return v;
}

/// Byte-at-a-time reference: byte i uses key[(phase + i) % 4].
std::vector<std::uint8_t> reference_mask(std::vector<std::uint8_t> v, const swirl::MaskKey& k, std::size_t phase) {
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(v[i] ^ k[(phase + i) % 4]);
    return v;
}

} // namespace

TEST_CASE("apply_mask matches a byte-at-a-time reference for every length and phase") {
    // Past four 64-byte AVX2 steps (from 128 bytes, where the CPU has AVX2), 32-byte vector steps, with every tail.
    for (std::size_t n = 0; n <= 300; ++n) {
        for (std::size_t phase = 0; phase < 4; ++phase) {
            CAPTURE(n);
            CAPTURE(phase);
            const auto original = pattern(n, static_cast<std::uint8_t>(n));
            auto data = original;
            const std::size_t next = swirl::apply_mask(data.data(), data.size(), key, phase);
            CHECK(data == reference_mask(original, key, phase));
            CHECK(next == (phase + n) % 4);
        }
    }
}

TEST_CASE("apply_mask reduces the phase modulo four") {
    const auto original = pattern(19);
    auto a = original, b = original;
    const std::size_t pa = swirl::apply_mask(a.data(), a.size(), key, 6);
    const std::size_t pb = swirl::apply_mask(b.data(), b.size(), key, 2);
    CHECK(a == b);
    CHECK(pa == pb);
    CHECK(pa == (2 + 19) % 4);
}

TEST_CASE("apply_mask matches the RFC 6455 masked Hello example") {
    unsigned char hello[] = {'H', 'e', 'l', 'l', 'o'};
    CHECK(swirl::apply_mask(hello, sizeof hello, key) == 1);
    const unsigned char expected[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK(std::memcmp(hello, expected, sizeof hello) == 0);
}

TEST_CASE("masking twice restores the original bytes") {
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 64u, 1000u}) {
        for (std::size_t phase = 0; phase < 4; ++phase) {
            CAPTURE(n);
            CAPTURE(phase);
            const auto original = pattern(n, 3);
            auto data = original;
            swirl::apply_mask(data.data(), data.size(), key, phase);
            if (n >= 8) CHECK(data != original);  // masking actually changed something
            swirl::apply_mask(data.data(), data.size(), key, phase);
            CHECK(data == original);
        }
    }
}

TEST_CASE("chunked unmasking with the returned phase equals one-shot for every split point") {
    const std::size_t n = 40;
    const auto original = pattern(n, 9);
    for (std::size_t start_phase = 0; start_phase < 4; ++start_phase) {
        auto whole = original;
        swirl::apply_mask(whole.data(), whole.size(), key, start_phase);
        for (std::size_t cut = 0; cut <= n; ++cut) {
            CAPTURE(start_phase);
            CAPTURE(cut);
            auto chunked = original;
            std::size_t phase = swirl::apply_mask(chunked.data(), cut, key, start_phase);
            phase = swirl::apply_mask(chunked.data() + cut, n - cut, key, phase);
            CHECK(chunked == whole);
            CHECK(phase == (start_phase + n) % 4);
        }
    }
    // Three-way splits too, with chunks of odd sizes.
    auto whole = original;
    swirl::apply_mask(whole.data(), whole.size(), key);
    std::size_t mismatches = 0;
    for (std::size_t a = 0; a <= n; ++a)
        for (std::size_t b = a; b <= n; ++b) {
            auto chunked = original;
            std::size_t phase = swirl::apply_mask(chunked.data(), a, key);
            phase = swirl::apply_mask(chunked.data() + a, b - a, key, phase);
            swirl::apply_mask(chunked.data() + b, n - b, key, phase);
            if (chunked != whole) ++mismatches;
        }
    CHECK(mismatches == 0);
}

TEST_CASE("mask_copy writes to a different buffer and leaves the source unchanged") {
    for (std::size_t n = 0; n <= 100; ++n) {
        for (std::size_t phase = 0; phase < 4; ++phase) {
            CAPTURE(n);
            CAPTURE(phase);
            const auto original = pattern(n, 5);
            auto src = original;
            std::vector<std::uint8_t> dst(n + 1, 0xEE);  // one guard byte past the end
            const std::size_t next = swirl::mask_copy(dst.data(), src.data(), n, key, phase);
            CHECK(src == original);
            CHECK(next == (phase + n) % 4);
            CHECK(std::vector<std::uint8_t>(dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(n)) ==
                  reference_mask(original, key, phase));
            CHECK(dst[n] == 0xEE);
        }
    }
}

TEST_CASE("mask_copy and apply_mask handle unaligned pointers") {
    const std::size_t n = 261;  // AVX2 steps, a 32-byte step, words and a tail
    const auto original = pattern(n, 11);
    for (std::size_t src_off = 0; src_off < 8; ++src_off) {
        for (std::size_t dst_off = 0; dst_off < 8; ++dst_off) {
            CAPTURE(src_off);
            CAPTURE(dst_off);
            std::vector<std::uint8_t> src_buf(n + 16, 0xAA), dst_buf(n + 16, 0x55);
            std::memcpy(src_buf.data() + src_off, original.data(), n);
            swirl::mask_copy(dst_buf.data() + dst_off, src_buf.data() + src_off, n, key, src_off);
            const auto expected = reference_mask(original, key, src_off);
            CHECK(std::memcmp(dst_buf.data() + dst_off, expected.data(), n) == 0);
            // Bytes around the destination are untouched.
            for (std::size_t i = 0; i < dst_off; ++i) CHECK(dst_buf[i] == 0x55);
            CHECK(dst_buf[dst_off + n] == 0x55);
        }
        // In place at an odd address.
        std::vector<std::uint8_t> buf(n + 16, 0);
        std::memcpy(buf.data() + src_off, original.data(), n);
        swirl::apply_mask(buf.data() + src_off, n, key, 3);
        CHECK(std::memcmp(buf.data() + src_off, reference_mask(original, key, 3).data(), n) == 0);
    }
}

TEST_CASE("an all-zero mask key leaves data unchanged") {
    const auto original = pattern(33);
    auto data = original;
    CHECK(swirl::apply_mask(data.data(), data.size(), swirl::MaskKey{}, 1) == 2);
    CHECK(data == original);
}
