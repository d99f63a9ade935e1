#pragma once
/// Incremental UTF-8 validation (RFC 3629): fails on the first byte that cannot start or continue
/// a valid sequence, so a text message split across fragments or reads is rejected as early as possible.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace swirl {

class Utf8Validator {
public:
    /// Feeds more bytes; returns false once the input so far can no longer be valid UTF-8 (sticky).
    bool feed(std::string_view bytes) noexcept {
        if (failed_) return false;
        const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
        const auto* end = p + bytes.size();
        while (p != end) {
            if (need_ == 0) {
                // Fast path: skip ASCII a word at a time.
                while (end - p >= 8) {
                    std::uint64_t word;
                    std::memcpy(&word, p, 8);
                    if (word & 0x8080808080808080ull) break;
                    p += 8;
                }
                if (p == end) break;
                const std::uint8_t b = *p++;
                if (b < 0x80) continue;
                if (!start_sequence(b)) return fail();
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

/// One-shot validation of a complete string.
inline bool is_valid_utf8(std::string_view bytes) noexcept {
    Utf8Validator v;
    return v.feed(bytes) && v.complete();
}

} // namespace swirl
