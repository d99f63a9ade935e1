#include "doctest.hpp"

#include <swirl/protocol/permessage_deflate.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

using swirl::DeflateOffer;
using swirl::DeflateOptions;
using swirl::DeflateParams;
using swirl::Request;
using swirl::RequestParser;
using swirl::Response;

namespace swirl {
// Readable failures.
inline std::ostream& operator<<(std::ostream& os, const DeflateOffer& o) {
    return os << "{snct " << o.server_no_context_takeover << ", cnct " << o.client_no_context_takeover << ", smwb "
              << int(o.server_max_window_bits) << ", cmwb " << o.accepts_client_max_window_bits << "/"
              << int(o.client_max_window_bits) << "}";
}
inline std::ostream& operator<<(std::ostream& os, const DeflateParams& p) { return os << deflate_response(p); }
} // namespace swirl

namespace {

/// An upgrade request with these extra header lines (each ending in CRLF).
Request upgrade_with(std::string_view extra) {
    RequestParser parser;
    const std::string text = std::string("GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
                                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                         "Sec-WebSocket-Version: 13\r\n") +
                             std::string(extra) + "\r\n";
    const auto r = parser.feed(text);
    REQUIRE(r.status == RequestParser::Status::complete);
    return parser.request();
}

std::vector<DeflateOffer> offers(std::string_view value) { return swirl::deflate_offers(value); }

DeflateOffer offer(std::string_view value) {
    const auto all = offers(value);
    REQUIRE_MESSAGE(all.size() == 1, value);
    return all.front();
}

DeflateOptions enabled() {
    DeflateOptions o;
    o.enabled = true;
    return o;
}

/// The response the default options give to the first offer of `value`, or "" for none.
std::string response_to(std::string_view value, DeflateOptions options = enabled()) {
    const auto all = offers(value);
    const auto p = swirl::negotiate_deflate(all, options);
    if (!p) return {};
    CHECK(swirl::is_valid_deflate_response(all.front(), *p));
    const std::string text = swirl::deflate_response(*p);
    CHECK(swirl::parse_deflate_response(text) == p);  // the response reads back as what was agreed
    return text;
}

struct Element {
    std::string name;
    std::vector<std::string> params;  ///< "name", "name=value" or "name=\"value\""
    bool malformed = false;
};

std::vector<Element> elements(std::string_view value) {
    std::vector<Element> out;
    swirl::detail::ExtensionListParser parser(value);
    swirl::detail::ExtensionElement e;
    while (parser.next(e)) {
        Element el{std::string(e.name), {}, e.malformed};
        for (std::size_t i = 0; i < e.param_count; ++i) {
            const auto& p = e.params[i];
            std::string s(p.name);
            if (p.has_value) {  // appended piece by piece: g++ 12 at -O3 warns (-Wrestrict) about "..." + std::string
                s += p.quoted ? "=\"" : "=";
                s += p.value;
                if (p.quoted) s += '"';
            }
            el.params.push_back(s);
        }
        out.push_back(el);
    }
    return out;
}

} // namespace

TEST_CASE("the extension list parser follows RFC 6455 §9.1 with RFC 7692 §5's examples") {
    // RFC 7692 §5: two extensions; one offered with and without a parameter; a quoted value equal to a token.
    auto e = elements("permessage-foo, permessage-bar");
    REQUIRE(e.size() == 2);
    CHECK(e[0].name == "permessage-foo");
    CHECK(e[1].name == "permessage-bar");

    e = elements("permessage-foo; use_y, permessage-foo");
    REQUIRE(e.size() == 2);
    CHECK(e[0].params == std::vector<std::string>{"use_y"});
    CHECK(e[1].params.empty());

    e = elements("permessage-foo; x=\"10\"");
    REQUIRE(e.size() == 1);
    CHECK(e[0].params == std::vector<std::string>{"x=\"10\""});

    // Whitespace around every separator, empty list elements, tabs.
    e = elements(" ,\tmux ; max-channels = 4 ;flow-control,, deflate-stream ,");
    REQUIRE(e.size() == 2);
    CHECK(e[0].name == "mux");
    CHECK(e[0].params == std::vector<std::string>{"max-channels=4", "flow-control"});
    CHECK(e[1].name == "deflate-stream");
    CHECK_FALSE(e[1].malformed);

    // Commas and semicolons inside a quoted string do not split anything.
    e = elements("a; p=\"x, y; z\", b");
    REQUIRE(e.size() == 2);
    CHECK(e[0].params == std::vector<std::string>{"p=\"x, y; z\""});
    CHECK(e[1].name == "b");
}

TEST_CASE("a malformed element is reported and parsing resumes after it") {
    for (const std::string_view bad : {"foo junk", "; x", "foo; =1", "foo; x=", "foo; x= ;", "foo;", "foo; x=\"a\"b",
                                       "foo; x=1 2", "foo bar; baz=2", "f\"o\"o", "foo; x=\"\x01\""}) {
        INFO(bad);
        const auto e = elements(std::string(bad) + ", next; y=1");
        REQUIRE(e.size() == 2);
        CHECK(e[0].malformed);
        CHECK(e[1].name == "next");
        CHECK_FALSE(e[1].malformed);
    }
    // The error recovery skips a quoted string holding a comma.
    auto e = elements("foo bar=\"a,b\", next");
    REQUIRE(e.size() == 2);
    CHECK(e[0].malformed);
    CHECK(e[1].name == "next");
    // An unterminated quoted string swallows the rest of the field.
    e = elements("foo; x=\"10, next");
    REQUIRE(e.size() == 1);
    CHECK(e[0].malformed);
    // A quoted-pair can escape a quote.
    e = elements("foo; x=\"a\\\"b\", next");
    REQUIRE(e.size() == 2);
    CHECK_FALSE(e[0].malformed);
    CHECK(e[0].params == std::vector<std::string>{"x=\"a\\\"b\""});
}

TEST_CASE("every permessage-deflate parameter is read from an offer") {
    CHECK(offer("permessage-deflate") == DeflateOffer{});
    CHECK(offer("permessage-deflate; server_no_context_takeover").server_no_context_takeover);
    CHECK(offer("permessage-deflate; client_no_context_takeover").client_no_context_takeover);
    for (int bits = 8; bits <= 15; ++bits) {
        INFO(bits);
        CHECK(offer("permessage-deflate; server_max_window_bits=" + std::to_string(bits)).server_max_window_bits == bits);
        const auto o = offer("permessage-deflate; client_max_window_bits=" + std::to_string(bits));
        CHECK(o.accepts_client_max_window_bits);
        CHECK(o.client_max_window_bits == bits);
    }
    const auto bare = offer("permessage-deflate; client_max_window_bits");
    CHECK(bare.accepts_client_max_window_bits);
    CHECK(bare.client_max_window_bits == 0);

    const auto all = offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                           "server_max_window_bits=9; client_max_window_bits=12");
    CHECK(all == DeflateOffer{true, true, 9, true, 12});
}

TEST_CASE("names compare case-insensitively and values may be quoted") {
    CHECK(offer("PerMessage-Deflate; Server_No_Context_Takeover").server_no_context_takeover);
    CHECK(offer("PERMESSAGE-DEFLATE; CLIENT_MAX_WINDOW_BITS=10").client_max_window_bits == 10);
    CHECK(offer("permessage-deflate; server_max_window_bits=\"10\"").server_max_window_bits == 10);
    CHECK(offer("permessage-deflate; client_max_window_bits=\"8\"").client_max_window_bits == 8);
    CHECK(offer("permessage-deflate; server_max_window_bits=\"1\\2\"").server_max_window_bits == 12);  // a quoted-pair
    CHECK(offer("permessage-deflate ;server_max_window_bits = 11 ").server_max_window_bits == 11);
}

TEST_CASE("an offer with an unknown, duplicate, malformed or out-of-range parameter is declined") {
    for (const std::string_view bad : {
             "permessage-deflate; foo",
             "permessage-deflate; x-webkit=1",
             "permessage-deflate; max_window_bits=10",         // x-webkit-deflate-frame's name, not this extension's
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; client_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER",
             "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
             "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
             "permessage-deflate; server_no_context_takeover=1",
             "permessage-deflate; server_no_context_takeover=\"\"",
             "permessage-deflate; client_no_context_takeover=true",
             "permessage-deflate; server_max_window_bits",     // needs a value
             "permessage-deflate; server_max_window_bits=7",
             "permessage-deflate; server_max_window_bits=16",
             "permessage-deflate; server_max_window_bits=0",
             "permessage-deflate; server_max_window_bits=08",  // no leading zeros
             "permessage-deflate; server_max_window_bits=010",
             "permessage-deflate; server_max_window_bits=100",
             "permessage-deflate; server_max_window_bits=-9",
             "permessage-deflate; server_max_window_bits=9a",
             "permessage-deflate; server_max_window_bits=\"\"",
             "permessage-deflate; server_max_window_bits=\" 9\"",
             "permessage-deflate; client_max_window_bits=7",
             "permessage-deflate; client_max_window_bits=16",
             "permessage-deflate; client_max_window_bits=\"\"",
             "permessage-deflate; client_max_window_bits=1.5",
             "permessage-deflate; server_max_window_bits=",
             "permessage-deflate; server_max_window_bits=\"10",
             "permessage-deflate junk",
             "permessage-deflate; a; b; c; d; e; f; g; h; i",  // more parameters than could ever be valid
         }) {
        INFO(bad);
        CHECK(offers(bad).empty());
        CHECK(response_to(bad).empty());  // no extension: the connection proceeds uncompressed
    }
}

TEST_CASE("offers are considered in the client's order, declined ones skipped") {
    const auto all = offers("permessage-deflate; server_max_window_bits=7, x-webkit-deflate-frame, "
                            "permessage-deflate; client_max_window_bits=20, permessage-deflate; server_max_window_bits=10, "
                            "permessage-deflate");
    REQUIRE(all.size() == 2);
    CHECK(all[0].server_max_window_bits == 10);
    CHECK(all[1] == DeflateOffer{});
    CHECK(response_to("permessage-deflate; foo, permessage-deflate; server_no_context_takeover") ==
          "permessage-deflate; server_no_context_takeover");
    CHECK(response_to("x-webkit-deflate-frame, permessage-foo").empty());
    CHECK(response_to("").empty());
}

TEST_CASE("offers in several header fields keep the order of the fields") {
    const Request req = upgrade_with("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"
                                     "X-Other: permessage-deflate\r\n"
                                     "sec-websocket-extensions: foo, permessage-deflate; client_max_window_bits\r\n");
    const auto all = swirl::deflate_offers(req);
    REQUIRE(all.size() == 2);
    CHECK(all[0].server_max_window_bits == 10);
    CHECK(all[1].accepts_client_max_window_bits);
    const auto p = swirl::negotiate_deflate(req, enabled());
    REQUIRE(p);
    CHECK(p->server_max_window_bits == 10);

    // A broken first field does not hide the second.
    const Request broken = upgrade_with("Sec-WebSocket-Extensions: permessage-deflate; x=\"unterminated\r\n"
                                        "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    CHECK(swirl::deflate_offers(broken) == std::vector<DeflateOffer>{DeflateOffer{}});
}

TEST_CASE("RFC 7692 §7.1.3: the examples and their answers") {
    // The simplest offer and its simplest acceptance.
    CHECK(response_to("permessage-deflate") == "permessage-deflate");
    // An offer allowing the server to limit the client's window: the server may, or not.
    CHECK(response_to("permessage-deflate; client_max_window_bits") == "permessage-deflate");
    DeflateOptions small_client = enabled();
    small_client.client_max_window_bits = 10;
    CHECK(response_to("permessage-deflate; client_max_window_bits", small_client) ==
          "permessage-deflate; client_max_window_bits=10");
    // Two offers, the first asking for a 1 KiB server window: accepted with it.
    const std::string_view two = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
                                 "permessage-deflate; client_max_window_bits";
    CHECK(offers(two).size() == 2);
    CHECK(response_to(two) == "permessage-deflate; server_max_window_bits=10");
    // The responses of §7.1.3 parse back.
    CHECK(swirl::parse_deflate_response("permessage-deflate; server_max_window_bits=10") == DeflateParams{false, false, 10, 0});
    CHECK(swirl::parse_deflate_response("permessage-deflate; client_max_window_bits=10") == DeflateParams{false, false, 0, 10});
    CHECK(swirl::parse_deflate_response("permessage-deflate") == DeflateParams{});
}

TEST_CASE("the answer to each parameter under each option") {
    DeflateOptions o = enabled();
    // server_no_context_takeover: offered → kept; forced by the options → added.
    CHECK(response_to("permessage-deflate; server_no_context_takeover") == "permessage-deflate; server_no_context_takeover");
    o.server_no_context_takeover = true;
    CHECK(response_to("permessage-deflate", o) == "permessage-deflate; server_no_context_takeover");
    o = enabled();
    // client_no_context_takeover: offered → echoed; requested by the options → added.
    CHECK(response_to("permessage-deflate; client_no_context_takeover") == "permessage-deflate; client_no_context_takeover");
    o.client_no_context_takeover = true;
    CHECK(response_to("permessage-deflate", o) == "permessage-deflate; client_no_context_takeover");
    o = enabled();
    // server_max_window_bits: min(offered, option), always answered when offered; announced when below 15.
    CHECK(response_to("permessage-deflate; server_max_window_bits=15") == "permessage-deflate; server_max_window_bits=15");
    CHECK(response_to("permessage-deflate; server_max_window_bits=8") == "permessage-deflate; server_max_window_bits=8");
    o.server_max_window_bits = 12;
    CHECK(response_to("permessage-deflate; server_max_window_bits=10", o) == "permessage-deflate; server_max_window_bits=10");
    CHECK(response_to("permessage-deflate; server_max_window_bits=14", o) == "permessage-deflate; server_max_window_bits=12");
    CHECK(response_to("permessage-deflate", o) == "permessage-deflate; server_max_window_bits=12");
    o = enabled();
    // client_max_window_bits: never without the offer having it; min(value, option); omitted at 15.
    o.client_max_window_bits = 11;
    CHECK(response_to("permessage-deflate", o) == "permessage-deflate");
    CHECK(response_to("permessage-deflate; client_max_window_bits", o) == "permessage-deflate; client_max_window_bits=11");
    CHECK(response_to("permessage-deflate; client_max_window_bits=9", o) == "permessage-deflate; client_max_window_bits=9");
    CHECK(response_to("permessage-deflate; client_max_window_bits=13", o) == "permessage-deflate; client_max_window_bits=11");
    o = enabled();
    CHECK(response_to("permessage-deflate; client_max_window_bits=10") == "permessage-deflate; client_max_window_bits=10");
    CHECK(response_to("permessage-deflate; client_max_window_bits=15") == "permessage-deflate");
    // Everything at once, in the response's fixed order.
    CHECK(response_to("permessage-deflate; client_max_window_bits=9; server_max_window_bits=8; client_no_context_takeover; "
                      "server_no_context_takeover") ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; "
          "client_max_window_bits=9");
    // Options outside 8..15 are clamped.
    o.server_max_window_bits = 3;
    o.client_max_window_bits = 200;
    CHECK(response_to("permessage-deflate; client_max_window_bits", o) == "permessage-deflate; server_max_window_bits=8");
}

TEST_CASE("the agreed windows and what the codec uses") {
    const DeflateParams none{};
    CHECK(none.server_window_bits() == 15);
    CHECK(none.client_window_bits() == 15);
    const DeflateParams small{false, false, 9, 10};
    CHECK(small.server_window_bits() == 9);
    CHECK(small.client_window_bits() == 10);
}

TEST_CASE("disabled options never negotiate") {
    const Request req = upgrade_with("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    DeflateOptions off;
    CHECK_FALSE(swirl::negotiate_deflate(req, off));
    Response res;
    CHECK_FALSE(swirl::accept_deflate(req, res, off));
    CHECK_FALSE(res.header("Sec-WebSocket-Extensions"));
}

TEST_CASE("accept_deflate answers in the response, next to what a hook already set") {
    const Request req = upgrade_with("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    Response res;
    res.add_header("Set-Cookie", "a=1");
    DeflateOptions o = enabled();
    o.client_max_window_bits = 12;
    const auto p = swirl::accept_deflate(req, res, o);
    REQUIRE(p);
    CHECK(res.header("Sec-WebSocket-Extensions") == "permessage-deflate; client_max_window_bits=12");
    CHECK(res.header("Set-Cookie") == "a=1");
    // What the connection reads back from the response.
    const auto agreed = swirl::parse_deflate_response(*res.header("Sec-WebSocket-Extensions"));
    REQUIRE(agreed);
    CHECK(*agreed == *p);
    CHECK(swirl::is_valid_deflate_response(req, *agreed));

    const Request without = upgrade_with("");
    Response plain;
    CHECK_FALSE(swirl::accept_deflate(without, plain, o));
    CHECK(plain.headers.empty());
}

TEST_CASE("a hook may adjust within what the offer allows, and the result is checked") {
    const Request req = upgrade_with("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; "
                                     "server_no_context_takeover\r\n");
    const auto all = swirl::deflate_offers(req);
    REQUIRE(all.size() == 1);
    DeflateParams p = swirl::accept_deflate_offer(all[0], enabled());
    CHECK(swirl::is_valid_deflate_response(req, p));
    p.server_max_window_bits = 9;       // smaller: allowed
    p.client_no_context_takeover = true;  // allowed even unoffered
    CHECK(swirl::is_valid_deflate_response(req, p));
    DeflateParams larger = p;
    larger.server_max_window_bits = 13;  // more than offered
    CHECK_FALSE(swirl::is_valid_deflate_response(req, larger));
    DeflateParams dropped = p;
    dropped.server_no_context_takeover = false;  // the client asked for it
    CHECK_FALSE(swirl::is_valid_deflate_response(req, dropped));
    DeflateParams unannounced = p;
    unannounced.server_max_window_bits = 0;  // an offered server_max_window_bits must be answered
    CHECK_FALSE(swirl::is_valid_deflate_response(req, unannounced));
    DeflateParams client_limit = p;
    client_limit.client_max_window_bits = 10;  // the offer had no client_max_window_bits
    CHECK_FALSE(swirl::is_valid_deflate_response(req, client_limit));

    const DeflateOffer capped{false, false, 0, true, 10};
    CHECK(swirl::is_valid_deflate_response(capped, DeflateParams{false, false, 0, 10}));
    CHECK(swirl::is_valid_deflate_response(capped, DeflateParams{false, false, 0, 8}));
    CHECK_FALSE(swirl::is_valid_deflate_response(capped, DeflateParams{false, false, 0, 11}));
    CHECK(swirl::is_valid_deflate_response(capped, DeflateParams{}));  // ignoring the client's value is allowed
}

TEST_CASE("a response allows only what RFC 7692 allows in a response") {
    CHECK(swirl::parse_deflate_response("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                                        "server_max_window_bits=8; client_max_window_bits=15") ==
          DeflateParams{true, true, 8, 15});
    CHECK(swirl::parse_deflate_response("Permessage-Deflate; Client_Max_Window_Bits=\"9\"") == DeflateParams{false, false, 0, 9});
    for (const std::string_view bad : {
             "", "permessage-foo", "permessage-deflate; client_max_window_bits",  // a response must give the value
             "permessage-deflate; server_max_window_bits", "permessage-deflate; foo",
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; server_max_window_bits=16", "permessage-deflate, permessage-deflate",
             "permessage-deflate, x-other", "permessage-deflate;",
         }) {
        INFO(bad);
        CHECK_FALSE(swirl::parse_deflate_response(bad));
    }
}

TEST_CASE("deflate_available matches the build") {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
    CHECK(swirl::deflate_available);
#else
    CHECK_FALSE(swirl::deflate_available);
#endif
}

TEST_CASE("a client's offer value reads back as the same offer") {
    swirl::DeflateOffer offer;
    CHECK(swirl::deflate_offer_value(offer) == "permessage-deflate");
    offer.accepts_client_max_window_bits = true;
    CHECK(swirl::deflate_offer_value(offer) == "permessage-deflate; client_max_window_bits");
    for (const bool server_nct : {false, true})
        for (const bool client_nct : {false, true})
            for (const std::uint8_t server_bits : {0, 8, 12, 15})
                for (const std::uint8_t client_bits : {0, 9, 15})
                    for (const bool accepts : {false, true}) {
                        swirl::DeflateOffer o;
                        o.server_no_context_takeover = server_nct;
                        o.client_no_context_takeover = client_nct;
                        o.server_max_window_bits = server_bits;
                        o.client_max_window_bits = client_bits;
                        o.accepts_client_max_window_bits = accepts || client_bits != 0;
                        const auto back = swirl::deflate_offers(swirl::deflate_offer_value(o));
                        REQUIRE(back.size() == 1);
                        CHECK(back[0] == o);
                    }
}
