#pragma once
/// Finds the members of a JSON dispatcher message without building a DOM (see `JsonParser`).

#include <swirl/utf8.hpp>

#include <cstddef>
#include <optional>
#include <string_view>

namespace swirl::detail {

/// The members of a message `{"class":"…","action":"…","content":…}`, found without building a DOM: only the
/// content is parsed, by nlohmann. Anything less plain (escapes in a key, class or action; other members;
/// duplicates; malformed text) gives up, and the whole message is parsed as a DOM instead: the fast path accepts
/// only what the DOM accepts, with the same meaning.
struct JsonEnvelope {
    std::optional<std::string_view> controller;
    std::optional<std::string_view> action;
    std::optional<std::string_view> content;  ///< the content's JSON text, still to be parsed (and so checked)

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
                *member = member == &e.content ? value_text(text, i) : plain_string(text, i);
                if (!member->has_value()) return std::nullopt;
            } while (take(','));
            if (!take('}')) return std::nullopt;
        }
        if (i != text.size()) return std::nullopt;
        return e;
    }

    /// The string `text` holds when it is exactly one plain string literal (see `plain_string`): no parser needed.
    static std::optional<std::string_view> plain_string_literal(std::string_view text) noexcept {
        std::size_t i = 0;
        const auto s = plain_string(text, i);
        return s && i == text.size() ? s : std::nullopt;
    }

private:
    static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

    /// A string without escapes or control characters, in valid UTF-8, at `text[i]`; moves `i` past it.
    static std::optional<std::string_view> plain_string(std::string_view text, std::size_t& i) noexcept {
        if (i == text.size() || text[i] != '"') return std::nullopt;
        std::size_t end = i + 1;
        for (; end < text.size() && text[end] != '"'; ++end)
            if (text[end] == '\\' || static_cast<unsigned char>(text[end]) < 0x20) return std::nullopt;
        if (end == text.size()) return std::nullopt;
        const std::string_view s = text.substr(i + 1, end - i - 1);
        if (!is_valid_utf8(s)) return std::nullopt;
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
