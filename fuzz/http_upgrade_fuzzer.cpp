/// libFuzzer target: the HTTP/1.1 request parser and the WebSocket opening handshake.
///
/// Input layout: [limits][chunk seed][subprotocol choice] then the request bytes.
/// The request is parsed whole, in input-derived chunks and again after reset(); all must agree. Whatever
/// parses goes through the Request accessors, validate_upgrade, select_subprotocol and accept_handshake /
/// reject_handshake, and the serialized response must read back identically with parse_response_head.

#include "fuzz_support.hpp"

#include <swirl/protocol/detail/ascii.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using swirl::Request;
using swirl::RequestLimits;
using swirl::RequestParser;
using Status = swirl::RequestParser::Status;

/// Small limits so that every 4xx path is reachable with short inputs, and the defaults.
RequestLimits limits_from(std::uint8_t b) {
    static constexpr std::array<std::size_t, 4> line{16, 100, 1000, 8 * 1024};
    static constexpr std::array<std::size_t, 4> head{32, 300, 2000, 16 * 1024};
    static constexpr std::array<std::size_t, 4> count{0, 1, 5, 100};
    static constexpr std::array<std::size_t, 4> body{0, 10, 100, 1024 * 1024};
    RequestLimits l;
    l.max_request_line = line[b & 3];
    l.max_header_bytes = head[(b >> 2) & 3];
    l.max_headers = count[(b >> 4) & 3];
    l.max_body = body[(b >> 6) & 3];
    return l;
}

/// What a parse ended with: enough to compare two parses of the same bytes.
struct Outcome {
    Status status = Status::incomplete;
    std::size_t consumed = 0;
    int error_status = 0;
    std::string error_reason;
};

/// Feeds `bytes` in pieces (one piece when `chunker` is null), checking the per-call contract.
Outcome parse(RequestParser& p, std::string_view bytes, fuzz::Chunker* chunker) {
    Outcome o;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        const std::size_t left = bytes.size() - pos;
        const std::size_t n = chunker ? chunker->size(left) : left;
        const auto r = p.feed(bytes.substr(pos, n));
        FUZZ_CHECK(r.consumed <= n);
        FUZZ_CHECK(r.status == p.status());
        pos += r.consumed;
        if (r.status == Status::incomplete) {
            FUZZ_CHECK(r.consumed == n);  // an incomplete request keeps everything it was given
            continue;
        }
        break;
    }
    o.status = p.status();
    o.consumed = pos;
    if (o.status == Status::error) {
        o.error_status = p.error_status();
        o.error_reason = std::string(p.error_reason());
        FUZZ_CHECK(o.error_status >= 400 && o.error_status <= 599 && !o.error_reason.empty());
    }
    // A finished parser ignores further input.
    if (o.status != Status::incomplete) {
        const auto again = p.feed(bytes.substr(pos));
        FUZZ_CHECK(again.status == o.status && again.consumed == 0);
    }
    return o;
}

bool same_request(const Request& a, const Request& b) {
    if (a.method != b.method || a.target != b.target || a.version_minor != b.version_minor || a.body != b.body ||
        a.headers.size() != b.headers.size())
        return false;
    for (std::size_t i = 0; i < a.headers.size(); ++i)
        if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
    return true;
}

/// Properties every accepted request has, and the accessors on it.
void check_request(const Request& req, const RequestLimits& limits) {
    FUZZ_CHECK(swirl::detail::is_token(req.method));
    FUZZ_CHECK(!req.target.empty());
    for (const char c : req.target) FUZZ_CHECK(c > 0x20 && c != 0x7F);
    FUZZ_CHECK(req.version_minor >= 0 && req.version_minor <= 9);
    FUZZ_CHECK(req.headers.size() <= limits.max_headers);
    FUZZ_CHECK(req.body.size() <= limits.max_body);
    for (const auto& h : req.headers) {
        FUZZ_CHECK(swirl::detail::is_token(h.name));
        FUZZ_CHECK(swirl::detail::trim(h.value) == h.value);
        for (const char c : h.value) FUZZ_CHECK(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7F));
        FUZZ_CHECK(req.header(h.name).has_value());
    }

    // path + '?' + query is the target again.
    const auto q = req.target.find('?');
    FUZZ_CHECK(req.path() == std::string_view(req.target).substr(0, q));
    if (q == std::string::npos) FUZZ_CHECK(req.query().empty());
    else FUZZ_CHECK(std::string(req.path()) + "?" + std::string(req.query()) == req.target);

    // The first query parameter is always found under its decoded name.
    if (const auto query = req.query(); !query.empty()) {
        const auto pair = query.substr(0, query.find('&'));
        const auto name = Request::percent_decode(pair.substr(0, pair.find('=')));
        FUZZ_CHECK(req.query_param(name).has_value());
    }
    (void)req.query_param("token");
    (void)req.cookie("session");
    (void)req.keep_alive();
    (void)swirl::is_upgrade_request(req);
    if (const auto key = req.header("Sec-WebSocket-Key")) (void)swirl::accept_key(*key);
}

/// The serialized response must read back as the same status, reason, headers and body.
void check_round_trip(const swirl::Response& res) {
    const std::string wire = res.serialize();
    const auto blank = wire.find("\r\n\r\n");
    FUZZ_CHECK(blank != std::string::npos);
    for (const auto head : {std::string_view(wire).substr(0, blank + 2), std::string_view(wire).substr(0, blank)}) {
        const auto back = swirl::parse_response_head(head);
        FUZZ_CHECK(back.has_value());
        FUZZ_CHECK(back->status == res.status);
        FUZZ_CHECK(back->reason == (res.reason.empty() ? std::string(swirl::reason_phrase(res.status)) : res.reason));
        std::size_t i = 0;
        for (; i < res.headers.size(); ++i) {
            FUZZ_CHECK(i < back->headers.size());
            FUZZ_CHECK(back->headers[i].name == res.headers[i].name && back->headers[i].value == res.headers[i].value);
        }
        const bool bodiless = res.status / 100 == 1 || res.status == 204 || res.status == 304;
        if (!bodiless && !res.header("Content-Length")) {
            FUZZ_CHECK(back->headers.size() == i + 1);
            FUZZ_CHECK(back->headers[i].name == "Content-Length" && back->headers[i].value == std::to_string(res.body.size()));
        } else {
            FUZZ_CHECK(back->headers.size() == i);
        }
    }
    FUZZ_CHECK(std::string_view(wire).substr(blank + 4) == (res.status == 101 ? std::string() : res.body));
}

/// Does any Sec-WebSocket-Protocol header offer exactly `name`?
bool offered(const Request& req, std::string_view name) {
    for (const auto& h : req.headers) {
        if (!swirl::detail::iequals(h.name, "Sec-WebSocket-Protocol")) continue;
        std::string_view list = h.value;
        while (true) {
            const auto comma = list.find(',');
            if (swirl::detail::trim(list.substr(0, comma)) == name) return true;
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return false;
}

void check_handshake(const Request& req, std::uint8_t choice) {
    // The server's subprotocols: a subset of these, in an input-chosen order.
    static const std::array<std::string, 5> names{"chat", "superchat", "v2.json.example", "mqtt", "Chat"};
    std::vector<std::string> supported;
    for (std::size_t i = 0; i < names.size(); ++i)
        if (choice & (1u << i)) supported.push_back(names[(i + (choice >> 5)) % names.size()]);

    const auto error = swirl::validate_upgrade(req);
    const auto selected = swirl::select_subprotocol(req, supported);
    if (selected) {
        FUZZ_CHECK(!selected->empty() && offered(req, *selected));
        FUZZ_CHECK(std::find(supported.begin(), supported.end(), *selected) != supported.end());
        // Server preference: nothing earlier in the list was offered.
        for (const auto& s : supported) {
            if (s == *selected) break;
            FUZZ_CHECK(!offered(req, s));
        }
    } else {
        for (const auto& s : supported) FUZZ_CHECK(!offered(req, s));
    }

    swirl::Response res;
    // A custom hook may add headers first; echo one from the request to push arbitrary (valid) text through.
    if (!req.headers.empty()) res.add_header(req.headers.front().name, req.headers.front().value);
    const std::size_t kept = res.headers.size();
    const bool accepted = swirl::accept_handshake(req, res, supported);
    FUZZ_CHECK(accepted == (error == swirl::HandshakeError::none));
    if (accepted) {
        const auto key = req.header("Sec-WebSocket-Key");
        FUZZ_CHECK(key && swirl::is_valid_client_key(*key));
        FUZZ_CHECK(res.status == 101 && res.body.empty());
        const auto accept = res.header("Sec-WebSocket-Accept");
        FUZZ_CHECK(accept && *accept == swirl::accept_key(*key) && accept->size() == 28);
        FUZZ_CHECK(res.header("Upgrade") == std::optional<std::string_view>("websocket"));
        FUZZ_CHECK(res.header("Connection") == std::optional<std::string_view>("Upgrade"));
        const auto protocol = res.header("Sec-WebSocket-Protocol");
        // The hook above may have echoed a Sec-WebSocket-Protocol of its own: it stays when none is selected.
        const bool hook_protocol =
            kept != 0 && swirl::detail::iequals(req.headers.front().name, "Sec-WebSocket-Protocol");
        if (!hook_protocol) FUZZ_CHECK(protocol.has_value() == selected.has_value());
        if (selected) FUZZ_CHECK(protocol && *protocol == *selected);
    } else {
        const bool version = error == swirl::HandshakeError::unsupported_version;
        FUZZ_CHECK(res.status == (version ? 426 : 400));
        FUZZ_CHECK(res.body == std::string(swirl::to_string(error)) + "\n");
        if (version) FUZZ_CHECK(res.header("Sec-WebSocket-Version") == std::optional<std::string_view>("13"));
    }
    // Headers the hook added survive unless the handshake itself sets that name.
    if (kept != 0) {
        const auto& first = req.headers.front();
        bool overwritten = false;
        for (const auto* name : {"Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                                 "Sec-WebSocket-Version", "Content-Type"})
            overwritten = overwritten || swirl::detail::iequals(first.name, name);
        if (!overwritten) FUZZ_CHECK(res.headers.front().name == first.name && res.headers.front().value == first.value);
    }
    check_round_trip(res);

    // reject_handshake on its own, for every error, on a fresh response.
    swirl::Response rejected;
    swirl::reject_handshake(rejected, error == swirl::HandshakeError::none ? swirl::HandshakeError::bad_key : error);
    check_round_trip(rejected);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const RequestLimits limits = limits_from(in.byte());
    fuzz::Chunker chunker(in.byte());
    const std::uint8_t choice = in.byte();
    const std::string_view bytes = in.rest_chars();

    RequestParser whole(limits);
    const Outcome a = parse(whole, bytes, nullptr);
    RequestParser pieces(limits);
    const Outcome b = parse(pieces, bytes, &chunker);

    // The chunking must not matter: same verdict, same request, same end of request.
    FUZZ_CHECK(a.status == b.status);
    FUZZ_CHECK(a.error_status == b.error_status);
    if (a.status == Status::complete) {
        FUZZ_CHECK(a.consumed == b.consumed);
        FUZZ_CHECK(same_request(whole.request(), pieces.request()));
    }

    // reset() gives a parser that behaves as new.
    whole.reset();
    FUZZ_CHECK(whole.status() == Status::incomplete);
    const Outcome c = parse(whole, bytes, nullptr);
    FUZZ_CHECK(c.status == a.status && c.consumed == a.consumed && c.error_status == a.error_status);

    if (a.status == Status::complete) {
        check_request(pieces.request(), limits);
        check_handshake(pieces.request(), choice);
    }

    // The client-side status-line parser on raw bytes: no crash, and anything it returns is well-formed.
    if (const auto res = swirl::parse_response_head(bytes)) {
        FUZZ_CHECK(res->status >= 0 && res->status <= 999);
        for (const auto& h : res->headers) FUZZ_CHECK(swirl::detail::is_token(h.name));
    }
    return 0;
}
