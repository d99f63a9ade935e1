#pragma once
/// Shared by the libFuzzer targets: fatal checks, input-derived chunk sizes and a plain reference UTF-8 decoder.
/// Nothing here is part of swirl; it only has to be obviously right.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

/// Aborts (a crash to libFuzzer) with the failed condition when an invariant does not hold.
#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) ::fuzz::check_failed(#cond, __FILE__, __LINE__);                             \
    } while (false)

namespace fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", what, file, line);
    std::abort();
}

/// Reads fixed-size parameters from the front of the input; missing bytes read as zero.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) noexcept : rest_(data, size) {}

    std::uint8_t byte() noexcept {
        if (rest_.empty()) return 0;
        const std::uint8_t b = rest_.front();
        rest_ = rest_.subspan(1);
        return b;
    }

    /// Whatever is left: the byte stream under test.
    std::span<const std::uint8_t> rest() const noexcept { return rest_; }
    std::string_view rest_chars() const noexcept {
        return {reinterpret_cast<const char*>(rest_.data()), rest_.size()};
    }

private:
    std::span<const std::uint8_t> rest_;
};

/// Deterministic chunk sizes (xorshift64*) seeded from input bytes, so a crash replays exactly.
/// Mixes single bytes, small pieces and large ones, which is where incremental parsers tend to differ.
class Chunker {
public:
    explicit Chunker(std::uint64_t seed) noexcept : state_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}

    std::uint64_t next() noexcept {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545F4914F6CDD1Dull;
    }

    /// A chunk size in 1..left (left > 0).
    std::size_t size(std::size_t left) noexcept {
        const std::uint64_t r = next();
        std::size_t n;
        switch (r & 3) {
        case 0: n = 1; break;
        case 1: n = 1 + static_cast<std::size_t>((r >> 8) % 16); break;
        case 2: n = 1 + static_cast<std::size_t>((r >> 8) % 200); break;
        default: n = 1 + static_cast<std::size_t>((r >> 8) % left); break;
        }
        return std::min(n, left);
    }

    bool coin(unsigned one_in) noexcept { return next() % one_in == 0; }

private:
    std::uint64_t state_;
};

/// Result of the reference UTF-8 check.
struct Utf8Reference {
    std::size_t first_bad;  ///< index of the first byte no valid continuation can follow; size() if none
    bool complete;          ///< valid and ending on a character boundary
};

/// Reference UTF-8 (RFC 3629) decoding, written independently of swirl's table-driven validator: decode each
/// sequence's bits, and after every byte ask whether any completion can still give a scalar value in range for
/// its length (no overlongs, no surrogates, nothing above U+10FFFF).
inline Utf8Reference utf8_reference(std::string_view s) {
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const auto lead = static_cast<std::uint8_t>(s[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if ((lead & 0xE0) == 0xC0) { len = 2; cp = lead & 0x1Fu; }
        else if ((lead & 0xF0) == 0xE0) { len = 3; cp = lead & 0x0Fu; }
        else if ((lead & 0xF8) == 0xF0) { len = 4; cp = lead & 0x07u; }
        else return {i, false};  // a continuation byte or 0xF8..0xFF where a character should start

        const std::uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        const std::uint32_t max_cp = len == 2 ? 0x7FF : len == 3 ? 0xFFFF : 0x10FFFF;
        for (std::size_t known = 1; known <= len; ++known) {
            if (known > 1) {
                if (i + known - 1 >= n) return {n, false};  // the input ends inside this character
                const auto c = static_cast<std::uint8_t>(s[i + known - 1]);
                if ((c & 0xC0) != 0x80) return {i + known - 1, false};
                cp = (cp << 6) | (c & 0x3Fu);
            }
            // The unknown low bits can be anything: the final value lies in [lo, hi].
            const unsigned missing_bits = 6 * static_cast<unsigned>(len - known);
            const std::uint32_t lo = std::max(cp << missing_bits, min_cp);
            const std::uint32_t hi = std::min(cp << missing_bits | ((1u << missing_bits) - 1), max_cp);
            const bool possible = lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
            if (!possible) return {i + known - 1, false};
        }
        i += len;
    }
    return {n, true};
}

inline bool utf8_reference_valid(std::string_view s) { return utf8_reference(s).complete; }

} // namespace fuzz
