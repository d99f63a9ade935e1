#pragma once
/// Client-to-server payload masking (RFC 6455 §5.3), a machine word at a time.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace swirl {

using MaskKey = std::array<std::uint8_t, 4>;

namespace detail {
/// The key rotated to start at `phase`, repeated to fill 8 bytes (in memory order).
inline std::uint64_t mask_word(const MaskKey& key, std::size_t phase) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::uint32_t k;
        std::memcpy(&k, key.data(), 4);
        k = std::rotr(k, static_cast<int>(8 * (phase & 3)));  // byte `phase` first
        return k | (static_cast<std::uint64_t>(k) << 32);
    } else {
        std::uint8_t bytes[8];
        for (std::size_t i = 0; i < 8; ++i) bytes[i] = key[(phase + i) & 3];
        std::uint64_t word;
        std::memcpy(&word, bytes, 8);
        return word;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SWIRL_MASK_AVX2 1
/// Whether this CPU has AVX2: checked once, at start-up (a plain load on the hot path, no guard).
inline const bool cpu_has_avx2 = [] {
    __builtin_cpu_init();  // the check may run before the constructor that initialises what it reads
    return __builtin_cpu_supports("avx2") != 0;
}();

/// XORs whole 64-byte steps of `in` with `word` into `out`, 32 bytes a vector; returns the bytes done (a multiple of
/// 64, so `word` still lines up after them). Only where `cpu_has_avx2`.
__attribute__((target("avx2"))) inline std::size_t mask_avx2(unsigned char* out, const unsigned char* in, std::size_t n,
                                                              std::uint64_t word) noexcept {
    const __m256i key = _mm256_set1_epi64x(static_cast<long long>(word));
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i + 32));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_xor_si256(a, key));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), _mm256_xor_si256(b, key));
    }
    return i;
}
#else
#define SWIRL_MASK_AVX2 0
#endif
} // namespace detail

#if defined(__GNUC__) && !defined(__clang__)
// g++ 12 at -O3, inlining this into a caller with a small buffer, warns that the vectorised word loop writes 16
// bytes into 8 (-Wstringop-overflow): that loop only runs while 8 bytes remain. Kept quiet for -Werror users.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
namespace detail {
/// Bytes [i, n) a word, then 4 bytes, then a byte at a time; `i` is a multiple of 8, where `word` lines up.
inline void mask_words(unsigned char* out, const unsigned char* in, std::size_t i, std::size_t n,
                       std::uint64_t word) noexcept {
    for (; n - i >= 8; i += 8) {
        std::uint64_t chunk;
        std::memcpy(&chunk, in + i, 8);
        chunk ^= word;
        std::memcpy(out + i, &chunk, 8);
    }
    // Byte j of the word still masks byte i + j, and the key repeats every 4 bytes: the word's first 4 bytes mask
    // the next 4.
    unsigned char tail[8];
    std::memcpy(tail, &word, 8);
    if (n - i >= 4) {
        std::uint32_t chunk, key4;
        std::memcpy(&chunk, in + i, 4);
        std::memcpy(&key4, tail, 4);
        chunk ^= key4;
        std::memcpy(out + i, &chunk, 4);
        i += 4;
    }
    for (std::size_t j = 0; i < n; ++i, ++j) out[i] = static_cast<unsigned char>(in[i] ^ tail[j]);
}

/// 32 bytes and more: vectors first. Kept out of line, so that the short path inlines where it is called.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline void mask_bulk(unsigned char* out, const unsigned char* in, std::size_t n, std::uint64_t word) noexcept {
    std::size_t i = 0;
#if SWIRL_MASK_AVX2
    if (n >= 128 && cpu_has_avx2) i = mask_avx2(out, in, n, word);  // 1.6x the bytes per instruction
#endif
#if defined(__GNUC__)
    // Two 16-byte vectors a step: g++ 12 at -O2 does not vectorise the word loop well (20 GB/s in cache against
    // 40 GB/s for this one, which clang reaches either way).
    using Vector = std::uint64_t __attribute__((vector_size(16)));
    const Vector vector_word = {word, word};
    for (; i + 32 <= n; i += 32) {
        Vector a, b;
        std::memcpy(&a, in + i, 16);
        std::memcpy(&b, in + i + 16, 16);
        a ^= vector_word;
        b ^= vector_word;
        std::memcpy(out + i, &a, 16);
        std::memcpy(out + i + 16, &b, 16);
    }
#endif
    mask_words(out, in, i, n, word);
}
} // namespace detail

/// XORs `n` bytes from `src` with the key into `dst` (which may equal `src`), starting at key byte `phase`.
/// Returns the phase to continue with, so a payload can be unmasked in arbitrary chunks.
inline std::size_t mask_copy(void* dst, const void* src, std::size_t n, const MaskKey& key, std::size_t phase = 0) noexcept {
    auto* out = static_cast<unsigned char*>(dst);
    const auto* in = static_cast<const unsigned char*>(src);
    phase &= 3;
    const std::uint64_t word = detail::mask_word(key, phase);
    if (n >= 32) detail::mask_bulk(out, in, n, word);
    else detail::mask_words(out, in, 0, n, word);
    return (phase + n) & 3;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// Masks or unmasks `n` bytes in place; returns the phase to continue with.
inline std::size_t apply_mask(void* data, std::size_t n, const MaskKey& key, std::size_t phase = 0) noexcept {
    return mask_copy(data, data, n, key, phase);
}

} // namespace swirl
