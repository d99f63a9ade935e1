#pragma once
/// SHA-1 (FIPS 180-4), only what the WebSocket handshake needs. Not for security uses.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace swirl::detail {

class Sha1 {
public:
    using Digest = std::array<std::uint8_t, 20>;

    void update(std::string_view data) noexcept {
        for (char ch : data) {
            block_[block_len_++] = static_cast<std::uint8_t>(ch);
            if (block_len_ == 64) {
                compress();
                block_len_ = 0;
            }
        }
        total_len_ += data.size();
    }

    Digest finish() noexcept {
        const std::uint64_t bit_len = total_len_ * 8;
        block_[block_len_++] = 0x80;
        if (block_len_ > 56) {
            while (block_len_ < 64) block_[block_len_++] = 0;
            compress();
            block_len_ = 0;
        }
        while (block_len_ < 56) block_[block_len_++] = 0;
        for (int i = 7; i >= 0; --i) block_[block_len_++] = static_cast<std::uint8_t>(bit_len >> (i * 8));
        compress();
        Digest out{};
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t b = 0; b < 4; ++b)
                out[i * 4 + b] = static_cast<std::uint8_t>(state_[i] >> (24 - 8 * b));
        return out;
    }

private:
    static constexpr std::uint32_t rotl(std::uint32_t x, int n) noexcept { return (x << n) | (x >> (32 - n)); }

    void compress() noexcept {
        std::uint32_t w[80];
        for (std::size_t i = 0; i < 16; ++i)
            w[i] = (std::uint32_t{block_[4 * i]} << 24) | (std::uint32_t{block_[4 * i + 1]} << 16) |
                   (std::uint32_t{block_[4 * i + 2]} << 8) | std::uint32_t{block_[4 * i + 3]};
        for (std::size_t i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
        for (std::size_t i = 0; i < 80; ++i) {
            std::uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            const std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rotl(b, 30); b = a; a = t;
        }
        state_[0] += a; state_[1] += b; state_[2] += c; state_[3] += d; state_[4] += e;
    }

    std::array<std::uint32_t, 5> state_{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
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
