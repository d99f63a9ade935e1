#include "doctest.hpp"

#include <swirl/protocol/handshake.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using swirl::HandshakeError;
using swirl::Request;
using swirl::RequestParser;
using swirl::Response;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
// RFC 6455 §1.3 and §4.2.2: SHA-1 of the key plus the GUID, base64 (28 characters).
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const std::string default_headers =
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n";

/// Parses a request made of `request_line` and `headers` (each ending in CRLF).
Request parse(std::string_view request_line, std::string_view headers) {
    RequestParser p;
    const std::string text = std::string(request_line) + "\r\n" + std::string(headers) + "\r\n";
    const auto r = p.feed(text);
    REQUIRE(r.status == RequestParser::Status::complete);
    return p.request();
}

Request upgrade(std::string_view headers = default_headers) { return parse("GET /chat HTTP/1.1", headers); }

/// `default_headers` with the line starting with `name` replaced by `line` (or removed when `line` is empty).
std::string replace_line(std::string_view name, std::string_view line) {
    std::string out;
    std::string_view rest = default_headers;
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        const auto field = rest.substr(0, eol + 2);
        if (field.starts_with(name)) out += line;
        else out += field;
        rest.remove_prefix(eol + 2);
    }
    return out;
}

std::string key_from_bytes(const std::array<std::uint8_t, 16>& bytes) { return swirl::detail::base64_encode(bytes); }

} // namespace

TEST_CASE("accept_key matches the RFC 6455 example") {
    CHECK(swirl::accept_key(rfc_key) == rfc_accept);
    CHECK(swirl::accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    CHECK(swirl::accept_key("x3JJHMbDL1EzLkh9GBhXDw==").size() == 28);
}

TEST_CASE("SwitchingProtocols is byte for byte what accept_handshake and serialize send") {
    // The RFC's key, and keys whose SHA-1 digests exercise every base64 character position.
    for (const std::string_view key : {rfc_key, std::string_view("AAAAAAAAAAAAAAAAAAAAAA=="), std::string_view("////////////////////ww=="),
                                       std::string_view("x3JJHMbDL1EzLkh9GBhXDw==")}) {
        CAPTURE(key);
        const Request req = upgrade(
            "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(key) +
            "\r\nSec-WebSocket-Version: 13\r\n");
        Response res;
        REQUIRE(swirl::accept_handshake(req, res));
        CHECK(swirl::SwitchingProtocols(key).bytes() == res.serialize());
    }
    CHECK(swirl::SwitchingProtocols(rfc_key).bytes().find(rfc_accept) != std::string_view::npos);
}

TEST_CASE("is_valid_client_key accepts base64 encodings of 16 bytes") {
    std::array<std::uint8_t, 16> zeros{};
    std::array<std::uint8_t, 16> ones{};
    std::array<std::uint8_t, 16> counting{};
    std::array<std::uint8_t, 16> mixed{};
    for (std::size_t i = 0; i < 16; ++i) {
        ones[i] = 0xFF;
        counting[i] = static_cast<std::uint8_t>(i);
        mixed[i] = static_cast<std::uint8_t>(i * 97 + 13);
    }
    for (const auto& bytes : {zeros, ones, counting, mixed}) {
        const auto key = key_from_bytes(bytes);
        INFO("key ", key);
        CHECK(key.size() == 24);
        CHECK(swirl::is_valid_client_key(key));
    }
    // The last byte's low two bits pick the 22nd character: A, Q, g or w.
    std::string last_chars;
    for (int low_bits = 0; low_bits < 4; ++low_bits) {
        std::array<std::uint8_t, 16> bytes{};
        bytes[15] = static_cast<std::uint8_t>(0xA4 | low_bits);
        const auto key = key_from_bytes(bytes);
        INFO("key ", key);
        CHECK(swirl::is_valid_client_key(key));
        last_chars += key[21];
    }
    CHECK(last_chars == "AQgw");
    CHECK(swirl::is_valid_client_key(rfc_key));
    CHECK(swirl::is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    CHECK(swirl::is_valid_client_key("/////////////////////w=="));
    CHECK(swirl::is_valid_client_key("+++++++++++++++++++++g=="));
}

TEST_CASE("is_valid_client_key rejects keys of the wrong shape") {
    CHECK_FALSE(swirl::is_valid_client_key(""));
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25 characters
    CHECK_FALSE(swirl::is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));  // 32 bytes' worth
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));   // missing "=="
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ=A"));
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZ==="));
    CHECK_FALSE(swirl::is_valid_client_key("dGhlIHNhbXBsZSBub25jZR=="));   // 22nd char not in [AQgw]
    CHECK_FALSE(swirl::is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAB=="));
    CHECK_FALSE(swirl::is_valid_client_key("AAAAAAAAAAAAAAAAAAAAA/=="));
    // Characters outside the base64 alphabet, each at a position of an otherwise valid key.
    for (const char c : {'-', '_', ' ', '=', '.', '\0', '\xC3'}) {
        for (const std::size_t pos : {0u, 10u, 20u}) {
            std::string key(rfc_key);
            key[pos] = c;
            INFO("char ", static_cast<int>(c), " at ", pos);
            REQUIRE(key.size() == 24);
            CHECK_FALSE(swirl::is_valid_client_key(key));
        }
    }
}

TEST_CASE("validate_upgrade accepts a correct upgrade request") {
    CHECK(swirl::validate_upgrade(upgrade()) == HandshakeError::none);
    CHECK(swirl::is_upgrade_request(upgrade()));
    // Case-insensitive names and tokens.
    CHECK(swirl::validate_upgrade(parse("GET / HTTP/1.1",
                                        "host: h\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n"
                                        "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\nsec-websocket-version: 13\r\n")) ==
          HandshakeError::none);
}

TEST_CASE("validate_upgrade reports each missing or invalid requirement") {
    CHECK(swirl::validate_upgrade(parse("POST /chat HTTP/1.1", default_headers)) == HandshakeError::not_get);
    CHECK(swirl::validate_upgrade(parse("get /chat HTTP/1.1", default_headers)) == HandshakeError::not_get);
    CHECK(swirl::validate_upgrade(parse("GET /chat HTTP/1.0", default_headers)) == HandshakeError::not_http11);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Host", ""))) == HandshakeError::missing_host);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Upgrade", ""))) == HandshakeError::missing_upgrade);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Upgrade", "Upgrade: h2c\r\n"))) == HandshakeError::missing_upgrade);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Upgrade", "Upgrade: websockets\r\n"))) ==
          HandshakeError::missing_upgrade);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Connection", ""))) == HandshakeError::missing_connection);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Connection", "Connection: keep-alive\r\n"))) ==
          HandshakeError::missing_connection);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Version", ""))) ==
          HandshakeError::unsupported_version);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n"))) ==
          HandshakeError::unsupported_version);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Version", "Sec-WebSocket-Version: 14\r\n"))) ==
          HandshakeError::unsupported_version);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Key", ""))) == HandshakeError::bad_key);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Key", "Sec-WebSocket-Key: short==\r\n"))) ==
          HandshakeError::bad_key);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"))) ==
          HandshakeError::bad_key);
}

TEST_CASE("validate_upgrade accepts Connection with several tokens") {
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Connection", "Connection: keep-alive, Upgrade\r\n"))) ==
          HandshakeError::none);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Connection", "Connection: keep-alive\r\nConnection: Upgrade\r\n"))) ==
          HandshakeError::none);
    CHECK(swirl::validate_upgrade(upgrade(replace_line("Upgrade", "Upgrade: h2c, websocket\r\n"))) == HandshakeError::none);
}

TEST_CASE("to_string describes every handshake error") {
    CHECK(swirl::to_string(HandshakeError::none) == "none");
    for (const auto e : {HandshakeError::not_get, HandshakeError::not_http11, HandshakeError::missing_host,
                         HandshakeError::missing_upgrade, HandshakeError::missing_connection,
                         HandshakeError::unsupported_version, HandshakeError::bad_key, HandshakeError::repeated_version}) {
        CHECK_FALSE(swirl::to_string(e).empty());
        CHECK(swirl::to_string(e) != "unknown");
    }
}

TEST_CASE("accept_handshake fills a 101 response and keeps headers already set") {
    Response res;
    res.add_header("Set-Cookie", "sid=42; HttpOnly");
    res.reason = "Stale";
    res.body = "stale body";
    CHECK(swirl::accept_handshake(upgrade(), res));
    CHECK(res.status == 101);
    CHECK(res.reason.empty());
    CHECK(res.body.empty());
    CHECK(res.header("Upgrade") == "websocket");
    CHECK(res.header("Connection") == "Upgrade");
    CHECK(res.header("Sec-WebSocket-Accept") == rfc_accept);
    CHECK(res.header("Set-Cookie") == "sid=42; HttpOnly");
    CHECK_FALSE(res.header("Sec-WebSocket-Protocol").has_value());
    CHECK(res.serialize() ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Set-Cookie: sid=42; HttpOnly\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
}

TEST_CASE("accept_handshake answers a version error with 426 and Sec-WebSocket-Version 13") {
    for (const auto* line : {"", "Sec-WebSocket-Version: 8\r\n", "Sec-WebSocket-Version: 14\r\n"}) {
        INFO("version line: ", line);
        Response res;
        CHECK_FALSE(swirl::accept_handshake(upgrade(replace_line("Sec-WebSocket-Version", line)), res));
        CHECK(res.status == 426);
        CHECK(res.header("Sec-WebSocket-Version") == "13");
        CHECK_FALSE(res.header("Sec-WebSocket-Accept").has_value());
        const auto wire = res.serialize();
        CHECK(wire.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        CHECK(wire.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    }
}

TEST_CASE("accept_handshake answers other errors with 400") {
    const Request bad[] = {
        parse("POST /chat HTTP/1.1", default_headers),
        parse("GET /chat HTTP/1.0", default_headers),
        upgrade(replace_line("Host", "")),
        upgrade(replace_line("Upgrade", "")),
        upgrade(replace_line("Connection", "Connection: close\r\n")),
        upgrade(replace_line("Sec-WebSocket-Key", "Sec-WebSocket-Key: nope\r\n")),
        upgrade(default_headers + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        upgrade(default_headers + "Sec-WebSocket-Version: 13\r\n"),
    };
    for (const auto& req : bad) {
        Response res;
        CHECK_FALSE(swirl::accept_handshake(req, res));
        CHECK(res.status == 400);
        CHECK_FALSE(res.header("Sec-WebSocket-Accept").has_value());
        CHECK_FALSE(res.header("Sec-WebSocket-Version").has_value());
        CHECK_FALSE(res.header("Upgrade").has_value());
        CHECK(res.body == std::string(swirl::to_string(swirl::validate_upgrade(req))) + "\n");
        CHECK(res.serialize().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    }
}

TEST_CASE("accept_handshake adds no subprotocol when the client offers none") {
    const std::vector<std::string> server{"chat", "superchat"};
    Response res;
    CHECK(swirl::accept_handshake(upgrade(), res, server));
    CHECK_FALSE(res.header("Sec-WebSocket-Protocol").has_value());
}

TEST_CASE("accept_handshake picks the server's preferred subprotocol among those offered") {
    const std::vector<std::string> server{"superchat", "chat"};
    Response res;
    CHECK(swirl::accept_handshake(upgrade(default_headers + "Sec-WebSocket-Protocol: chat, superchat\r\n"), res, server));
    CHECK(res.header("Sec-WebSocket-Protocol") == "superchat");

    // Only the one the client offered, even if the server prefers another.
    Response one;
    CHECK(swirl::accept_handshake(upgrade(default_headers + "Sec-WebSocket-Protocol: chat\r\n"), one, server));
    CHECK(one.header("Sec-WebSocket-Protocol") == "chat");
}

TEST_CASE("accept_handshake adds no subprotocol when only unsupported ones are offered") {
    const std::vector<std::string> server{"superchat", "chat"};
    Response res;
    CHECK(swirl::accept_handshake(upgrade(default_headers + "Sec-WebSocket-Protocol: mqtt, wamp\r\n"), res, server));
    CHECK_FALSE(res.header("Sec-WebSocket-Protocol").has_value());

    // And none at all when the server supports none.
    Response none;
    CHECK(swirl::accept_handshake(upgrade(default_headers + "Sec-WebSocket-Protocol: chat\r\n"), none));
    CHECK_FALSE(none.header("Sec-WebSocket-Protocol").has_value());
}

TEST_CASE("subprotocol names compare case-sensitively") {
    const std::vector<std::string> server{"chat"};
    const Request req = upgrade(default_headers + "Sec-WebSocket-Protocol: Chat, CHAT\r\n");
    CHECK_FALSE(swirl::select_subprotocol(req, server).has_value());
    Response res;
    CHECK(swirl::accept_handshake(req, res, server));
    CHECK_FALSE(res.header("Sec-WebSocket-Protocol").has_value());
}

TEST_CASE("subprotocols offered across two header lines are all considered") {
    const std::vector<std::string> server{"superchat", "chat"};
    const Request req = upgrade(default_headers + "Sec-WebSocket-Protocol: chat\r\nsec-websocket-protocol: superchat\r\n");
    CHECK(swirl::select_subprotocol(req, server) == "superchat");
    Response res;
    CHECK(swirl::accept_handshake(req, res, server));
    CHECK(res.header("Sec-WebSocket-Protocol") == "superchat");

    const std::vector<std::string> only_second{"v2"};
    CHECK(swirl::select_subprotocol(upgrade(default_headers + "Sec-WebSocket-Protocol: v1\r\nSec-WebSocket-Protocol: v2\r\n"),
                                    only_second) == "v2");
}

TEST_CASE("is_upgrade_request looks for the websocket token in Upgrade") {
    CHECK(swirl::is_upgrade_request(upgrade()));
    CHECK(swirl::is_upgrade_request(upgrade(replace_line("Upgrade", "Upgrade: WebSocket\r\n"))));
    CHECK(swirl::is_upgrade_request(upgrade(replace_line("Upgrade", "Upgrade: h2c, websocket\r\n"))));
    CHECK_FALSE(swirl::is_upgrade_request(upgrade(replace_line("Upgrade", ""))));
    CHECK_FALSE(swirl::is_upgrade_request(upgrade(replace_line("Upgrade", "Upgrade: h2c\r\n"))));
    CHECK_FALSE(swirl::is_upgrade_request(parse("GET / HTTP/1.1", "Host: h\r\nX-Upgrade: websocket\r\n")));
    // Only the Upgrade header matters, not the rest of the handshake.
    CHECK(swirl::is_upgrade_request(parse("POST / HTTP/1.0", "Upgrade: websocket\r\n")));
}

TEST_CASE("validate_upgrade rejects a repeated Sec-WebSocket-Key or Sec-WebSocket-Version with 400") {
    // RFC 6455 §11.3.1 and §11.3.5: neither may appear more than once, even with the same valid value.
    for (const std::string key : {"dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "nope"}) {
        INFO("second key: ", key);
        const std::string twice = default_headers + "sec-websocket-key: " + key + "\r\n";
        CHECK(swirl::validate_upgrade(upgrade(twice)) == HandshakeError::bad_key);
        Response res;
        CHECK_FALSE(swirl::accept_handshake(upgrade(twice), res));
        CHECK(res.status == 400);
        CHECK_FALSE(res.header("Sec-WebSocket-Accept").has_value());
    }
    for (const std::string version : {"13", "8"}) {
        INFO("second version: ", version);
        const std::string twice = default_headers + "Sec-WebSocket-Version: " + version + "\r\n";
        CHECK(swirl::validate_upgrade(upgrade(twice)) == HandshakeError::repeated_version);
        Response res;
        CHECK_FALSE(swirl::accept_handshake(upgrade(twice), res));
        CHECK(res.status == 400);
        CHECK_FALSE(res.header("Sec-WebSocket-Version").has_value());
        CHECK(res.body == "more than one Sec-WebSocket-Version field\n");
    }
    // One field with an unsupported value is still a version error (426).
    Response res;
    const auto list = replace_line("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 13\r\n");
    CHECK_FALSE(swirl::accept_handshake(upgrade(list), res));
    CHECK(res.status == 426);
}

TEST_CASE("validate_upgrade rejects a Sec-WebSocket-Key field holding a list as a bad key") {
    for (const std::string_view line : {"Sec-WebSocket-Key: a, b\r\n",
                                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==, AAAAAAAAAAAAAAAAAAAAAA==\r\n",
                                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==,\r\n",
                                        "Sec-WebSocket-Key: ,dGhlIHNhbXBsZSBub25jZQ==\r\n"}) {
        INFO("key line: ", line);
        CHECK(swirl::validate_upgrade(upgrade(replace_line("Sec-WebSocket-Key", line))) == HandshakeError::bad_key);
    }
}
