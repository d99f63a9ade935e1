/// libFuzzer target: permessage-deflate negotiation (swirl/protocol/permessage_deflate.hpp) on arbitrary
/// `Sec-WebSocket-Extensions` values.
///
/// Input layout: [server bits][client bits][flags] then the field value (split into several fields at '\n').
///  - every offer read is in range; without quotes, fields read one by one give what they give joined by commas;
///  - the answer to every offer under input-derived options is a valid response to it, serialises to a value that
///    parses back to the same parameters, and `negotiate_deflate` answers the first offer;
///  - the value read as a response, when it parses, re-serialises to a value that parses to the same parameters,
///    and is a valid answer to an offer with the same parameters;
///  - the extension list parser's elements name text inside the input, with named parameters, never too many.

#include "fuzz_support.hpp"

#include <swirl/protocol/permessage_deflate.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

bool in_range(std::uint8_t bits) { return bits == 0 || (bits >= 8 && bits <= 15); }

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    swirl::DeflateOptions options;
    options.enabled = true;
    options.server_max_window_bits = in.byte();  // clamped by the negotiation
    options.client_max_window_bits = in.byte();
    const std::uint8_t flags = in.byte();
    options.server_no_context_takeover = (flags & 1) != 0;
    options.client_no_context_takeover = (flags & 2) != 0;
    const std::string_view text = in.rest_chars();

    // Field by field.
    std::vector<swirl::DeflateOffer> by_field;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto nl = std::min(text.find('\n', start), text.size());
        swirl::append_deflate_offers(text.substr(start, nl - start), by_field);
        start = nl + 1;
    }

    for (const auto& o : by_field) {
        FUZZ_CHECK(in_range(o.server_max_window_bits));
        FUZZ_CHECK(in_range(o.client_max_window_bits));
        FUZZ_CHECK(o.client_max_window_bits == 0 || o.accepts_client_max_window_bits);
        const auto p = swirl::accept_deflate_offer(o, options);
        FUZZ_CHECK(in_range(p.server_max_window_bits) && in_range(p.client_max_window_bits));
        FUZZ_CHECK(swirl::is_valid_deflate_response(o, p));
        const std::string response = swirl::deflate_response(p);
        const auto back = swirl::parse_deflate_response(response);
        FUZZ_CHECK(back && *back == p);
    }
    const auto agreed = swirl::negotiate_deflate(by_field, options);
    FUZZ_CHECK(agreed.has_value() == !by_field.empty());
    if (agreed) FUZZ_CHECK(*agreed == swirl::accept_deflate_offer(by_field.front(), options));

    // Without quoted strings (which may swallow what follows), the fields joined by commas read the same.
    if (text.find('"') == std::string_view::npos) {
        std::string joined(text);
        std::replace(joined.begin(), joined.end(), '\n', ',');
        FUZZ_CHECK(swirl::deflate_offers(joined) == by_field);
    }

    // The value as a response.
    if (const auto r = swirl::parse_deflate_response(text)) {
        FUZZ_CHECK(in_range(r->server_max_window_bits) && in_range(r->client_max_window_bits));
        const auto again = swirl::parse_deflate_response(swirl::deflate_response(*r));
        FUZZ_CHECK(again && *again == *r);
        swirl::DeflateOffer same;
        same.server_no_context_takeover = r->server_no_context_takeover;
        same.server_max_window_bits = r->server_max_window_bits;
        same.accepts_client_max_window_bits = true;
        FUZZ_CHECK(swirl::is_valid_deflate_response(same, *r));
    }

    // The list parser neither loses nor invents elements: each reported name is where the input has it.
    swirl::detail::ExtensionListParser parser(text);
    swirl::detail::ExtensionElement e;
    std::size_t elements = 0;
    while (parser.next(e)) {
        FUZZ_CHECK(++elements <= text.size());
        FUZZ_CHECK(e.malformed || !e.name.empty());
        if (!e.name.empty()) FUZZ_CHECK(e.name.data() >= text.data() && e.name.data() + e.name.size() <= text.data() + text.size());
        FUZZ_CHECK(e.param_count <= swirl::detail::ExtensionElement::max_params);
        for (std::size_t i = 0; i < e.param_count; ++i) {
            FUZZ_CHECK(!e.params[i].name.empty());
            FUZZ_CHECK(e.params[i].has_value || e.params[i].value.empty());
        }
    }
    return 0;
}
