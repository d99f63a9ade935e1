#include "doctest.hpp"

#include <swirl/detail/json_envelope.hpp>

#include <cstddef>
#include <string>
#include <string_view>

using swirl::detail::find_json_special;
using swirl::detail::JsonEnvelope;

namespace {

std::size_t find_one_at_a_time(std::string_view text, std::size_t i) {
    while (i < text.size() && !swirl::detail::is_json_special(text[i])) ++i;
    return i;
}

} // namespace

TEST_CASE("json envelope: find_json_special agrees with a byte-at-a-time scan for every byte and position") {
    std::size_t checked = 0;
    for (int byte = 0; byte < 256; ++byte) {
        for (std::size_t length = 1; length <= 19; ++length) {
            for (std::size_t at = 0; at < length; ++at) {
                std::string text(length, 'a');
                text[at] = static_cast<char>(byte);
                for (std::size_t from = 0; from <= length; ++from) {
                    const std::size_t want = find_one_at_a_time(text, from);
                    if (find_json_special(text, from) != want) {
                        FAIL_CHECK("byte ", byte, " at ", at, " of ", length, ", from ", from);
                        return;
                    }
                    ++checked;
                }
            }
        }
    }
    CHECK(checked > 400000);
    // The neighbours of each special class, which a carry between bytes of a word could confuse.
    const std::string edges = std::string("!#[]^\x7f\x80\xff \x1f") + '\0';
    CHECK(find_json_special(edges, 0) == 9);
    CHECK(find_json_special(std::string(64, 'x') + "\\", 0) == 64);
    CHECK(find_json_special(std::string(64, '\xe2'), 0) == 64);
}

TEST_CASE("json envelope: a plain string content needs no parser and nests nothing") {
    const auto scanned = [](std::string_view text) {
        const auto e = JsonEnvelope::scan(text);
        REQUIRE(e);
        return *e;
    };
    const auto plain = scanned(R"({"class":"Room","action":"say","content":"h\u00e9llo world, a long line"})");
    CHECK_FALSE(plain.content_is_string);  // an escape: nlohmann decodes it
    const auto text = scanned("{\"action\":\"say\",\"content\":\"h\xc3\xa9llo, [not] {nested}\"}");
    CHECK(text.content_is_string);
    CHECK(*text.content == "\"h\xc3\xa9llo, [not] {nested}\"");
    CHECK_FALSE(text.may_nest());
    CHECK(scanned(R"({"content":{"a":[1]}})").may_nest());
    CHECK(scanned(R"({"content":[]})").may_nest());
    CHECK_FALSE(scanned(R"({"content":12})").content_is_string);
    // Not yet parsed, a number may hide brackets (the parser rejects it later, the nesting limit first).
    const auto hidden = scanned(R"({"content":12[[[["})");
    CHECK(*hidden.content == R"(12[[[[")");
    CHECK(hidden.may_nest());
    CHECK_FALSE(scanned(R"({"action":"x"})").may_nest());
    // Invalid UTF-8 (possible in a binary message) is not plain: the parser rejects it.
    CHECK_FALSE(scanned("{\"content\":\"\xc3\x28\"}").content_is_string);
    // The end of a string is found past runs of eight plain bytes and escaped quotes.
    const auto escaped = scanned(R"({"content":{"k":"abcdefgh\"ijklmnop\\","l":[1]},"action":"x"})");
    CHECK(*escaped.content == R"({"k":"abcdefgh\"ijklmnop\\","l":[1]})");
    CHECK(*escaped.action == "x");
}
