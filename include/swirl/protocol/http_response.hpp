#pragma once
/// HTTP/1.1 responses: what a handshake or request handler fills in, and its serialisation.

#include <swirl/protocol/detail/ascii.hpp>
#include <swirl/protocol/http_request.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace swirl {

/// The standard reason phrase for `status` (RFC 9110 §15), or "Unknown".
constexpr std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

struct Response {
    int status = 200;
    std::string reason;  ///< empty: the standard phrase for `status`
    std::vector<Header> headers;
    std::string body;

    Response() = default;
    explicit Response(int status_code, std::string body_text = {}) : status(status_code), body(std::move(body_text)) {}

    std::optional<std::string_view> header(std::string_view name) const noexcept {
        for (const auto& h : headers)
            if (detail::iequals(h.name, name)) return std::string_view(h.value);
        return std::nullopt;
    }

    /// Replaces every header named `name` with one field.
    Response& set_header(std::string_view name, std::string_view value) {
        std::erase_if(headers, [&](const Header& h) { return detail::iequals(h.name, name); });
        headers.push_back({std::string(name), std::string(value)});
        return *this;
    }

    /// Removes every header named `name` (a handshake hook refusing the extension the server proposed, say).
    Response& remove_header(std::string_view name) {
        std::erase_if(headers, [&](const Header& h) { return detail::iequals(h.name, name); });
        return *this;
    }

    /// Adds a field even if one with that name exists (`Set-Cookie`).
    Response& add_header(std::string_view name, std::string_view value) {
        headers.push_back({std::string(name), std::string(value)});
        return *this;
    }

    /// Why this response cannot be sent as it is (a status outside 100–999, a header name that is not a token, a
    /// CR, LF or NUL in a value or the reason, which would let a caller inject fields), or nullopt when it can.
    std::optional<std::string_view> malformed() const noexcept {
        const auto unsafe = [](std::string_view text) {
            return std::ranges::any_of(text, [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
        };
        if (status < 100 || status > 999) return "status outside 100-999";
        if (unsafe(reason)) return "CR, LF or NUL in the reason phrase";
        for (const auto& h : headers) {
            if (!detail::is_token(h.name)) return "a header name that is not a token";
            if (unsafe(h.value)) return "CR, LF or NUL in a header value";
        }
        return std::nullopt;
    }

    /// The response as bytes on the wire. Adds `Content-Length` unless the status forbids a body or it is set.
    /// Throws `std::invalid_argument` when `malformed()`.
    std::string serialize() const {
        if (const auto why = malformed()) throw std::invalid_argument("malformed HTTP response: " + std::string(*why));
        std::string out;
        out.reserve(128 + body.size() + headers.size() * 48);
        out += "HTTP/1.1 ";
        out += std::to_string(status);
        out += ' ';
        out += reason.empty() ? reason_phrase(status) : std::string_view(reason);
        out += "\r\n";
        for (const auto& h : headers) {
            out += h.name;
            out += ": ";
            out += h.value;
            out += "\r\n";
        }
        const bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
        if (!bodiless && !header("Content-Length")) {
            out += "Content-Length: ";
            out += std::to_string(body.size());
            out += "\r\n";
        }
        out += "\r\n";
        if (!bodiless) out += body;
        return out;
    }
};

/// Parses a response status line and header fields (up to and excluding the blank line), for clients.
inline std::optional<Response> parse_response_head(std::string_view head) {
    Response res;
    const auto eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !digit(line[7]) || line[8] != ' ' ||
        !digit(line[9]) || !digit(line[10]) || !digit(line[11]) || (line.size() > 12 && line[12] != ' '))
        return std::nullopt;
    res.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (line.size() > 13) res.reason = std::string(line.substr(13));
    head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
    while (!head.empty()) {
        const auto end = head.find("\r\n");
        const std::string_view field = head.substr(0, end);
        head = end == std::string_view::npos ? std::string_view{} : head.substr(end + 2);
        if (field.empty()) break;
        const auto colon = field.find(':');
        if (colon == std::string_view::npos || !detail::is_token(field.substr(0, colon))) return std::nullopt;
        res.add_header(field.substr(0, colon), detail::trim(field.substr(colon + 1)));
    }
    return res;
}

} // namespace swirl
