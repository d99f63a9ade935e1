#include "doctest.hpp"

#include <swirl/protocol/http_request.hpp>

#include <cstddef>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>

using swirl::Request;
using swirl::RequestLimits;
using swirl::RequestParser;
using Status = swirl::RequestParser::Status;

namespace {

const std::string upgrade_request =
    "GET /chat?room=lobby&user=J%C3%B6rg HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://example.com\r\n"
    "Cookie: session=abc123; theme=dark\r\n"
    "\r\n";

struct Outcome {
    Status status;
    std::size_t consumed;  ///< total bytes consumed
};

/// Feeds `in` in one piece.
Outcome feed_whole(RequestParser& p, std::string_view in) {
    const auto r = p.feed(in);
    return {r.status, r.consumed};
}

/// Feeds `in` one byte at a time until the parser stops being incomplete.
Outcome feed_bytewise(RequestParser& p, std::string_view in) {
    std::size_t consumed = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const auto r = p.feed(in.substr(i, 1));
        consumed += r.consumed;
        if (r.status != Status::incomplete) return {r.status, consumed};
        CHECK(r.consumed == 1);
    }
    return {Status::incomplete, consumed};
}

/// Feeds `in` in chunks of random sizes (from `seed`) until the parser stops being incomplete.
Outcome feed_random(RequestParser& p, std::string_view in, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> size(1, 13);
    std::size_t consumed = 0;
    for (std::size_t pos = 0; pos < in.size();) {
        const std::size_t n = std::min(in.size() - pos, size(rng));
        const auto r = p.feed(in.substr(pos, n));
        consumed += r.consumed;
        if (r.status != Status::incomplete) return {r.status, consumed};
        CHECK(r.consumed == n);
        pos += n;
    }
    return {Status::incomplete, consumed};
}

constexpr unsigned random_seeds[] = {1u, 7u, 20240607u};

/// Parses `in` whole, byte by byte and in random chunks; all must complete alike. Returns the request.
Request parse_every_way(std::string_view in, RequestLimits limits = {}) {
    RequestParser whole(limits);
    const auto a = feed_whole(whole, in);
    REQUIRE(a.status == Status::complete);
    RequestParser bytes(limits);
    const auto b = feed_bytewise(bytes, in);
    CHECK(b.status == Status::complete);
    CHECK(b.consumed == a.consumed);
    for (const unsigned seed : random_seeds) {
        INFO("seed ", seed);
        RequestParser pieces(limits);
        const auto c = feed_random(pieces, in, seed);
        CHECK(c.status == Status::complete);
        CHECK(c.consumed == a.consumed);
        CHECK(pieces.request().headers.size() == whole.request().headers.size());
        CHECK(pieces.request().body == whole.request().body);
    }
    const Request& x = whole.request();
    const Request& y = bytes.request();
    CHECK(x.method == y.method);
    CHECK(x.target == y.target);
    CHECK(x.body == y.body);
    REQUIRE(x.headers.size() == y.headers.size());
    for (std::size_t i = 0; i < x.headers.size(); ++i) {
        CHECK(x.headers[i].name == y.headers[i].name);
        CHECK(x.headers[i].value == y.headers[i].value);
    }
    return x;
}

/// Parses a complete request in one piece.
Request parse(std::string_view in) {
    RequestParser p;
    const auto r = p.feed(in);
    REQUIRE(r.status == Status::complete);
    CHECK(r.consumed == in.size());
    return p.request();
}

/// The error status for `in`, fed whole, byte by byte and in random chunks (all must agree).
int error_status(std::string_view in, RequestLimits limits = {}) {
    RequestParser whole(limits);
    const auto a = feed_whole(whole, in);
    RequestParser bytes(limits);
    const auto b = feed_bytewise(bytes, in);
    CHECK(a.status == Status::error);
    CHECK(b.status == Status::error);
    CHECK(whole.error_status() == bytes.error_status());
    CHECK_FALSE(whole.error_reason().empty());
    for (const unsigned seed : random_seeds) {
        INFO("seed ", seed);
        RequestParser pieces(limits);
        CHECK(feed_random(pieces, in, seed).status == Status::error);
        CHECK(pieces.error_status() == whole.error_status());
    }
    return whole.error_status();
}

/// `in` with CR and LF spelled out, for messages.
std::string escaped(std::string_view in) {
    std::string out;
    for (const char c : in) out += c == '\r' ? "\\r" : c == '\n' ? "\\n" : std::string(1, c);
    return out;
}

/// `in` with every CRLF replaced by LF.
std::string bare_lf(std::string_view in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i)
        if (!(in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')) out += in[i];
    return out;
}

} // namespace

TEST_CASE("parser accepts a valid upgrade request whole and byte by byte with the same result") {
    RequestParser whole;
    const auto a = feed_whole(whole, upgrade_request);
    CHECK(a.status == Status::complete);
    CHECK(a.consumed == upgrade_request.size());
    CHECK(whole.status() == Status::complete);

    RequestParser bytes;
    const auto b = feed_bytewise(bytes, upgrade_request);
    CHECK(b.status == Status::complete);
    CHECK(b.consumed == upgrade_request.size());

    const Request& x = whole.request();
    const Request& y = bytes.request();
    CHECK(x.method == y.method);
    CHECK(x.target == y.target);
    CHECK(x.version_minor == y.version_minor);
    CHECK(x.body == y.body);
    REQUIRE(x.headers.size() == 7);
    REQUIRE(y.headers.size() == 7);
    for (std::size_t i = 0; i < x.headers.size(); ++i) {
        CHECK(x.headers[i].name == y.headers[i].name);
        CHECK(x.headers[i].value == y.headers[i].value);
    }
    CHECK(x.headers[0].name == "Host");
    CHECK(x.headers[0].value == "example.com:8080");
    CHECK(x.headers[6].name == "Cookie");
}

TEST_CASE("parser splits the request line into method, target, path, query and version") {
    const Request r = parse(upgrade_request);
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat?room=lobby&user=J%C3%B6rg");
    CHECK(r.path() == "/chat");
    CHECK(r.query() == "room=lobby&user=J%C3%B6rg");
    CHECK(r.version_minor == 1);
    CHECK(r.body.empty());

    const Request plain = parse("POST /a/b HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    CHECK(plain.method == "POST");
    CHECK(plain.path() == "/a/b");
    CHECK(plain.query().empty());
    CHECK(plain.version_minor == 0);

    const Request empty_query = parse("GET /x? HTTP/1.1\r\n\r\n");
    CHECK(empty_query.path() == "/x");
    CHECK(empty_query.query().empty());
    CHECK(empty_query.headers.empty());

    const Request star = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(star.method == "OPTIONS");
    CHECK(star.target == "*");
}

TEST_CASE("header lookup is case-insensitive and returns the first field") {
    const Request r = parse("GET / HTTP/1.1\r\nHost: h\r\nX-Thing:   padded value \t\r\nx-thing: second\r\nEmpty:\r\n\r\n");
    CHECK(r.header("host") == "h");
    CHECK(r.header("HOST") == "h");
    CHECK(r.header("x-THING") == "padded value");
    CHECK(r.header("Empty") == "");
    CHECK_FALSE(r.header("Missing").has_value());
    CHECK_FALSE(r.header("Hos").has_value());
    CHECK(r.header_count("X-THING") == 2);
    CHECK(r.header_count("host") == 1);
    CHECK(r.header_count("Missing") == 0);
    // Names are kept as sent.
    CHECK(r.headers[1].name == "X-Thing");
    CHECK(r.headers[2].name == "x-thing");
}

TEST_CASE("has_token finds tokens in comma-separated lists across duplicate headers") {
    const Request r = parse(
        "GET / HTTP/1.1\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Upgrade: h2c\r\n"
        "upgrade:websocket\r\n"
        "X-List: ,  a ,\tb\t,,c  \r\n"
        "X-Word: Upgrades\r\n"
        "\r\n");
    CHECK(r.has_token("Connection", "Upgrade"));
    CHECK(r.has_token("connection", "upgrade"));
    CHECK(r.has_token("Connection", "KEEP-ALIVE"));
    CHECK_FALSE(r.has_token("Connection", "close"));
    CHECK(r.has_token("Upgrade", "h2c"));
    CHECK(r.has_token("Upgrade", "websocket"));  // in the second Upgrade header
    CHECK(r.has_token("X-List", "a"));
    CHECK(r.has_token("X-List", "b"));
    CHECK(r.has_token("X-List", "c"));
    CHECK_FALSE(r.has_token("X-List", ""));
    CHECK_FALSE(r.has_token("X-Word", "Upgrade"));  // no substring match
    CHECK_FALSE(r.has_token("Missing", "a"));

    const Request spaced = parse("GET / HTTP/1.1\r\nConnection:Upgrade,keep-alive\r\n\r\n");
    CHECK(spaced.has_token("Connection", "Upgrade"));
    CHECK(spaced.has_token("Connection", "keep-alive"));
    const Request tabbed = parse("GET / HTTP/1.1\r\nConnection: \tkeep-alive \t, \t Upgrade\t\r\n\r\n");
    CHECK(tabbed.has_token("Connection", "Upgrade"));
    CHECK(tabbed.has_token("Connection", "keep-alive"));
}

TEST_CASE("query_param percent-decodes values and handles missing, absent and repeated separators") {
    const Request r = parse(
        "GET /p?name=J%C3%B6rg&msg=hello+world%21&flag&empty=&&x%20y=1&plus=%2B&bad=%zz%4&last=%41 HTTP/1.1\r\n\r\n");
    CHECK(r.query_param("name") == "J\xC3\xB6rg");
    CHECK(r.query_param("msg") == "hello world!");
    CHECK(r.query_param("flag") == "");
    CHECK(r.query_param("empty") == "");
    CHECK(r.query_param("x y") == "1");  // names are decoded too
    CHECK(r.query_param("plus") == "+");
    CHECK(r.query_param("bad") == "%zz%4");  // invalid escapes are kept
    CHECK(r.query_param("last") == "A");
    CHECK_FALSE(r.query_param("absent").has_value());
    CHECK_FALSE(r.query_param("nam").has_value());

    const Request first = parse("GET /?a=1&a=2 HTTP/1.1\r\n\r\n");
    CHECK(first.query_param("a") == "1");
    const Request none = parse("GET /path HTTP/1.1\r\n\r\n");
    CHECK_FALSE(none.query_param("a").has_value());
    const Request amps = parse("GET /?&&&a=%7E&&& HTTP/1.1\r\n\r\n");
    CHECK(amps.query_param("a") == "~");
}

TEST_CASE("cookie returns values from the Cookie headers") {
    const Request r = parse(
        "GET / HTTP/1.1\r\n"
        "Cookie: session=abc123;theme=dark; empty=; eq=a=b\r\n"
        "Cookie: second=2\r\n"
        "\r\n");
    CHECK(r.cookie("session") == "abc123");
    CHECK(r.cookie("theme") == "dark");
    CHECK(r.cookie("empty") == "");
    CHECK(r.cookie("eq") == "a=b");
    CHECK(r.cookie("second") == "2");
    CHECK_FALSE(r.cookie("Session").has_value());  // names are case-sensitive
    CHECK_FALSE(r.cookie("missing").has_value());
    CHECK_FALSE(parse("GET / HTTP/1.1\r\n\r\n").cookie("session").has_value());
}

TEST_CASE("keep_alive follows the HTTP version and Connection header") {
    CHECK(parse("GET / HTTP/1.1\r\n\r\n").keep_alive());
    CHECK_FALSE(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    CHECK_FALSE(parse("GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive());
    CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").keep_alive());
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    CHECK_FALSE(parse("GET / HTTP/1.0\r\nConnection: close\r\n\r\n").keep_alive());
    CHECK_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
}

TEST_CASE("parser does not consume the bytes after a pipelined request") {
    const std::string first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string second = "GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string stream = first + second;

    RequestParser p;
    const auto r = p.feed(stream);
    CHECK(r.status == Status::complete);
    CHECK(r.consumed == first.size());
    CHECK(p.request().target == "/one");
    // Once complete, further input is not taken.
    CHECK(p.feed("more").consumed == 0);

    p.reset();
    const auto r2 = p.feed(std::string_view(stream).substr(r.consumed));
    CHECK(r2.status == Status::complete);
    CHECK(r2.consumed == second.size());
    CHECK(p.request().target == "/two");

    // Split in the middle of the terminator, the rest still stays unconsumed.
    RequestParser q;
    const auto a = q.feed(std::string_view(stream).substr(0, first.size() - 2));
    CHECK(a.status == Status::incomplete);
    CHECK(a.consumed == first.size() - 2);
    const auto b = q.feed(std::string_view(stream).substr(first.size() - 2));
    CHECK(b.status == Status::complete);
    CHECK(b.consumed == 2);
}

TEST_CASE("parser leaves WebSocket frames sent right after the upgrade request") {
    const std::string frame("\x81\x85\x37\xFA\x21\x3D\x7F\x9F\x4D\x51\x58", 11);
    const std::string stream = upgrade_request + frame;
    RequestParser p;
    const auto r = p.feed(stream);
    CHECK(r.status == Status::complete);
    CHECK(r.consumed == upgrade_request.size());
    CHECK(std::string_view(stream).substr(r.consumed) == frame);
    CHECK(p.request().body.empty());

    // Byte by byte, the parser completes exactly on the last byte of the head.
    RequestParser q;
    const auto b = feed_bytewise(q, stream);
    CHECK(b.status == Status::complete);
    CHECK(b.consumed == upgrade_request.size());
}

TEST_CASE("parser reads a Content-Length body whole and split") {
    const std::string req = "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    RequestParser whole;
    const auto a = whole.feed(req + "GET /next");
    CHECK(a.status == Status::complete);
    CHECK(a.consumed == req.size());
    CHECK(whole.request().body == "hello world");

    RequestParser bytes;
    const auto b = feed_bytewise(bytes, req + "GET /next");
    CHECK(b.status == Status::complete);
    CHECK(b.consumed == req.size());
    CHECK(bytes.request().body == "hello world");

    // Head and part of the body, then the rest of the body plus extra bytes.
    RequestParser split;
    const std::size_t cut = req.size() - 6;
    const auto c = split.feed(std::string_view(req).substr(0, cut));
    CHECK(c.status == Status::incomplete);
    CHECK(c.consumed == cut);
    const auto d = split.feed(std::string(req.substr(cut)) + "extra");
    CHECK(d.status == Status::complete);
    CHECK(d.consumed == 6);
    CHECK(split.request().body == "hello world");

    // Identical duplicate Content-Length fields are fine.
    RequestParser dup;
    const auto e = dup.feed("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc");
    CHECK(e.status == Status::complete);
    CHECK(dup.request().body == "abc");
}

TEST_CASE("parser rejects a Content-Length over max_body with 413") {
    RequestLimits limits;
    limits.max_body = 10;
    CHECK(error_status("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits) == 413);
    CHECK(error_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n", limits) == 413);
    RequestParser at_limit(limits);
    CHECK(at_limit.feed("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789").status == Status::complete);
}

TEST_CASE("parser rejects conflicting or malformed Content-Length with 400") {
    CHECK(error_status("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == 400);
    for (const std::string_view value : {"abc", "12a", "-1", "+5", "1.0", "0x10", "3, 3", "1 2",
                                         "99999999999999999999999"}) {
        INFO("Content-Length: ", value);
        CHECK(error_status("POST / HTTP/1.1\r\nContent-Length: " + std::string(value) + "\r\n\r\n") == 400);
    }
    CHECK(error_status("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n") == 400);
}

TEST_CASE("parser rejects Transfer-Encoding with 501") {
    CHECK(error_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") == 501);
    CHECK(error_status("POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\nContent-Length: 3\r\n\r\nabc") == 501);
}

TEST_CASE("parser rejects a request line over max_request_line with 414 before the line ends") {
    RequestLimits limits;
    limits.max_request_line = 64;
    const std::string long_line = "GET /" + std::string(100, 'a');  // no CRLF yet

    RequestParser whole(limits);
    CHECK(whole.feed(long_line).status == Status::error);
    CHECK(whole.error_status() == 414);

    // Byte by byte it fails on the 65th byte, long before any CRLF.
    RequestParser bytes(limits);
    std::size_t fed = 0;
    while (fed < long_line.size() && bytes.feed(std::string_view(long_line).substr(fed, 1)).status == Status::incomplete)
        ++fed;
    CHECK(fed + 1 == 65);
    CHECK(bytes.error_status() == 414);

    // A complete request with a long line is rejected too.
    CHECK(error_status(long_line + " HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 414);
    // A line of exactly the limit is fine.
    const std::string exact = "GET /" + std::string(64 - 14, 'b') + " HTTP/1.1";
    REQUIRE(exact.size() == 64);
    RequestParser ok(limits);
    CHECK(ok.feed(exact + "\r\n\r\n").status == Status::complete);
}

// Found by fuzz/http_upgrade_fuzzer: the verdict on a long request line depended on how the bytes arrived.
TEST_CASE("parser answers a request line over max_request_line with 414 however the bytes arrive") {
    RequestLimits limits;
    limits.max_request_line = 64;
    const std::string long_line = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n";

    // The line has ended but the headers have not: 414 at once, not a wait for the blank line.
    const std::string unfinished = long_line + "Host: h\r\n";
    RequestParser whole(limits);
    CHECK(whole.feed(unfinished).status == Status::error);
    CHECK(whole.error_status() == 414);
    RequestParser bytes(limits);
    CHECK(feed_bytewise(bytes, unfinished).status == Status::error);
    CHECK(bytes.error_status() == 414);

    // Header bytes over the limit too: the long line is still what is reported, as it is byte by byte.
    limits.max_header_bytes = 160;
    std::string endless = long_line;
    while (endless.size() < 400) endless += "X-Filler: 0123456789\r\n";
    CHECK(error_status(endless, limits) == 414);

    // A bare CR past the limit: the line was too long by the time the CR came, whatever the chunking (the fuzzer
    // found the whole head and its pieces disagreeing here). One before the limit is what is reported.
    limits = RequestLimits{};
    limits.max_request_line = 64;
    CHECK(error_status("GET /" + std::string(100, 'c') + "\rx HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 414);
    CHECK(error_status("GET /" + std::string(10, 'c') + "\rx" + std::string(100, 'c') + " HTTP/1.1\r\n\r\n", limits) == 400);

    // A line of exactly the limit is fine byte by byte too: its CR alone does not make it one byte too long.
    limits = RequestLimits{};
    limits.max_request_line = 64;
    const std::string exact = "GET /" + std::string(64 - 14, 'b') + " HTTP/1.1";
    REQUIRE(exact.size() == 64);
    RequestParser ok(limits);
    CHECK(feed_bytewise(ok, exact + "\r\nHost: h\r\n\r\n").status == Status::complete);
}

TEST_CASE("parser rejects header bytes over max_header_bytes with 431 without waiting for the terminator") {
    RequestLimits limits;
    limits.max_header_bytes = 256;
    const std::string start = "GET / HTTP/1.1\r\nHost: h\r\n";
    std::string endless = start;
    while (endless.size() < 1000) endless += "X-Filler: 0123456789\r\n";  // never terminated

    RequestParser whole(limits);
    CHECK(whole.feed(endless).status == Status::error);
    CHECK(whole.error_status() == 431);

    RequestParser bytes(limits);
    std::size_t fed = 0;
    while (fed < endless.size() && bytes.feed(std::string_view(endless).substr(fed, 1)).status == Status::incomplete)
        ++fed;
    CHECK(fed < 257);  // failed by the 256th byte
    CHECK(bytes.error_status() == 431);

    // A head of exactly 256 bytes is accepted; one more byte is not.
    std::string exact = start + "X-Pad: ";
    exact += std::string(256 - exact.size() - 4, 'p') + "\r\n\r\n";
    REQUIRE(exact.size() == 256);
    RequestParser ok(limits);
    CHECK(ok.feed(exact).status == Status::complete);
    RequestParser ok_bytes(limits);
    CHECK(feed_bytewise(ok_bytes, exact).status == Status::complete);
    std::string over = exact;
    over.insert(over.size() - 4, "p");
    REQUIRE(over.size() == 257);
    CHECK(error_status(over, limits) == 431);
}

TEST_CASE("parser rejects more than max_headers fields with 431") {
    RequestLimits limits;
    limits.max_headers = 3;
    CHECK(error_status("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits) == 431);
    RequestParser ok(limits);
    CHECK(ok.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").status == Status::complete);
    CHECK(ok.request().headers.size() == 3);
}

TEST_CASE("parser rejects malformed requests with 400") {
    const std::string_view cases[] = {
        "GET /\r\n\r\n",                                  // missing version
        "GET\r\n\r\n",                                    // only a method
        "GET  / HTTP/1.1\r\n\r\n",                        // two spaces
        "GET / HTTP/1.1 \r\n\r\n",                        // trailing space
        " GET / HTTP/1.1\r\n\r\n",                        // leading space
        "GET / x HTTP/1.1\r\n\r\n",                       // extra part
        "GET / http/1.1\r\n\r\n",                         // lowercase version
        "GET / HTTP/1\r\n\r\n",                           // short version
        "GET / HTTP/1.10\r\n\r\n",                        // long version
        "GET / HTTP/1,1\r\n\r\n",                         // bad separator
        "GET / HTTP/x.1\r\n\r\n",                         // non-digit major
        "GET / HTTP/1.x\r\n\r\n",                         // non-digit minor
        "G(T / HTTP/1.1\r\n\r\n",                         // bad method token
        "G\xC3\xA9T / HTTP/1.1\r\n\r\n",                  // non-ASCII method
        "GET /a\x01" "b HTTP/1.1\r\n\r\n",                // control char in target
        "GET  HTTP/1.1\r\n\r\n",                          // empty target
        "GET / HTTP/1.1\r\nHost h\r\n\r\n",               // header without colon
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",             // space before colon
        "GET / HTTP/1.1\r\n: h\r\n\r\n",                  // empty name
        "GET / HTTP/1.1\r\nBad[Name]: h\r\n\r\n",         // non-token name
        "GET / HTTP/1.1\r\nHost: h\r\n  folded\r\n\r\n",  // obs-fold with spaces
        "GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n",  // obs-fold with a tab
        "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n",         // control char in value
        "GET / HTTP/1.1\r\nX: a\x7F" "b\r\n\r\n",         // DEL in value
        "GET / HTTP/1.1\r\nX: a\nb\r\n\r\n",              // a bare LF ends the line: `b` has no colon
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",              // bare CR in value
    };
    for (const auto c : cases) {
        INFO("request: ", std::string(c));
        CHECK(error_status(c) == 400);
    }
    // A tab inside a value is allowed.
    CHECK(parse("GET / HTTP/1.1\r\nX: a\tb\r\n\r\n").header("X") == "a\tb");
}

TEST_CASE("parser rejects HTTP versions other than 1.x with 505") {
    CHECK(error_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
    CHECK(error_status("GET / HTTP/0.9\r\n\r\n") == 505);
    CHECK(error_status("GET / HTTP/3.0\r\n\r\n") == 505);
}

TEST_CASE("parser stays in its final state until reset allows a second request") {
    RequestParser p;
    CHECK(p.feed("BAD\r\n\r\n").status == Status::error);
    CHECK(p.error_status() == 400);
    // Still an error, nothing consumed.
    const auto again = p.feed("GET / HTTP/1.1\r\n\r\n");
    CHECK(again.status == Status::error);
    CHECK(again.consumed == 0);

    p.reset();
    CHECK(p.status() == Status::incomplete);
    CHECK(p.error_status() == 0);
    const auto r = p.feed("POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
    CHECK(r.status == Status::complete);
    CHECK(p.request().target == "/x");
    CHECK(p.request().body == "ok");

    p.reset();
    CHECK(p.request().headers.empty());
    CHECK(p.request().body.empty());
    CHECK(p.feed("GET /y HTTP/1.1\r\n\r\n").status == Status::complete);
    CHECK(p.request().target == "/y");
    CHECK(p.request().body.empty());

    // Limits survive reset().
    RequestLimits limits;
    limits.max_headers = 1;
    RequestParser q(limits);
    CHECK(q.feed("GET / HTTP/1.1\r\nA: 1\r\n\r\n").status == Status::complete);
    q.reset();
    CHECK(q.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n").status == Status::error);
    CHECK(q.error_status() == 431);
}

TEST_CASE("parser rejects a request with more than one Host field with 400, upgrade or not") {
    const std::string upgrade_fields =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n";
    for (const std::string_view hosts :
         {"Host: h\r\nHost: h\r\n", "Host: a\r\nhost: b\r\n", "HOST: a\r\nX: 1\r\nHost:\r\n"}) {
        INFO("hosts: ", escaped(hosts));
        CHECK(error_status("GET / HTTP/1.1\r\n" + std::string(hosts) + "\r\n") == 400);
        CHECK(error_status("GET /chat HTTP/1.1\r\n" + std::string(hosts) + upgrade_fields + "\r\n") == 400);
        CHECK(error_status("POST / HTTP/1.1\r\n" + std::string(hosts) + "Content-Length: 2\r\n\r\nok") == 400);
    }
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").header("Host") == "h");
}

TEST_CASE("parser refuses an upgrade request with a body with 400 from its head, before any body byte") {
    const std::string head = "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    // The head alone is enough for the verdict: no body byte needs to arrive.
    CHECK(error_status(head + "Content-Length: 100\r\n\r\n") == 400);
    CHECK(error_status(head + "Content-Length: 1\r\n\r\n") == 400);
    CHECK(error_status(head + "Content-Length: 99999999999999999\r\n\r\n") == 400);  // not 413: no body at all
    CHECK(error_status("POST / HTTP/1.0\r\nUpgrade: h2c, WebSocket\r\nContent-Length: 3\r\n\r\n") == 400);

    // The bytes after the head are not consumed.
    const std::string with_body = head + "Content-Length: 5\r\n\r\n";
    RequestParser p;
    const auto r = p.feed(with_body + "hello");
    CHECK(r.status == Status::error);
    CHECK(r.consumed == with_body.size());
    CHECK(p.request().body.empty());

    // No body is fine; transfer codings still get 501; other upgrades keep their body.
    CHECK(parse_every_way(head + "Content-Length: 0\r\n\r\n").body.empty());
    CHECK(error_status(head + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 501);
    CHECK(parse_every_way("POST / HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello").body == "hello");
}

TEST_CASE("parser accepts bare LF line ends, alone or mixed with CRLF, however the bytes arrive") {
    const Request reference = parse(upgrade_request);
    const std::string lf = bare_lf(upgrade_request);
    REQUIRE(lf.find('\r') == std::string::npos);
    std::string mixed;  // every other line end a CRLF
    std::size_t line_ends = 0;
    for (const char c : lf) {
        if (c == '\n' && line_ends++ % 2 == 0) mixed += '\r';
        mixed += c;
    }
    const std::string head = upgrade_request.substr(0, upgrade_request.size() - 4);  // up to the last field's CRLF
    const std::string frame("\x81\x85\x37\xFA\x21\x3D\x7F\x9F\x4D\x51\x58", 11);
    for (const std::string& request : {lf, mixed, head + "\n\n", head + "\r\n\n", head + "\n\r\n", head + "\r\n\r\n"}) {
        INFO("request: ", escaped(request));
        const Request r = parse_every_way(request + frame);
        CHECK(r.method == reference.method);
        CHECK(r.target == reference.target);
        CHECK(r.version_minor == 1);
        REQUIRE(r.headers.size() == reference.headers.size());
        for (std::size_t i = 0; i < r.headers.size(); ++i) {
            CHECK(r.headers[i].name == reference.headers[i].name);
            CHECK(r.headers[i].value == reference.headers[i].value);
        }
        // The head ends at its blank line: the frame after it is left alone.
        RequestParser p;
        CHECK(p.feed(request + frame).consumed == request.size());
    }
    CHECK(parse_every_way("GET / HTTP/1.1\nHost: x\n\n").header("Host") == "x");
    CHECK(parse_every_way("POST / HTTP/1.1\nContent-Length: 3\n\nabc").body == "abc");
    CHECK(error_status("\n") == 400);  // an empty request line
}

TEST_CASE("parser limits judge bare LF heads like CRLF ones, however the bytes arrive") {
    RequestLimits limits;
    limits.max_request_line = 64;
    const std::string exact = "GET /" + std::string(64 - 14, 'b') + " HTTP/1.1";
    REQUIRE(exact.size() == 64);
    for (const std::string_view eol : {"\n", "\r\n"}) {
        INFO("line end: ", escaped(eol));
        const std::string e(eol);
        CHECK(parse_every_way(exact + e + "Host: h" + e + e, limits).target.size() == 51);
        const std::string over = "GET /" + std::string(64 - 13, 'b') + " HTTP/1.1";
        CHECK(error_status(over + e + "Host: h" + e + e, limits) == 414);
        CHECK(error_status(over + e, limits) == 414);  // the headers need not arrive
    }

    // max_header_bytes counts the bytes through the final LF, whatever the line ends.
    limits = RequestLimits{};
    limits.max_header_bytes = 128;
    for (const std::string_view end : {"\n\n", "\r\n\n", "\n\r\n", "\r\n\r\n"}) {
        INFO("end: ", escaped(end));
        std::string fit = "GET / HTTP/1.1\nHost: h\nX-Pad: ";
        fit += std::string(128 - fit.size() - end.size(), 'p') + std::string(end);
        REQUIRE(fit.size() == 128);
        CHECK(parse_every_way(fit, limits).header("X-Pad")->size() == 128 - 30 - end.size());
        std::string over = fit;
        over.insert(over.size() - end.size(), "p");
        CHECK(error_status(over, limits) == 431);
    }
    std::string endless = "GET / HTTP/1.1\n";
    while (endless.size() < 400) endless += "X-Filler: 0123456789\n";  // never terminated
    CHECK(error_status(endless, limits) == 431);

    limits = RequestLimits{};
    limits.max_headers = 2;
    CHECK(parse_every_way("GET / HTTP/1.1\nA: 1\r\nB: 2\n\n", limits).headers.size() == 2);
    CHECK(error_status("GET / HTTP/1.1\nA: 1\r\nB: 2\nC: 3\n\n", limits) == 431);
}

TEST_CASE("parser rejects a bare CR anywhere in the head with 400 at the byte after it") {
    const std::string_view cases[] = {
        "GET / HTTP/1.1\rHost: h\r\r",            // old Mac line ends: no LF ever comes
        "GET /\r HTTP/1.1\r\n\r\n",               // in the request line
        "GET / HTTP/1.1\r\r\n\r\n",               // CR CR LF
        "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n",    // CR CR LF after a field
        "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",    // in the blank line
        "GET / HTTP/1.1\nHost: h\n\r\r",          // after bare LF line ends
        "\rGET / HTTP/1.1\r\n\r\n",               // before the request line
    };
    for (const auto c : cases) {
        INFO("request: ", escaped(c));
        CHECK(error_status(c) == 400);
    }
    // Answered at the byte after the CR, without waiting for a line end.
    const std::string_view request = "GET / HTTP/1.1\rHost: h";
    RequestParser p;
    const auto r = feed_bytewise(p, request);
    CHECK(r.status == Status::error);
    CHECK(r.consumed == request.find('\r') + 1);
    CHECK(p.error_status() == 400);
}
