/// libFuzzer target: differential test of swirl's UTF-8 validator against fuzz::utf8_reference.
///
/// Input layout: [chunk seed] then the text. `is_valid_utf8` must agree with the reference on the whole text,
/// and `Utf8Validator` fed in input-derived chunks must fail exactly in the chunk holding the first impossible
/// byte (no earlier, no later), stay failed, and report `complete()` only for valid text. Any disagreement aborts.

#include "fuzz_support.hpp"

#include <swirl/protocol/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

/// A second, even plainer reference for complete strings: decode each character to its scalar value, then
/// reject overlongs, surrogates and values over U+10FFFF.
bool decode_all(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<std::uint8_t>(s[i]);
        std::size_t len = b < 0x80 ? 1 : b >> 5 == 0x6 ? 2 : b >> 4 == 0xE ? 3 : b >> 3 == 0x1E ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        std::uint32_t cp = len == 1 ? b : b & (0x7Fu >> len);
        for (std::size_t k = 1; k < len; ++k) {
            const auto c = static_cast<std::uint8_t>(s[i + k]);
            if (c >> 6 != 0x2) return false;
            cp = cp << 6 | (c & 0x3Fu);
        }
        static constexpr std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < smallest[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    fuzz::Chunker chunker(in.byte());
    const std::string_view text = in.rest_chars();

    const auto ref = fuzz::utf8_reference(text);
    FUZZ_CHECK(ref.first_bad <= text.size());
    FUZZ_CHECK(ref.complete == decode_all(text));  // the two references agree with each other
    FUZZ_CHECK(swirl::is_valid_utf8(text) == ref.complete);

    // Chunked: feed() turns false in the chunk that holds byte `first_bad` and stays false.
    swirl::Utf8Validator v;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t n = chunker.size(text.size() - pos);
        const bool ok = v.feed(text.substr(pos, n));
        pos += n;
        FUZZ_CHECK(ok == (pos <= ref.first_bad));
        FUZZ_CHECK(v.failed() == !ok);
        if (chunker.coin(4)) FUZZ_CHECK(v.feed({}) == ok);  // an empty feed changes nothing
    }
    FUZZ_CHECK(v.complete() == ref.complete);
    FUZZ_CHECK(!(v.complete() && v.failed()));
    if (v.failed()) FUZZ_CHECK(!v.feed("a"));  // sticky, even for ASCII

    // After reset() the validator is new again.
    v.reset();
    FUZZ_CHECK(!v.failed() && v.complete());
    FUZZ_CHECK(v.feed(text) == (ref.first_bad == text.size()));
    FUZZ_CHECK(v.complete() == ref.complete);

    // Every prefix ending at the first bad byte is still a valid prefix; the byte after makes it invalid.
    if (ref.first_bad < text.size()) {
        swirl::Utf8Validator p;
        FUZZ_CHECK(p.feed(text.substr(0, ref.first_bad)));
        FUZZ_CHECK(!p.feed(text.substr(ref.first_bad, 1)));
    }
    return 0;
}
