#pragma once
/// HTTP/1.1 request parsing (RFC 9112) with hard limits, enough for upgrade requests and small plain requests.

#include <swirl/protocol/detail/ascii.hpp>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace swirl {

struct Header {
    std::string name;
    std::string value;
};

/// A parsed HTTP request. Header lookups are case-insensitive.
struct Request {
    std::string method;
    std::string target;  ///< as sent: path plus optional `?query`
    int version_minor = 1;  ///< HTTP/1.x
    std::vector<Header> headers;
    std::string body;

    /// The target up to `?`.
    std::string_view path() const noexcept { return std::string_view(target).substr(0, target.find('?')); }

    /// The raw query string after `?` (empty when there is none).
    std::string_view query() const noexcept {
        const auto q = target.find('?');
        return q == std::string::npos ? std::string_view{} : std::string_view(target).substr(q + 1);
    }

    /// The first header with this name.
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        for (const auto& h : headers)
            if (detail::iequals(h.name, name)) return std::string_view(h.value);
        return std::nullopt;
    }

    /// How many header fields are named `name`.
    std::size_t header_count(std::string_view name) const noexcept {
        const auto named = [&](const Header& h) { return detail::iequals(h.name, name); };
        return static_cast<std::size_t>(std::ranges::count_if(headers, named));
    }

    /// Whether any header `name` carries `token` in its comma-separated list (`Connection: keep-alive, Upgrade`).
    bool has_token(std::string_view name, std::string_view token) const noexcept {
        for (const auto& h : headers)
            if (detail::iequals(h.name, name) && detail::has_list_token(h.value, token)) return true;
        return false;
    }

    /// The percent-decoded value of query parameter `name` (`+` is a space), or nullopt when absent.
    std::optional<std::string> query_param(std::string_view name) const {
        std::string_view q = query();
        while (!q.empty()) {
            const auto amp = q.find('&');
            const auto pair = q.substr(0, amp);
            const auto eq = pair.find('=');
            if (percent_decode(pair.substr(0, eq)) == name)
                return eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1));
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
        }
        return std::nullopt;
    }

    /// The value of cookie `name` from the `Cookie` header(s).
    std::optional<std::string_view> cookie(std::string_view name) const noexcept {
        for (const auto& h : headers) {
            if (!detail::iequals(h.name, "Cookie")) continue;
            std::string_view rest = h.value;
            while (!rest.empty()) {
                const auto semi = rest.find(';');
                const auto pair = detail::trim(rest.substr(0, semi));
                const auto eq = pair.find('=');
                if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
                if (semi == std::string_view::npos) break;
                rest.remove_prefix(semi + 1);
            }
        }
        return std::nullopt;
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default unless `Connection: close`).
    bool keep_alive() const noexcept {
        if (has_token("Connection", "close")) return false;
        return version_minor >= 1 || has_token("Connection", "keep-alive");
    }

    static std::string percent_decode(std::string_view s) {
        std::string out;
        out.reserve(s.size());
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            c = detail::ascii_lower(c);
            return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        };
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '+') out += ' ';
            else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
                out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
                i += 2;
            } else out += s[i];
        }
        return out;
    }
};

/// Whether the request asks for a WebSocket upgrade at all (`Upgrade: websocket`); the rest is checked by
/// `validate_upgrade` (handshake.hpp).
inline bool is_upgrade_request(const Request& req) noexcept { return req.has_token("Upgrade", "websocket"); }

struct RequestLimits {
    std::size_t max_request_line = 8 * 1024;   ///< longer request line → 414
    std::size_t max_header_bytes = 16 * 1024;  ///< request line plus headers; more → 431
    std::size_t max_headers = 100;             ///< more header fields → 431
    std::size_t max_body = 1024 * 1024;        ///< larger Content-Length → 413
};

/// Incremental request parser: feed bytes as they arrive, in any chunking.
class RequestParser {
public:
    enum class Status { incomplete, complete, error };
    struct Result {
        Status status;
        std::size_t consumed;  ///< bytes used; on `complete`, what follows belongs to the next protocol
    };

    explicit RequestParser(RequestLimits limits = {}) noexcept : limits_(limits) {}

    Result feed(std::string_view in) {
        if (status_ != Status::incomplete) return {status_, 0};
        if (!in_body_) {
            const std::size_t old = head_.size();
            const std::size_t room = limits_.max_header_bytes - old;
            // A head that arrives whole (the usual case) is parsed where it is; one in pieces is gathered in `head_`.
            const bool in_place = old == 0;
            if (!in_place) head_.append(in.substr(0, room));
            const std::string_view text = in_place ? in.substr(0, room) : std::string_view(head_);
            const std::size_t end = scan_head(text, old);
            if (status_ == Status::error) return {status_, 0};
            if (end == std::string::npos) {
                if (text.size() >= limits_.max_header_bytes) return fail(431, "request header too large");
                if (in_place) head_.assign(text);
                return {Status::incomplete, in.size()};
            }
            const std::size_t used = end - old;
            // Without the blank line; with the last header's line end.
            if (!parse_head(text.substr(0, line_start_))) return {status_, used};
            if (content_length_ == 0) {
                status_ = Status::complete;
                return {status_, used};
            }
            in_body_ = true;
            const auto r = feed(in.substr(used));
            return {r.status, used + r.consumed};
        }
        const std::size_t take = std::min(in.size(), content_length_ - request_.body.size());
        request_.body.append(in.substr(0, take));
        if (request_.body.size() == content_length_) status_ = Status::complete;
        return {status_, take};
    }

    Status status() const noexcept { return status_; }
    Request& request() noexcept { return request_; }
    /// The HTTP status to answer a malformed or over-limit request with.
    int error_status() const noexcept { return error_status_; }
    std::string_view error_reason() const noexcept { return error_reason_; }
    void reset() noexcept {
        const auto limits = limits_;
        *this = RequestParser(limits);
    }

private:
    /// Scans the head so far, `text`, from `from` for line ends: LF, ignoring a CR before it (RFC 9112 §2.2).
    /// Returns the size of the head through its blank line, or npos until that arrives or on error. Each verdict
    /// falls on the byte that decides it, so it does not depend on how the bytes arrive; a trailing CR may be the
    /// start of a CRLF.
    std::size_t scan_head(std::string_view text, std::size_t from) {
        const char* const data = text.data();
        const std::size_t size = text.size();
        // A CR that ended the bytes before is decided by the first byte after it.
        if (from != 0 && from < size && data[from - 1] == '\r' && data[from] != '\n')
            return fail(400, "bare CR in request header"), std::string::npos;
        for (std::size_t i = from;;) {
            const auto* lf = static_cast<const char*>(std::memchr(data + i, '\n', size - i));
            const std::size_t at = lf ? static_cast<std::size_t>(lf - data) : size;  // the line's LF, or the end so far
            // A CR before `at` is bare unless the LF follows it; one that ends the bytes so far is not decided yet.
            const auto* cr = static_cast<const char*>(std::memchr(data + i, '\r', at - i));
            const bool bare_cr = cr && cr + 1 != data + at;
            // The line's content ends at its CRLF (or LF), or at a bare CR: a request line too long by then is 414.
            const std::size_t content_end = bare_cr ? static_cast<std::size_t>(cr - data) : at - (at != 0 && data[at - 1] == '\r');
            if (line_start_ == 0 && content_end > limits_.max_request_line)
                return fail(414, "request line too long"), std::string::npos;
            if (bare_cr) return fail(400, "bare CR in request header"), std::string::npos;
            if (at == size) return std::string::npos;
            i = at + 1;
            if (content_end == line_start_) return i;
            line_start_ = i;
        }
    }

    /// The next line of `rest`, without its LF and a CR before it; `rest` moves past the LF.
    static std::string_view take_line(std::string_view& rest) noexcept {
        const auto lf = std::min(rest.find('\n'), rest.size());
        auto line = rest.substr(0, lf);
        rest.remove_prefix(std::min(lf + 1, rest.size()));
        if (line.ends_with('\r')) line.remove_suffix(1);
        return line;
    }

    /// Parses `head`: the request line and the fields, each line with its line end, without the blank line.
    bool parse_head(std::string_view head) {
        std::string_view rest = head;
        const std::string_view line = take_line(rest);

        const auto sp1 = line.find(' ');
        const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
            return fail(400, "malformed request line"), false;
        const auto method = line.substr(0, sp1);
        const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        const auto version = line.substr(sp2 + 1);
        if (!detail::is_token(method)) return fail(400, "malformed method"), false;
        if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c != 0x7F; }))
            return fail(400, "malformed request target"), false;
        if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
            version[5] > '9' || version[7] < '0' || version[7] > '9')
            return fail(400, "malformed HTTP version"), false;
        if (version[5] != '1') return fail(505, "HTTP version not supported"), false;
        request_.method = method;
        request_.target = target;
        request_.version_minor = version[7] - '0';
        // One allocation for the fields: each line left is one (the head keeps the last field's line end).
        request_.headers.reserve(std::min<std::size_t>(static_cast<std::size_t>(std::ranges::count(rest, '\n')), limits_.max_headers));

        while (!rest.empty()) {
            const std::string_view field = take_line(rest);
            if (field.empty() || detail::is_http_whitespace(field.front())) return fail(400, "obsolete line folding"), false;
            const auto colon = field.find(':');
            if (colon == std::string_view::npos) return fail(400, "header field without a colon"), false;
            const auto name = field.substr(0, colon);
            if (!detail::is_token(name)) return fail(400, "malformed header field name"), false;
            const auto value = detail::trim(field.substr(colon + 1));
            if (!std::all_of(value.begin(), value.end(), [](char c) { return c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7F); }))
                return fail(400, "control character in header field value"), false;
            if (request_.headers.size() == limits_.max_headers) return fail(431, "too many header fields"), false;
            request_.headers.push_back({std::string(name), std::string(value)});
        }

        // One pass over the fields for what the head itself must get right (each name is compared only with the
        // one of its length).
        std::size_t hosts = 0;
        bool transfer_encoding = false, lengths = false;
        for (const auto& h : request_.headers) {
            const std::string_view name = h.name;
            if (name.size() == 4) hosts += detail::iequals(name, "Host");
            else if (name.size() == 17) transfer_encoding = transfer_encoding || detail::iequals(name, "Transfer-Encoding");
            else if (name.size() == 14) lengths = lengths || detail::iequals(name, "Content-Length");
        }
        if (hosts > 1) return fail(400, "more than one Host field"), false;  // RFC 9112 §3.2
        if (transfer_encoding) return fail(501, "transfer codings are not supported"), false;
        if (!lengths) return true;
        const bool upgrade = is_upgrade_request(request_);
        bool seen_length = false;
        for (const auto& h : request_.headers) {
            if (!detail::iequals(h.name, "Content-Length")) continue;
            std::uint64_t n = 0;
            const auto* b = h.value.data();
            const auto* e = b + h.value.size();
            const auto [p, ec] = std::from_chars(b, e, n);
            if (h.value.empty() || ec != std::errc{} || p != e) return fail(400, "malformed Content-Length"), false;
            if (seen_length && n != content_length_) return fail(400, "conflicting Content-Length"), false;
            // Refused here, from the head, so that the body of an upgrade is never buffered only to be dropped.
            if (upgrade && n != 0) return fail(400, "upgrade request with a body"), false;
            if (n > limits_.max_body) return fail(413, "request body too large"), false;
            content_length_ = static_cast<std::size_t>(n);
            seen_length = true;
        }
        request_.body.reserve(content_length_);
        return true;
    }

    Result fail(int status, std::string_view reason) noexcept {
        status_ = Status::error;
        error_status_ = status;
        error_reason_ = reason;
        return {status_, 0};
    }

    RequestLimits limits_;
    Status status_ = Status::incomplete;
    std::string head_;  ///< a head that arrived in pieces, so far
    std::size_t line_start_ = 0;  ///< where the line being scanned starts in the head; 0 while in the request line
    bool in_body_ = false;
    std::size_t content_length_ = 0;
    Request request_;
    int error_status_ = 0;
    std::string_view error_reason_;
};

} // namespace swirl
