#pragma once
/// SHA-1 (FIPS 180-4), only what the WebSocket handshake needs. Not for security uses.
///
/// Every handshake hashes 60 bytes (two blocks). On x86 CPUs with the SHA extensions (Intel since Goldmont and
/// Ice Lake, AMD since Zen) the blocks go through them, picked once at run time: 80 ns for the two blocks instead
/// of 680 ns for the portable code (~4,100 instructions), which every other CPU runs. (Valgrind hides the
/// extensions: under callgrind the portable code runs.)

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SWIRL_SHA1_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SWIRL_SHA1_X86 0
#endif

namespace swirl::detail {

namespace sha1_blocks {

using State = std::array<std::uint32_t, 5>;

constexpr std::uint32_t rotl(std::uint32_t x, int n) noexcept { return (x << n) | (x >> (32 - n)); }

/// Runs the compression function over `count` 64-byte blocks at `data`. Any CPU.
inline void portable(State& state, const std::uint8_t* data, std::size_t count) noexcept {
    for (; count != 0; --count, data += 64) {
        std::uint32_t w[80];
        for (std::size_t i = 0; i < 16; ++i)
            w[i] = (std::uint32_t{data[4 * i]} << 24) | (std::uint32_t{data[4 * i + 1]} << 16) |
                   (std::uint32_t{data[4 * i + 2]} << 8) | std::uint32_t{data[4 * i + 3]};
        for (std::size_t i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
        const auto round = [&](std::uint32_t f, std::uint32_t k, std::uint32_t wi) {
            const std::uint32_t t = rotl(a, 5) + f + e + k + wi;
            e = d;
            d = c;
            c = rotl(b, 30);
            b = a;
            a = t;
        };
        // One loop per round function: no branch per round.
        for (std::size_t i = 0; i < 20; ++i) round(d ^ (b & (c ^ d)), 0x5A827999, w[i]);
        for (std::size_t i = 20; i < 40; ++i) round(b ^ c ^ d, 0x6ED9EBA1, w[i]);
        for (std::size_t i = 40; i < 60; ++i) round((b & c) | (d & (b | c)), 0x8F1BBCDC, w[i]);
        for (std::size_t i = 60; i < 80; ++i) round(b ^ c ^ d, 0xCA62C1D6, w[i]);
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
    }
}

#if SWIRL_SHA1_X86
/// Whether this CPU has the SHA extensions (and SSSE3 and SSE4.1, which `with_sha_extensions` also uses).
inline bool cpu_has_sha_extensions() noexcept {
    static const bool has = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
        const bool ssse3 = (c & (1u << 9)) != 0, sse41 = (c & (1u << 19)) != 0;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
        return ssse3 && sse41 && (b & (1u << 29)) != 0;
    }();
    return has;
}

/// Rounds 4g…4g+3 (group `G` of 20) and, from group 4 on, the schedule words they use. `m[G % 4]` holds the
/// words of group G once computed; `e` is what the rounds add, `e_saved` the state word a that `sha1nexte` turns
/// into the next group's e.
template <int G>
__attribute__((target("sha,sse4.1,ssse3"))) inline void sha_group(__m128i& abcd, __m128i& e, __m128i& e_saved,
                                                                   __m128i (&m)[4]) noexcept {
    if constexpr (G >= 4)  // W[i] = rotl(W[i-3] ^ W[i-8] ^ W[i-14] ^ W[i-16], 1), four at a time
        m[G % 4] = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(m[G % 4], m[(G + 1) % 4]), m[(G + 2) % 4]),
                                      m[(G + 3) % 4]);
    if constexpr (G == 0) e = _mm_add_epi32(e, m[0]);
    else e = _mm_sha1nexte_epu32(e_saved, m[G % 4]);
    e_saved = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, e, G / 5);
}

template <int... G>
__attribute__((target("sha,sse4.1,ssse3"))) inline void sha_groups(__m128i& abcd, __m128i& e, __m128i& e_saved,
                                                                    __m128i (&m)[4],
                                                                    std::integer_sequence<int, G...>) noexcept {
    (sha_group<G>(abcd, e, e_saved, m), ...);
}

/// `portable`, with the SHA extensions. Only where `cpu_has_sha_extensions()`.
__attribute__((target("sha,sse4.1,ssse3"))) inline void with_sha_extensions(State& state, const std::uint8_t* data,
                                                                             std::size_t count) noexcept {
    // Lanes hold words in reverse order (a in lane 3); the message words are big-endian.
    const __m128i reverse_bytes = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state.data())), 0x1B);
    __m128i e0 = _mm_set_epi32(static_cast<int>(state[4]), 0, 0, 0);
    for (; count != 0; --count, data += 64) {
        const __m128i abcd_before = abcd, e_before = e0;
        __m128i m[4];
        for (int i = 0; i < 4; ++i)
            m[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), reverse_bytes);
        __m128i e = e0, e_saved = abcd;
        sha_groups(abcd, e, e_saved, m, std::make_integer_sequence<int, 20>{});
        e0 = _mm_sha1nexte_epu32(e_saved, e_before);
        abcd = _mm_add_epi32(abcd, abcd_before);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state.data()), _mm_shuffle_epi32(abcd, 0x1B));
    state[4] = static_cast<std::uint32_t>(_mm_extract_epi32(e0, 3));
}
#endif

/// `portable`, or the SHA extensions where the CPU has them.
inline void compress(State& state, const std::uint8_t* data, std::size_t count) noexcept {
#if SWIRL_SHA1_X86
    if (cpu_has_sha_extensions()) return with_sha_extensions(state, data, count);
#endif
    portable(state, data, count);
}

} // namespace sha1_blocks

class Sha1 {
public:
    using Digest = std::array<std::uint8_t, 20>;

    void update(std::string_view data) noexcept {
        total_len_ += data.size();
        const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
        std::size_t n = data.size();
        if (block_len_ != 0) {
            const std::size_t take = std::min(n, 64 - block_len_);
            std::memcpy(block_.data() + block_len_, p, take);
            block_len_ += take;
            p += take;
            n -= take;
            if (block_len_ < 64) return;
            sha1_blocks::compress(state_, block_.data(), 1);
            block_len_ = 0;
        }
        if (n >= 64) {
            sha1_blocks::compress(state_, p, n / 64);
            p += n / 64 * 64;
            n %= 64;
        }
        if (n != 0) std::memcpy(block_.data(), p, n);
        block_len_ = n;
    }

    Digest finish() noexcept {
        const std::uint64_t bit_len = total_len_ * 8;
        block_[block_len_++] = 0x80;
        if (block_len_ > 56) {
            std::memset(block_.data() + block_len_, 0, 64 - block_len_);
            sha1_blocks::compress(state_, block_.data(), 1);
            block_len_ = 0;
        }
        std::memset(block_.data() + block_len_, 0, 56 - block_len_);
        for (std::size_t i = 0; i < 8; ++i) block_[56 + i] = static_cast<std::uint8_t>(bit_len >> (56 - 8 * i));
        sha1_blocks::compress(state_, block_.data(), 1);
        Digest out{};
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t b = 0; b < 4; ++b)
                out[i * 4 + b] = static_cast<std::uint8_t>(state_[i] >> (24 - 8 * b));
        return out;
    }

private:
    sha1_blocks::State state_{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    std::array<std::uint8_t, 64> block_{};
    std::size_t block_len_ = 0;
    std::uint64_t total_len_ = 0;
};

/// One-shot SHA-1 of `data`.
inline Sha1::Digest sha1(std::string_view data) noexcept {
    Sha1 h;
    h.update(data);
    return h.finish();
}

} // namespace swirl::detail
