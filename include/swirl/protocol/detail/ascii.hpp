#pragma once
/// ASCII helpers for HTTP tokens: case-insensitive comparison, trimming, comma-separated lists.

#include <array>
#include <cstddef>
#include <string_view>

namespace swirl::detail {

constexpr char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const char x = a[i], y = b[i];
        if (x == y) continue;  // field names mostly arrive in the case they are looked up in
        const char lower = static_cast<char>(x | 0x20);
        if ((x ^ y) != 0x20 || lower < 'a' || lower > 'z') return false;
    }
    return true;
}

constexpr bool is_http_whitespace(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_http_whitespace(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_http_whitespace(s.back())) s.remove_suffix(1);
    return s;
}

/// RFC 9110 tchar, by byte value: the characters allowed in a token (header names, methods).
inline constexpr std::array<bool, 256> token_chars = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c)
        table[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                             std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    return table;
}();

constexpr bool is_token_char(char c) noexcept { return token_chars[static_cast<unsigned char>(c)]; }

constexpr bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_token_char(c)) return false;
    return true;
}

/// Calls `f(item)` for each trimmed, non-empty element of a comma-separated list; stops early when f returns true.
template <class F>
constexpr bool any_list_item(std::string_view list, F&& f) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        const auto item = trim(list.substr(0, comma));
        if (!item.empty() && f(item)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

/// Whether the comma-separated `list` holds `token`, compared case-insensitively (`Connection: keep-alive, Upgrade`).
constexpr bool has_list_token(std::string_view list, std::string_view token) {
    return any_list_item(list, [&](std::string_view item) { return iequals(item, token); });
}

} // namespace swirl::detail
