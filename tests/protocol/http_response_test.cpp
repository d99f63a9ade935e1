#include "doctest.hpp"

#include <swirl/protocol/http_response.hpp>

#include <cstddef>
#include <string>
#include <string_view>

using swirl::parse_response_head;
using swirl::reason_phrase;
using swirl::Response;

TEST_CASE("serialize writes a 101 response without Content-Length or body") {
    Response r(101);
    r.set_header("Upgrade", "websocket");
    r.set_header("Connection", "Upgrade");
    r.set_header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(r.serialize() ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
    // Even a stray body is not written for 1xx.
    r.body = "ignored";
    CHECK(r.serialize().find("ignored") == std::string::npos);
    CHECK(r.serialize().find("Content-Length") == std::string::npos);
}

TEST_CASE("serialize adds Content-Length to a 200 response with a body") {
    Response r(200, "hello");
    r.set_header("Content-Type", "text/plain");
    CHECK(r.serialize() == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(Response().serialize() == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CHECK(Response(404, "nope\n").serialize() == "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope\n");
}

TEST_CASE("serialize writes no Content-Length or body for 204 and 304") {
    CHECK(Response(204).serialize() == "HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(Response(204, "dropped").serialize() == "HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(Response(304).serialize() == "HTTP/1.1 304 Not Modified\r\n\r\n");
}

TEST_CASE("serialize uses a custom reason phrase when set") {
    Response r(200, "x");
    r.reason = "Fine Thanks";
    CHECK(r.serialize() == "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 1\r\n\r\nx");
    Response unknown(299);
    CHECK(unknown.serialize() == "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("serialize does not duplicate an explicit Content-Length") {
    Response r(200, "abc");
    r.set_header("content-length", "3");
    CHECK(r.serialize() == "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc");
    // HEAD-style: the header announces a length the body does not carry.
    Response head(200);
    head.set_header("Content-Length", "42");
    CHECK(head.serialize() == "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
}

TEST_CASE("set_header replaces fields case-insensitively") {
    Response r(200);
    r.add_header("X-Thing", "1");
    r.add_header("Other", "o");
    r.add_header("x-thing", "2");
    r.set_header("X-THING", "3");
    REQUIRE(r.headers.size() == 2);
    CHECK(r.headers[0].name == "Other");
    CHECK(r.headers[1].name == "X-THING");
    CHECK(r.headers[1].value == "3");
    CHECK(r.header("x-thing") == "3");
    CHECK(r.serialize() == "HTTP/1.1 200 OK\r\nOther: o\r\nX-THING: 3\r\nContent-Length: 0\r\n\r\n");
    CHECK_FALSE(r.header("Missing").has_value());
}

TEST_CASE("add_header keeps duplicate fields such as two Set-Cookie") {
    Response r(200);
    r.add_header("Set-Cookie", "a=1; Path=/").add_header("Set-Cookie", "b=2; HttpOnly");
    REQUIRE(r.headers.size() == 2);
    CHECK(r.header("set-cookie") == "a=1; Path=/");  // the first one
    CHECK(r.serialize() ==
          "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("reason_phrase knows the common status codes") {
    CHECK(reason_phrase(101) == "Switching Protocols");
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(204) == "No Content");
    CHECK(reason_phrase(301) == "Moved Permanently");
    CHECK(reason_phrase(400) == "Bad Request");
    CHECK(reason_phrase(401) == "Unauthorized");
    CHECK(reason_phrase(403) == "Forbidden");
    CHECK(reason_phrase(404) == "Not Found");
    CHECK(reason_phrase(413) == "Content Too Large");
    CHECK(reason_phrase(414) == "URI Too Long");
    CHECK(reason_phrase(426) == "Upgrade Required");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(500) == "Internal Server Error");
    CHECK(reason_phrase(501) == "Not Implemented");
    CHECK(reason_phrase(503) == "Service Unavailable");
    CHECK(reason_phrase(505) == "HTTP Version Not Supported");
    CHECK(reason_phrase(299) == "Unknown");
    CHECK(reason_phrase(0) == "Unknown");
    static_assert(reason_phrase(200) == "OK");
}

TEST_CASE("parse_response_head round-trips serialize output") {
    Response r(101);
    r.set_header("Upgrade", "websocket");
    r.set_header("Connection", "Upgrade");
    r.add_header("Set-Cookie", "a=1");
    r.add_header("Set-Cookie", "b=2");
    const std::string wire = r.serialize();
    const auto blank = wire.find("\r\n\r\n");
    REQUIRE(blank != std::string::npos);

    // With the last header's CRLF (as the client passes it) and without it.
    for (const std::size_t cut : {blank + 2, blank}) {
        INFO("cut at ", cut);
        const auto parsed = parse_response_head(std::string_view(wire).substr(0, cut));
        REQUIRE(parsed.has_value());
        CHECK(parsed->status == 101);
        CHECK(parsed->reason == "Switching Protocols");
        REQUIRE(parsed->headers.size() == r.headers.size());
        for (std::size_t i = 0; i < r.headers.size(); ++i) {
            CHECK(parsed->headers[i].name == r.headers[i].name);
            CHECK(parsed->headers[i].value == r.headers[i].value);
        }
        CHECK(parsed->serialize() == wire);
    }

    Response custom(418, "teapot");
    custom.reason = "I'm a teapot";
    const std::string w2 = custom.serialize();
    const auto p2 = parse_response_head(std::string_view(w2).substr(0, w2.find("\r\n\r\n") + 2));
    REQUIRE(p2.has_value());
    CHECK(p2->status == 418);
    CHECK(p2->reason == "I'm a teapot");
    CHECK(p2->header("Content-Length") == "6");

    // Header values are trimmed; a status line without a reason is accepted.
    const auto p3 = parse_response_head("HTTP/1.0 200\r\nX:   v  \r\n");
    REQUIRE(p3.has_value());
    CHECK(p3->status == 200);
    CHECK(p3->reason.empty());
    CHECK(p3->header("x") == "v");
}

TEST_CASE("parse_response_head rejects malformed status lines") {
    for (const std::string_view bad : {
             "",                                     // nothing
             "HTTP/1.1",                             // no status
             "HTTP/1.1 10",                          // short status
             "HTTP/2 101 Switching Protocols",       // wrong version
             "HTTP/2.0 101 Switching Protocols",     // wrong major version
             "http/1.1 101 Switching Protocols",     // lowercase
             "HTTP/1.1  101 Switching Protocols",    // two spaces
             "HTTP/1.1101 Switching Protocols",      // no space
             "HTTP/1.1 1x1 Switching Protocols",     // non-digit status
             "HTTP/1.1 abc Switching Protocols",     // non-numeric status
             "ICY 200 OK",                           // not HTTP
             "HTTP/1.1 101 OK\r\nNo colon here\r\n",  // header without a colon
             "HTTP/1.1 101 OK\r\nBad Name: x\r\n",   // header name not a token
         }) {
        INFO("head: ", std::string(bad));
        CHECK_FALSE(parse_response_head(bad).has_value());
    }
}

TEST_CASE("parse_response_head rejects status lines that are not HTTP-version SP 3DIGIT SP") {
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ], status-code = 3DIGIT,
    // HTTP-version = "HTTP/" DIGIT "." DIGIT.
    CHECK_FALSE(parse_response_head("HTTP/1.1 1010 Switching Protocols").has_value());  // 4-digit status read as 101
    CHECK_FALSE(parse_response_head("HTTP/1.1 101XSwitching Protocols").has_value());   // no SP after the code
    CHECK_FALSE(parse_response_head("HTTP/1.1 -10 Negative").has_value());              // signed status
    CHECK_FALSE(parse_response_head("HTTP/1.x 101 Switching Protocols").has_value());   // non-digit minor version
}

TEST_CASE("malformed() names what would corrupt the response; serialize refuses it") {
    swirl::Response ok(200, "fine");
    ok.set_header("X-Fine", "a value with spaces and : colons");
    CHECK(ok.malformed() == std::nullopt);
    const auto refused = [](swirl::Response r) {
        CHECK(r.malformed().has_value());
        CHECK_THROWS_AS(r.serialize(), std::invalid_argument);
    };
    refused(swirl::Response(200).set_header("X-Injected", "a\r\nSet-Cookie: x"));
    refused(swirl::Response(200).set_header("X-Lf", "a\nb"));
    refused(swirl::Response(200).set_header("X-Nul", std::string_view("a\0b", 3)));
    refused(swirl::Response(200).set_header("Bad Name", "v"));
    refused(swirl::Response(200).set_header("", "v"));
    swirl::Response reason(404);
    reason.reason = "Gone\r\nX: y";
    refused(reason);
    refused(swirl::Response(42));
}

TEST_CASE("remove_header drops every field of that name, whatever its case") {
    swirl::Response res(101);
    res.add_header("Sec-WebSocket-Extensions", "permessage-deflate");
    res.add_header("sec-websocket-extensions", "x-other");
    res.add_header("Set-Cookie", "a=1");
    res.remove_header("SEC-WEBSOCKET-EXTENSIONS");
    CHECK_FALSE(res.header("Sec-WebSocket-Extensions").has_value());
    CHECK(res.headers.size() == 1);
    CHECK(res.header("Set-Cookie") == "a=1");
}
