/// libFuzzer target: differential test of the JSON parser policy's DOM-free paths.
///
/// The input is one message. `JsonParser::decode`, which scans plain messages without building a DOM, must decode
/// it exactly as the DOM reference (tests/json_reference.hpp) does: the same call or the same error reply. The
/// arguments of a decoded call must then encode (`append_value`) exactly as nlohmann's `dump()` writes them.

#include "fuzz_support.hpp"

#include "json_reference.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string payload(reinterpret_cast<const char*>(data), size);
    const swirl::JsonParser parser;
    const auto expected = json_reference::decode(payload, parser);
    FUZZ_CHECK(json_reference::decode_with(parser, payload) == expected);
    if (expected.call) {
        std::string out;
        swirl::JsonParser::append_value(out, expected.call->args);
        FUZZ_CHECK(out == expected.call->args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    return 0;
}
