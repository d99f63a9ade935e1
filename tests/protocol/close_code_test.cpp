#include "doctest.hpp"

#include <swirl/protocol/close_code.hpp>

#include <cstdint>
#include <initializer_list>

TEST_CASE("close code validity matches the RFC 6455 rule for every 16-bit value") {
    // Valid iff 1000-1003, 1007-1014 or 3000-4999.
    auto rule = [](std::uint32_t c) {
        return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    };
    std::uint32_t mismatches = 0, first_bad = 0, valid = 0;
    for (std::uint32_t c = 0; c <= 0xFFFF; ++c) {
        const bool got = swirl::close_code::is_valid(static_cast<std::uint16_t>(c));
        valid += got;
        if (got != rule(c) && mismatches++ == 0) first_bad = c;
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
    CHECK(valid == 4 + 8 + 2000);
}

TEST_CASE("close code validity rejects reserved, unassigned and out-of-range codes") {
    for (std::uint16_t c : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        CAPTURE(c);
        CHECK_FALSE(swirl::close_code::is_valid(c));
    }
}

TEST_CASE("close code validity accepts the edges of each valid range") {
    for (std::uint16_t c : {1000, 1003, 1007, 1014, 3000, 3999, 4000, 4999}) {
        CAPTURE(c);
        CHECK(swirl::close_code::is_valid(c));
    }
}

TEST_CASE("named close codes have their RFC values and validity") {
    namespace cc = swirl::close_code;
    CHECK(cc::normal == 1000);
    CHECK(cc::going_away == 1001);
    CHECK(cc::protocol_error == 1002);
    CHECK(cc::unsupported_data == 1003);
    CHECK(cc::no_status == 1005);
    CHECK(cc::abnormal == 1006);
    CHECK(cc::invalid_payload == 1007);
    CHECK(cc::policy_violation == 1008);
    CHECK(cc::message_too_big == 1009);
    CHECK(cc::mandatory_extension == 1010);
    CHECK(cc::internal_error == 1011);
    CHECK(cc::service_restart == 1012);
    CHECK(cc::try_again_later == 1013);
    CHECK(cc::bad_gateway == 1014);
    // Codes that must never be sent on the wire.
    CHECK_FALSE(cc::is_valid(cc::no_status));
    CHECK_FALSE(cc::is_valid(cc::abnormal));
    for (std::uint16_t c : {cc::normal, cc::going_away, cc::protocol_error, cc::unsupported_data, cc::invalid_payload,
                            cc::policy_violation, cc::message_too_big, cc::mandatory_extension, cc::internal_error,
                            cc::service_restart, cc::try_again_later, cc::bad_gateway}) {
        CAPTURE(c);
        CHECK(cc::is_valid(c));
    }
    // Usable in constant expressions.
    static_assert(cc::is_valid(cc::normal) && !cc::is_valid(cc::no_status));
}
