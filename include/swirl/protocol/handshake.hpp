#pragma once
/// The server side of the RFC 6455 §4.2 opening handshake, as functions a custom handshake hook can reuse.

#include <swirl/protocol/detail/ascii.hpp>
#include <swirl/protocol/detail/base64.hpp>
#include <swirl/protocol/detail/sha1.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace swirl {

inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Characters in a `Sec-WebSocket-Accept` value.
inline constexpr std::size_t accept_key_size = detail::base64_size(20);

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)), into `out`.
inline void accept_key_into(std::string_view client_key, std::span<char, accept_key_size> out) noexcept {
    detail::Sha1 h;
    h.update(client_key);
    h.update(websocket_guid);
    const auto digest = h.finish();
    detail::base64_encode_into(digest, out.data());
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)).
inline std::string accept_key(std::string_view client_key) {
    std::string key(accept_key_size, '\0');
    accept_key_into(client_key, std::span<char, accept_key_size>(key.data(), accept_key_size));
    return key;
}

/// A valid `Sec-WebSocket-Key`: 24 characters matching `^[+/0-9A-Za-z]{21}[AQgw]==$`, decoding to 16 bytes.
inline bool is_valid_client_key(std::string_view key) noexcept {
    if (key.size() != 24 || key.substr(22) != "==") return false;
    const auto in_alphabet = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    };
    if (!std::all_of(key.begin(), key.begin() + 21, in_alphabet)) return false;
    return key[21] == 'A' || key[21] == 'Q' || key[21] == 'g' || key[21] == 'w';
}

enum class HandshakeError {
    none,
    not_get,              ///< 400
    not_http11,           ///< 400
    missing_host,         ///< 400
    missing_upgrade,      ///< 400
    missing_connection,   ///< 400
    unsupported_version,  ///< 426 with `Sec-WebSocket-Version: 13`
    bad_key,              ///< 400, also when sent more than once
    repeated_version,     ///< 400: more than one `Sec-WebSocket-Version` field
};

constexpr std::string_view to_string(HandshakeError e) noexcept {
    switch (e) {
    case HandshakeError::none: return "none";
    case HandshakeError::not_get: return "WebSocket upgrade must use GET";
    case HandshakeError::not_http11: return "WebSocket upgrade needs HTTP/1.1";
    case HandshakeError::missing_host: return "missing Host header";
    case HandshakeError::missing_upgrade: return "missing \"Upgrade: websocket\"";
    case HandshakeError::missing_connection: return "missing \"Connection: Upgrade\"";
    case HandshakeError::unsupported_version: return "unsupported Sec-WebSocket-Version (13 is supported)";
    case HandshakeError::bad_key: return "invalid Sec-WebSocket-Key";
    case HandshakeError::repeated_version: return "more than one Sec-WebSocket-Version field";
    }
    return "unknown";
}

/// Checks every requirement of RFC 6455 §4.2.1 on a client's opening handshake.
inline HandshakeError validate_upgrade(const Request& req) noexcept {
    if (req.method != "GET") return HandshakeError::not_get;
    if (req.version_minor < 1) return HandshakeError::not_http11;
    // One pass over the fields (each name is compared only with the one of its length).
    bool host = false, upgrade = false, connection = false;
    std::size_t versions = 0, keys = 0;
    std::string_view version, key;
    for (const auto& h : req.headers) {
        const std::string_view name = h.name;
        switch (name.size()) {
        case 4: host = host || detail::iequals(name, "Host"); break;
        case 7: upgrade = upgrade || (detail::iequals(name, "Upgrade") && detail::has_list_token(h.value, "websocket")); break;
        case 10: connection = connection || (detail::iequals(name, "Connection") && detail::has_list_token(h.value, "Upgrade")); break;
        case 17:
            if (detail::iequals(name, "Sec-WebSocket-Key") && keys++ == 0) key = h.value;
            break;
        case 21:
            if (detail::iequals(name, "Sec-WebSocket-Version") && versions++ == 0) version = h.value;
            break;
        default: break;
        }
    }
    if (!host) return HandshakeError::missing_host;
    if (!upgrade) return HandshakeError::missing_upgrade;
    if (!connection) return HandshakeError::missing_connection;
    // Neither field may appear more than once (RFC 6455 §11.3.1, §11.3.5).
    if (versions > 1) return HandshakeError::repeated_version;
    if (versions == 0 || detail::trim(version) != "13") return HandshakeError::unsupported_version;
    if (keys != 1 || !is_valid_client_key(key)) return HandshakeError::bad_key;
    return HandshakeError::none;
}

/// The subprotocol to answer with: the first of `supported` (server preference) that the client offered.
/// Names compare case-sensitively. Nullopt when the client offered none of them, or none at all.
inline std::optional<std::string_view> select_subprotocol(const Request& req, std::span<const std::string> supported) noexcept {
    for (const auto& name : supported)
        for (const auto& h : req.headers)
            if (detail::iequals(h.name, "Sec-WebSocket-Protocol") &&
                detail::any_list_item(h.value, [&](std::string_view offered) { return offered == name; }))
                return std::string_view(name);
    return std::nullopt;
}

/// Fills `res` with the error response for a failed handshake (400, or 426 naming version 13).
inline void reject_handshake(Response& res, HandshakeError error) {
    res.status = error == HandshakeError::unsupported_version ? 426 : 400;
    if (error == HandshakeError::unsupported_version) res.set_header("Sec-WebSocket-Version", "13");
    res.set_header("Content-Type", "text/plain");
    res.body = std::string(to_string(error)) + "\n";
}

/// The default handshake: validates `req` and fills `res` with `101 Switching Protocols`, the accept key and a
/// subprotocol (only one the client offered). On failure fills in the error response instead.
/// Returns whether the upgrade was accepted. Headers already in `res` (cookies, ...) are kept.
inline bool accept_handshake(const Request& req, Response& res, std::span<const std::string> subprotocols = {}) {
    if (const auto error = validate_upgrade(req); error != HandshakeError::none) {
        reject_handshake(res, error);
        return false;
    }
    res.status = 101;
    res.reason.clear();
    res.body.clear();
    res.headers.reserve(res.headers.size() + 4);
    res.set_header("Upgrade", "websocket");
    res.set_header("Connection", "Upgrade");
    res.set_header("Sec-WebSocket-Accept", accept_key(*req.header("Sec-WebSocket-Key")));
    if (const auto protocol = select_subprotocol(req, subprotocols)) res.set_header("Sec-WebSocket-Protocol", *protocol);
    return true;
}

/// The response `accept_handshake` answers with when it selects no subprotocol and nothing else was set (no
/// extension), as `Response::serialize` sends it, built in place: for a server that answers with the RFC default,
/// without a `Response`. `client_key` is the request's `Sec-WebSocket-Key`, valid (`validate_upgrade`).
class SwitchingProtocols {
public:
    explicit SwitchingProtocols(std::string_view client_key) noexcept {
        std::copy(head.begin(), head.end(), bytes_);
        accept_key_into(client_key, std::span<char, accept_key_size>(bytes_ + head.size(), accept_key_size));
        std::copy(tail.begin(), tail.end(), bytes_ + head.size() + accept_key_size);
    }

    std::string_view bytes() const noexcept { return {bytes_, sizeof bytes_}; }

private:
    static constexpr std::string_view head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
    static constexpr std::string_view tail = "\r\n\r\n";
    char bytes_[head.size() + accept_key_size + tail.size()];
};

} // namespace swirl
