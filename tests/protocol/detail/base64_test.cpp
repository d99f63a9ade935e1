#include "doctest.hpp"

#include <swirl/protocol/detail/base64.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Vector {
    std::string_view plain;
    std::string_view encoded;
};

// RFC 4648 §10.
constexpr Vector rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

} // namespace

TEST_CASE("base64 encodes the RFC 4648 test vectors") {
    for (const auto& v : rfc4648) {
        CAPTURE(v.plain);
        CHECK(swirl::detail::base64_encode(v.plain) == v.encoded);
    }
}

TEST_CASE("base64 decodes the RFC 4648 test vectors") {
    for (const auto& v : rfc4648) {
        CAPTURE(v.encoded);
        const auto decoded = swirl::detail::base64_decode(v.encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == v.plain);
    }
}

TEST_CASE("base64 encodes the span and string_view overloads alike") {
    const std::vector<std::uint8_t> bytes{0x00, 0xFF, 0x10, 0x80};
    const std::string as_string("\x00\xFF\x10\x80", 4);
    CHECK(swirl::detail::base64_encode(std::span<const std::uint8_t>(bytes)) == "AP8QgA==");
    CHECK(swirl::detail::base64_encode(as_string) == "AP8QgA==");
    // RFC 6455 §1.3: the accept value for the sample key.
    const std::uint8_t digest[] = {0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16, 0x90, 0xf6,
                                   0x46, 0x06, 0xcf, 0x38, 0x59, 0x45, 0xb2, 0xbe, 0xc4, 0xea};
    CHECK(swirl::detail::base64_encode(std::span<const std::uint8_t>(digest)) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("base64 decode rejects lengths that are not a multiple of four") {
    for (std::string_view s : {"Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zm9vYg", "Zm9vYg=", "Zm9vYmFy="}) {
        CAPTURE(s);
        CHECK_FALSE(swirl::detail::base64_decode(s).has_value());
    }
}

TEST_CASE("base64 decode rejects characters outside the alphabet") {
    for (std::string_view s : {"Zm9v!A==", "Zm 9", "Zm9\n", "Zm-v", "Zm_v", "Zm9v\r\nYg", "Zm.v", "****"}) {
        CAPTURE(s);
        CHECK_FALSE(swirl::detail::base64_decode(s).has_value());
    }
    // NUL and high bytes.
    CHECK_FALSE(swirl::detail::base64_decode(std::string_view("Zm\0v", 4)).has_value());
    CHECK_FALSE(swirl::detail::base64_decode("Zm\xC3v").has_value());
    CHECK_FALSE(swirl::detail::base64_decode("Zm\xFFv").has_value());
}

TEST_CASE("base64 decode rejects misplaced padding") {
    for (std::string_view s : {"=AAA", "A=AA", "AA=A", "A===", "====", "Zg==Zm9v", "Zm8=Zm9v", "Zm=vZm9v", "AAA=AAAA"}) {
        CAPTURE(s);
        CHECK_FALSE(swirl::detail::base64_decode(s).has_value());
    }
    // Properly padded forms still decode.
    CHECK(swirl::detail::base64_decode("AA==") == std::optional<std::string>(std::string(1, '\0')));
    CHECK(swirl::detail::base64_decode("AAA=") == std::optional<std::string>(std::string(2, '\0')));
    CHECK(swirl::detail::base64_decode("AAAA") == std::optional<std::string>(std::string(3, '\0')));
}

TEST_CASE("base64 round trips every byte value") {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    // Every length 0..256 of a prefix exercises all three tail shapes.
    for (std::size_t n = 0; n <= all.size(); ++n) {
        const std::string plain = all.substr(0, n);
        const std::string enc = swirl::detail::base64_encode(plain);
        CHECK(enc.size() == (n + 2) / 3 * 4);
        const auto dec = swirl::detail::base64_decode(enc);
        REQUIRE(dec.has_value());
        CHECK(*dec == plain);
    }
    // And with every byte value in each position of a 3-byte group.
    std::size_t mismatches = 0;
    for (int b = 0; b < 256; ++b)
        for (std::size_t pos = 0; pos < 3; ++pos) {
            std::string plain = "xyz";
            plain[pos] = static_cast<char>(b);
            const auto dec = swirl::detail::base64_decode(swirl::detail::base64_encode(plain));
            if (!dec || *dec != plain) ++mismatches;
        }
    CHECK(mismatches == 0);
}
