#pragma once
/// Base64 (RFC 4648 §4, with padding) for the handshake key and accept value.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace swirl::detail {

inline constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Characters that `n` bytes encode to.
constexpr std::size_t base64_size(std::size_t n) noexcept { return (n + 2) / 3 * 4; }

/// Encodes `in` into `out`, which has room for `base64_size(in.size())` characters; returns the end of what it wrote.
inline char* base64_encode_into(std::span<const std::uint8_t> in, char* out) noexcept {
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
        *out++ = base64_alphabet[(v >> 18) & 63];
        *out++ = base64_alphabet[(v >> 12) & 63];
        *out++ = base64_alphabet[(v >> 6) & 63];
        *out++ = base64_alphabet[v & 63];
    }
    if (const std::size_t rest = in.size() - i; rest != 0) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8;
        *out++ = base64_alphabet[(v >> 18) & 63];
        *out++ = base64_alphabet[(v >> 12) & 63];
        *out++ = rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    return out;
}

inline std::string base64_encode(std::span<const std::uint8_t> in) {
    std::string out(base64_size(in.size()), '\0');
    base64_encode_into(in, out.data());
    return out;
}

inline std::string base64_encode(std::string_view in) {
    return base64_encode(std::span(reinterpret_cast<const std::uint8_t*>(in.data()), in.size()));
}

/// Strict decoding: length a multiple of 4, padding only at the end, no whitespace.
inline std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    auto value = [](char c) -> int {
        const auto pos = base64_alphabet.find(c);
        return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
    };
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        const std::size_t pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
        if (pad == 1 && in[i + 2] == '=') return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t j = 0; j < 4 - pad; ++j) {
            const int d = value(in[i + j]);
            if (d < 0) return std::nullopt;
            v = (v << 6) | static_cast<std::uint32_t>(d);
        }
        v <<= 6 * pad;
        out += static_cast<char>((v >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(v & 0xFF);
    }
    return out;
}

} // namespace swirl::detail
