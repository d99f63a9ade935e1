#pragma once
/// Finds the members of a JSON dispatcher message without building a DOM (see `JsonParser`).

#include <swirl/protocol/utf8.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace swirl::detail {

/// True for the bytes a JSON string literal cannot hold as they are: `"`, `\` and control characters.
constexpr bool is_json_special(char c) noexcept { return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20; }

/// The high bit of each byte of `word` that `is_json_special`. The lowest one set is exact; those above it may be
/// spurious (a borrow carries into the next byte).
constexpr std::uint64_t json_special_bytes(std::uint64_t word) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t highs = 0x8080808080808080ull;
    const auto zero_bytes = [](std::uint64_t w) { return (w - ones) & ~w & highs; };
    const std::uint64_t below_space = (word - ones * 0x20) & ~word & highs;
    return below_space | zero_bytes(word ^ (ones * '"')) | zero_bytes(word ^ (ones * '\\'));
}

/// The index of the first byte of `text` at or after `i` that `is_json_special` (or, with `or_non_ascii`, is 0x80 or
/// above), or `text.size()`. Tests eight bytes at a time, and a word's lowest flagged byte is the answer: strings are
/// most of a message.
inline std::size_t find_json_special(std::string_view text, std::size_t i, bool or_non_ascii = false) noexcept {
    const std::uint64_t non_ascii = or_non_ascii ? 0x8080808080808080ull : 0;
    for (; text.size() - i >= 8; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, text.data() + i, 8);
        if (const std::uint64_t flags = json_special_bytes(word) | (word & non_ascii)) {
            if constexpr (std::endian::native == std::endian::little) return i + static_cast<std::size_t>(std::countr_zero(flags)) / 8;
            else break;
        }
    }
    while (i < text.size() && !is_json_special(text[i]) && (static_cast<unsigned char>(text[i]) & non_ascii) == 0) ++i;
    return i;
}

/// The members of a message `{"class":"…","action":"…","content":…}`, found without building a DOM: only the
/// content is parsed, by nlohmann, and not even that when it is a plain string. Anything less plain (escapes in a
/// key, class or action; other members; duplicates; malformed text) gives up, and the whole message is parsed as a
/// DOM instead: the fast path accepts only what the DOM accepts, with the same meaning.
struct JsonEnvelope {
    std::optional<std::string_view> controller;
    std::optional<std::string_view> action;
    std::optional<std::string_view> content;  ///< the content's JSON text, still to be parsed (and so checked)
    bool content_is_string = false;           ///< the content is a plain string literal: no parser needed

    /// False when no bracket but the envelope's own lies outside a string: the message then nests one level deep.
    /// (Content other than a plain string may hold brackets, even where it is not yet known to be valid JSON.)
    bool may_nest() const noexcept { return content && !content_is_string; }

    static std::optional<JsonEnvelope> scan(std::string_view text) noexcept {
        // nlohmann ends its input at a NUL byte: whether that makes text valid depends on where it falls.
        if (text.find('\0') != std::string_view::npos) return std::nullopt;
        std::size_t i = 0;
        const auto skip_space = [&] {
            while (i < text.size() && is_space(text[i])) ++i;
        };
        const auto take = [&](char c) {
            skip_space();
            if (i == text.size() || text[i] != c) return false;
            ++i;
            skip_space();
            return true;
        };
        JsonEnvelope e;
        if (!take('{')) return std::nullopt;
        if (!take('}')) {
            do {
                const auto key = plain_string(text, i);
                if (!key || !take(':')) return std::nullopt;
                std::optional<std::string_view>* member = *key == "class"    ? &e.controller
                                                          : *key == "action"  ? &e.action
                                                          : *key == "content" ? &e.content
                                                                              : nullptr;
                if (member == nullptr || member->has_value()) return std::nullopt;
                if (member == &e.content) {
                    const std::size_t begin = i;
                    e.content_is_string = plain_string(text, i).has_value();
                    e.content = e.content_is_string ? text.substr(begin, i - begin) : value_text(text, i);
                } else {
                    *member = plain_string(text, i);
                }
                if (!member->has_value()) return std::nullopt;
            } while (take(','));
            if (!take('}')) return std::nullopt;
        }
        if (i != text.size()) return std::nullopt;
        return e;
    }

private:
    static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

    /// A string without escapes or control characters, in valid UTF-8, at `text[i]`; moves `i` past it.
    static std::optional<std::string_view> plain_string(std::string_view text, std::size_t& i) noexcept {
        if (i == text.size() || text[i] != '"') return std::nullopt;
        const std::size_t stop = find_json_special(text, i + 1, true);  // all ASCII before it
        const bool ascii = stop == text.size() || static_cast<unsigned char>(text[stop]) < 0x80;
        const std::size_t end = ascii ? stop : find_json_special(text, stop);
        if (end == text.size() || text[end] != '"') return std::nullopt;
        if (!ascii && !is_valid_utf8(text.substr(stop, end - stop))) return std::nullopt;
        const std::string_view s = text.substr(i + 1, end - i - 1);
        i = end + 1;
        return s;
    }

    /// The text of the JSON value at `text[i]`, delimited by its quotes, brackets or the next `,` `}` or space;
    /// moves `i` past it. Whether it is valid JSON is for the parser to say.
    static std::optional<std::string_view> value_text(std::string_view text, std::size_t& i) noexcept {
        const std::size_t begin = i;
        if (i == text.size()) return std::nullopt;
        const char first = text[i];
        const auto value = [&] { return std::optional(text.substr(begin, i - begin)); };
        if (first == '"' || first == '{' || first == '[') {
            std::size_t depth = 0;
            bool in_string = false;
            for (; i < text.size(); ++i) {
                if (in_string) i = find_json_special(text, i);
                if (i == text.size()) break;
                const char c = text[i];
                bool closes = false;
                if (in_string) {
                    if (c == '\\') ++i;
                    else if (c == '"') {
                        in_string = false;
                        closes = depth == 0;
                    }
                } else if (c == '"') {
                    in_string = true;
                } else if (c == '{' || c == '[') {
                    ++depth;
                } else if (c == '}' || c == ']') {
                    closes = --depth == 0;
                }
                if (closes) {
                    ++i;
                    return value();
                }
            }
            return std::nullopt;
        }
        // A number, true, false or null. (Checking the first byte also keeps out a byte-order mark, which
        // nlohmann would skip at the start of the content but rejects inside the message.)
        if (std::string_view("-0123456789tfn").find(first) == std::string_view::npos) return std::nullopt;
        while (i < text.size() && text[i] != ',' && text[i] != '}' && !is_space(text[i])) ++i;
        return value();
    }
};
} // namespace swirl::detail
