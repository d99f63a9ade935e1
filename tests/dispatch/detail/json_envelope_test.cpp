#include "doctest.hpp"

#include <swirl/dispatch/detail/json_envelope.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>

using swirl::detail::find_json_special;
using swirl::detail::JsonEnvelope;

namespace {

std::size_t find_one_at_a_time(std::string_view text, std::size_t i, bool or_non_ascii = false) {
    while (i < text.size() && !swirl::detail::is_json_special(text[i]) &&
           !(or_non_ascii && static_cast<unsigned char>(text[i]) >= 0x80))
        ++i;
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
                    for (const bool or_non_ascii : {false, true}) {
                        if (find_json_special(text, from, or_non_ascii) != find_one_at_a_time(text, from, or_non_ascii)) {
                            FAIL_CHECK("byte ", byte, " at ", at, " of ", length, ", from ", from, ", non-ASCII ", or_non_ascii);
                            return;
                        }
                        ++checked;
                    }
                }
            }
        }
    }
    CHECK(checked > 800000);
    // The neighbours of each special class, which a carry between bytes of a word could confuse.
    const std::string edges = std::string("!#[]^\x7f\x80\xff \x1f") + '\0';
    CHECK(find_json_special(edges, 0) == 9);
    CHECK(find_json_special(std::string(64, 'x') + "\\", 0) == 64);
    CHECK(find_json_special(std::string(64, '\xe2'), 0) == 64);
    CHECK(find_json_special(std::string(64, '\xe2'), 0, true) == 0);
}

TEST_CASE("json envelope: find_json_special reports the first of several flagged bytes in a word") {
    // A word's flags above its first special byte may be spurious (a borrow): only the first may count.
    static constexpr char alphabet[] = {'a', '"', '\\', '\0', '\x1f', ' ', '!', '#', '[', ']', '\x7f', '\x80', '\xff', '\x01'};
    std::mt19937 rng(20261122);
    std::size_t mismatches = 0;
    std::string first_bad;
    for (int iter = 0; iter < 200'000; ++iter) {
        std::string text(rng() % 25, 'a');
        for (char& c : text) c = alphabet[rng() % sizeof alphabet];
        const std::size_t from = text.empty() ? 0 : rng() % (text.size() + 1);
        for (const bool or_non_ascii : {false, true}) {
            if (find_json_special(text, from, or_non_ascii) != find_one_at_a_time(text, from, or_non_ascii) && mismatches++ == 0)
                first_bad = text;
        }
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
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
