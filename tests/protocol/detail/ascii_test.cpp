#include <swirl/protocol/detail/ascii.hpp>

#include "doctest.hpp"

#include <string>

using swirl::detail::ascii_lower;
using swirl::detail::iequals;

TEST_CASE("iequals matches ASCII case folding for every pair of bytes, and nothing else") {
    for (int i = 0; i < 256; ++i) {
        for (int j = 0; j < 256; ++j) {
            const char a = static_cast<char>(i), b = static_cast<char>(j);
            const bool expected = ascii_lower(a) == ascii_lower(b);
            INFO("bytes ", i, " and ", j);
            REQUIRE(iequals(std::string(1, a), std::string(1, b)) == expected);
        }
    }
}

TEST_CASE("iequals compares field names whole, in any case") {
    CHECK(iequals("Sec-WebSocket-Key", "sec-websocket-key"));
    CHECK(iequals("SEC-WEBSOCKET-KEY", "Sec-WebSocket-Key"));
    CHECK(iequals("", ""));
    CHECK_FALSE(iequals("Sec-WebSocket-Key", "Sec-WebSocket-Kex"));
    CHECK_FALSE(iequals("Host", "Hos"));
    CHECK_FALSE(iequals("Upgrade", "Upgrade "));
    // '@' (0x40) and '`' (0x60) differ by the case bit but are not letters; nor are '[' and '{'.
    CHECK_FALSE(iequals("@", "`"));
    CHECK_FALSE(iequals("[", "{"));
    static_assert(iequals("Connection", "connection"));
}
