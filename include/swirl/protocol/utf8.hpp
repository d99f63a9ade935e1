#pragma once
/// Incremental UTF-8 validation (RFC 3629): fails on the first byte that cannot start or continue
/// a valid sequence, so a text message split across fragments or reads is rejected as early as possible.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace swirl {

namespace detail {
/// The index of the first byte with its high bit set in a machine word loaded from memory (`high` != 0: the word
/// with all but those bits cleared).
inline std::size_t first_high_byte(std::uint64_t high) noexcept {
    if constexpr (std::endian::native == std::endian::little) return static_cast<std::size_t>(std::countr_zero(high)) / 8;
    else return static_cast<std::size_t>(std::countl_zero(high)) / 8;
}

/// The first byte in [p, end) with its high bit set, or `end`: ASCII is skipped 64 bytes a step where SSE2 is, as on
/// every x86-64 (four 16-byte vectors), 32 elsewhere (four machine words). 512 bytes of ASCII take ~100 instructions
/// with SSE2, against ~620 a word at a time. What is left after whole steps is checked with one more load that ends
/// at `end` and overlaps bytes already found to be ASCII, so a 20-byte text costs two vector loads, not a byte loop.
inline const std::uint8_t* skip_ascii(const std::uint8_t* p, const std::uint8_t* end) noexcept {
    const std::uint8_t* const begin = p;
    constexpr std::uint64_t high_bits = 0x8080808080808080ull;
    const auto word_at = [](const std::uint8_t* at) {
        std::uint64_t word;
        std::memcpy(&word, at, 8);
        return word;
    };
#if defined(__SSE2__)
    const auto load = [](const std::uint8_t* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
    while (end - p >= 64) {
        const __m128i any = _mm_or_si128(_mm_or_si128(load(p), load(p + 16)), _mm_or_si128(load(p + 32), load(p + 48)));
        if (_mm_movemask_epi8(any) != 0) break;
        p += 64;
    }
    if (end - begin >= 16) {
        while (end - p >= 16) {
            if (const int high = _mm_movemask_epi8(load(p)); high != 0) return p + std::countr_zero(static_cast<unsigned>(high));
            p += 16;
        }
        if (p == end) return end;
        // The last 16 bytes; those before `p` are ASCII, so the first high bit found is the first at or after `p`.
        const int high = _mm_movemask_epi8(load(end - 16));
        return high == 0 ? end : end - 16 + std::countr_zero(static_cast<unsigned>(high));
    }
#else
    while (end - p >= 32 && ((word_at(p) | word_at(p + 8) | word_at(p + 16) | word_at(p + 24)) & high_bits) == 0) p += 32;
#endif
    if (end - begin >= 8) {
        for (; end - p >= 8; p += 8)
            if (const std::uint64_t high = word_at(p) & high_bits; high != 0) return p + first_high_byte(high);
        if (p == end) return end;
        const std::uint64_t high = word_at(end - 8) & high_bits;  // overlapping, as above
        return high == 0 ? end : end - 8 + first_high_byte(high);
    }
    while (p != end && *p < 0x80) ++p;
    return p;
}
} // namespace detail

class Utf8Validator {
public:
    /// Feeds more bytes; returns false once the input so far can no longer be valid UTF-8 (sticky).
    bool feed(std::string_view bytes) noexcept {
        if (failed_) return false;
        const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
        const auto* end = p + bytes.size();
        while (p != end) {
            if (need_ == 0) {
                p = detail::skip_ascii(p, end);
                if (p == end) break;
                if (!start_sequence(*p++)) return fail();
            } else {
                const std::uint8_t b = *p++;
                if (b < lo_ || b > hi_) return fail();
                lo_ = 0x80;
                hi_ = 0xBF;
                --need_;
            }
        }
        return true;
    }

    /// True when everything fed so far is valid and ends on a character boundary.
    bool complete() const noexcept { return !failed_ && need_ == 0; }
    bool failed() const noexcept { return failed_; }
    void reset() noexcept { *this = Utf8Validator{}; }

private:
    bool start_sequence(std::uint8_t b) noexcept {
        if (b >= 0xC2 && b <= 0xDF) { need_ = 1; }
        else if (b == 0xE0) { need_ = 2; lo_ = 0xA0; }            // no overlongs
        else if (b == 0xED) { need_ = 2; hi_ = 0x9F; }            // no UTF-16 surrogates
        else if (b >= 0xE1 && b <= 0xEF) { need_ = 2; }
        else if (b == 0xF0) { need_ = 3; lo_ = 0x90; }            // no overlongs
        else if (b >= 0xF1 && b <= 0xF3) { need_ = 3; }
        else if (b == 0xF4) { need_ = 3; hi_ = 0x8F; }            // nothing above U+10FFFF
        else return false;                                         // 0x80–0xC1, 0xF5–0xFF
        return true;
    }
    bool fail() noexcept { failed_ = true; return false; }

    std::uint8_t need_ = 0;
    std::uint8_t lo_ = 0x80;
    std::uint8_t hi_ = 0xBF;
    bool failed_ = false;
};

/// Whether `bytes` is all ASCII (and so valid UTF-8).
inline bool is_ascii(std::string_view bytes) noexcept {
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
    return detail::skip_ascii(p, p + bytes.size()) == p + bytes.size();
}

/// One-shot validation of a complete string.
inline bool is_valid_utf8(std::string_view bytes) noexcept {
    Utf8Validator v;
    return v.feed(bytes) && v.complete();
}

} // namespace swirl
