#pragma once
/// The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1, list rules of RFC 9110 §5.6.1), without allocating:
///
///     extension-list = 1#extension
///     extension      = extension-token *( OWS ";" OWS extension-param )
///     extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
///
/// Empty list elements are skipped. An element with a syntax error is reported as malformed and parsing resumes
/// after the next comma outside a quoted string, so one bad offer does not hide the ones after it.

#include <swirl/protocol/detail/ascii.hpp>

#include <array>
#include <cstddef>
#include <string_view>

namespace swirl::detail {

struct ExtensionParam {
    std::string_view name;
    std::string_view value;  ///< a token, or a quoted-string's content with its quoted-pairs still escaped
    bool has_value = false;
    bool quoted = false;
};

struct ExtensionElement {
    static constexpr std::size_t max_params = 8;

    std::string_view name;  ///< the extension token (empty when malformed before it)
    std::array<ExtensionParam, max_params> params{};
    std::size_t param_count = 0;
    bool malformed = false;  ///< a syntax error somewhere in the element
    bool overflow = false;   ///< more than `max_params` parameters; the first ones are kept
};

/// Unescapes a quoted-string's content (`value` of a quoted parameter) into `out`; false when it does not fit.
/// Token values are copied as they are.
inline bool unescape_param(const ExtensionParam& p, char* out, std::size_t capacity, std::size_t& size) noexcept {
    size = 0;
    for (std::size_t i = 0; i < p.value.size(); ++i) {
        char c = p.value[i];
        if (p.quoted && c == '\\' && i + 1 < p.value.size()) c = p.value[++i];
        if (size == capacity) return false;
        out[size++] = c;
    }
    return true;
}

class ExtensionListParser {
public:
    explicit ExtensionListParser(std::string_view field_value) noexcept : s_(field_value) {}

    /// The next non-empty element into `e`; false at the end of the field value.
    bool next(ExtensionElement& e) noexcept {
        e = ExtensionElement{};
        while (true) {
            skip_ows();
            if (pos_ == s_.size()) return false;
            if (s_[pos_] != ',') break;
            ++pos_;  // an empty element
        }
        if (!parse_element(e)) {
            e.malformed = true;
            skip_to_comma();
        }
        if (pos_ < s_.size()) ++pos_;  // the comma
        return true;
    }

private:
    bool parse_element(ExtensionElement& e) noexcept {
        e.name = token();
        if (e.name.empty()) return false;
        skip_ows();
        while (pos_ < s_.size() && s_[pos_] == ';') {
            ++pos_;
            skip_ows();
            ExtensionParam p;
            p.name = token();
            if (p.name.empty()) return false;
            skip_ows();
            if (pos_ < s_.size() && s_[pos_] == '=') {
                ++pos_;
                skip_ows();
                p.has_value = true;
                if (pos_ < s_.size() && s_[pos_] == '"') {
                    p.quoted = true;
                    if (!quoted_string(p.value)) return false;
                } else {
                    p.value = token();
                    if (p.value.empty()) return false;
                }
                skip_ows();
            }
            if (e.param_count < ExtensionElement::max_params) e.params[e.param_count++] = p;
            else e.overflow = true;
        }
        return pos_ == s_.size() || s_[pos_] == ',';
    }

    std::string_view token() noexcept {
        const std::size_t start = pos_;
        while (pos_ < s_.size() && is_token_char(s_[pos_])) ++pos_;
        return s_.substr(start, pos_ - start);
    }

    /// At an opening quote: moves past the closing one and sets `content` (escapes kept). False when the string
    /// holds a character RFC 9110 §5.6.4 does not allow or never ends; `pos_` is then past the closing quote, or at
    /// the end.
    bool quoted_string(std::string_view& content) noexcept {
        const std::size_t start = ++pos_;
        bool ok = true;
        while (pos_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[pos_]);
            if (c == '"') {
                content = s_.substr(start, pos_ - start);
                ++pos_;
                return ok;
            }
            if (c == '\\') {
                if (++pos_ == s_.size()) break;
                const auto escaped = static_cast<unsigned char>(s_[pos_]);
                if (escaped != '\t' && (escaped < 0x20 || escaped == 0x7F)) ok = false;
            } else if (c != '\t' && (c < 0x20 || c == 0x7F)) {
                ok = false;
            }
            ++pos_;
        }
        return false;  // unterminated
    }

    /// Error recovery: to the next comma that is not inside a quoted string (or the end).
    void skip_to_comma() noexcept {
        while (pos_ < s_.size() && s_[pos_] != ',') {
            if (s_[pos_] == '"') {
                std::string_view ignored;
                quoted_string(ignored);
            } else {
                ++pos_;
            }
        }
    }

    void skip_ows() noexcept {
        while (pos_ < s_.size() && is_http_whitespace(s_[pos_])) ++pos_;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

} // namespace swirl::detail
