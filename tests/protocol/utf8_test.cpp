#include "doctest.hpp"

#include <swirl/protocol/utf8.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>

namespace {

/// Builds a byte string from a list of byte values.
std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s += static_cast<char>(b);
    return s;
}

/// Encodes one code point (no validity checks: the caller passes scalar values).
std::string encode(std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

/// Reference verdict for a byte string, written independently of the validator:
/// `prefix_ok` when some continuation could still make it valid UTF-8, `complete` when it already is.
struct RefResult {
    bool prefix_ok;
    bool complete;
};

RefResult reference_utf8(std::string_view in) {
    std::size_t i = 0;
    while (i < in.size()) {
        const auto lead = static_cast<std::uint8_t>(in[i]);
        std::size_t len;
        std::uint32_t cp;
        std::uint32_t min_cp;
        if (lead < 0x80) { len = 1; cp = lead; min_cp = 0; }
        else if ((lead & 0xE0) == 0xC0) { len = 2; cp = lead & 0x1Fu; min_cp = 0x80; }
        else if ((lead & 0xF0) == 0xE0) { len = 3; cp = lead & 0x0Fu; min_cp = 0x800; }
        else if ((lead & 0xF8) == 0xF0) { len = 4; cp = lead & 0x07u; min_cp = 0x10000; }
        else return {false, false};  // continuation byte or 0xF8..0xFF as a lead

        const std::size_t have = std::min(len, in.size() - i);
        for (std::size_t k = 1; k < have; ++k) {
            const auto c = static_cast<std::uint8_t>(in[i + k]);
            if ((c & 0xC0) != 0x80) return {false, false};
            cp = (cp << 6) | (c & 0x3Fu);
        }
        // The range of code points this (possibly truncated) sequence could still become.
        const std::size_t missing = len - have;
        const std::uint32_t lo = cp << (6 * missing);
        const std::uint32_t hi = lo | ((1u << (6 * missing)) - 1);
        const std::uint32_t a = std::max(lo, min_cp);
        const std::uint32_t b = std::min(hi, std::uint32_t{0x10FFFF});
        if (a > b) return {false, false};                         // overlong or too large whatever follows
        if (a >= 0xD800 && b <= 0xDFFF) return {false, false};    // only surrogates possible
        if (missing != 0) return {true, false};                   // truncated at the end
        i += len;
    }
    return {true, true};
}

struct Outcome {
    bool fed;
    bool complete;
    bool failed;
};

Outcome run(std::string_view s) {
    swirl::Utf8Validator v;
    const bool fed = v.feed(s);
    return {fed, v.complete(), v.failed()};
}

bool matches_reference(std::string_view s) {
    const RefResult ref = reference_utf8(s);
    const Outcome got = run(s);
    return got.fed == ref.prefix_ok && got.complete == ref.complete && got.failed == !ref.prefix_ok &&
           swirl::is_valid_utf8(s) == ref.complete;
}

std::string hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (char ch : s) {
        const auto b = static_cast<std::uint8_t>(ch);
        if (!out.empty()) out += ' ';
        out += digits[b >> 4];
        out += digits[b & 0xF];
    }
    return out;
}

} // namespace

TEST_CASE("utf8 reference decoder agrees with hand-checked cases") {
    // Guard the oracle itself before trusting it for the differential tests.
    CHECK(reference_utf8("").complete);
    CHECK(reference_utf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5").complete);
    CHECK(reference_utf8(bytes({0xED})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xED, 0xA0})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xE0, 0x80})).prefix_ok);
    CHECK(reference_utf8(bytes({0xF4, 0x8F})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xF4, 0x90})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xC1})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xF5})).prefix_ok);
    CHECK_FALSE(reference_utf8(bytes({0xF0, 0x8F})).prefix_ok);
}

TEST_CASE("utf8 accepts valid sequences of one to four bytes") {
    CHECK(swirl::is_valid_utf8(""));
    CHECK(swirl::is_valid_utf8("hello, world"));
    CHECK(swirl::is_valid_utf8(std::string_view("\0", 1)));
    CHECK(swirl::is_valid_utf8("\xC3\xA9"));                       // U+00E9
    CHECK(swirl::is_valid_utf8("\xE2\x82\xAC"));                   // U+20AC
    CHECK(swirl::is_valid_utf8("\xF0\x9F\x98\x80"));               // U+1F600
    CHECK(swirl::is_valid_utf8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));  // "κόσμε"
    CHECK(swirl::is_valid_utf8("a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80" "d"));
}

TEST_CASE("utf8 accepts the code points at every encoding boundary") {
    for (std::uint32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFEu, 0xFFFFu,
                             0x10000u, 0x10FFFFu}) {
        CAPTURE(cp);
        CHECK(swirl::is_valid_utf8(encode(cp)));
    }
    CHECK(encode(0x7F) == bytes({0x7F}));
    CHECK(encode(0x80) == bytes({0xC2, 0x80}));
    CHECK(encode(0x7FF) == bytes({0xDF, 0xBF}));
    CHECK(encode(0x800) == bytes({0xE0, 0xA0, 0x80}));
    CHECK(encode(0xFFFF) == bytes({0xEF, 0xBF, 0xBF}));
    CHECK(encode(0x10000) == bytes({0xF0, 0x90, 0x80, 0x80}));
    CHECK(encode(0x10FFFF) == bytes({0xF4, 0x8F, 0xBF, 0xBF}));
}

TEST_CASE("utf8 rejects overlong encodings") {
    for (const std::string& s : {bytes({0xC0, 0x80}), bytes({0xC0, 0xAF}), bytes({0xC1, 0xBF}),
                                 bytes({0xE0, 0x80, 0x80}), bytes({0xE0, 0x9F, 0xBF}), bytes({0xE0, 0x80, 0xAF}),
                                 bytes({0xF0, 0x80, 0x80, 0x80}), bytes({0xF0, 0x8F, 0xBF, 0xBF})}) {
        CAPTURE(hex(s));
        CHECK_FALSE(swirl::is_valid_utf8(s));
        const Outcome o = run(s);
        CHECK_FALSE(o.fed);
        CHECK(o.failed);
    }
}

TEST_CASE("utf8 rejects UTF-16 surrogates") {
    for (const std::string& s : {bytes({0xED, 0xA0, 0x80}), bytes({0xED, 0xAD, 0xBF}), bytes({0xED, 0xAE, 0x80}),
                                 bytes({0xED, 0xBF, 0xBF}), bytes({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80})}) {
        CAPTURE(hex(s));
        CHECK_FALSE(swirl::is_valid_utf8(s));
    }
    // The neighbours of the surrogate block are fine.
    CHECK(swirl::is_valid_utf8(bytes({0xED, 0x9F, 0xBF})));  // U+D7FF
    CHECK(swirl::is_valid_utf8(bytes({0xEE, 0x80, 0x80})));  // U+E000
}

TEST_CASE("utf8 rejects code points above U+10FFFF and impossible lead bytes") {
    CHECK_FALSE(swirl::is_valid_utf8(bytes({0xF4, 0x90, 0x80, 0x80})));
    CHECK_FALSE(swirl::is_valid_utf8(bytes({0xF4, 0xBF, 0xBF, 0xBF})));
    for (int lead = 0xF5; lead <= 0xFF; ++lead) {
        CAPTURE(lead);
        const std::string s = bytes({lead, 0x80, 0x80, 0x80});
        CHECK_FALSE(swirl::is_valid_utf8(s));
        // The lead byte alone is already fatal.
        swirl::Utf8Validator v;
        CHECK_FALSE(v.feed(s.substr(0, 1)));
    }
}

TEST_CASE("utf8 rejects lone continuation bytes") {
    for (int b = 0x80; b <= 0xBF; ++b) {
        CAPTURE(b);
        CHECK_FALSE(swirl::is_valid_utf8(bytes({b})));
        CHECK_FALSE(swirl::is_valid_utf8(bytes({'a', b})));
        CHECK_FALSE(swirl::is_valid_utf8(bytes({0xC3, 0xA9, b})));  // one continuation too many
    }
}

TEST_CASE("utf8 truncated sequences feed successfully but are not complete") {
    for (const std::string& s : {bytes({0xC3}), bytes({0xE2}), bytes({0xE2, 0x82}), bytes({0xF0}),
                                 bytes({0xF0, 0x9F}), bytes({0xF0, 0x9F, 0x98}), bytes({'a', 'b', 0xF4, 0x8F, 0xBF}),
                                 bytes({0xED, 0x9F})}) {
        CAPTURE(hex(s));
        swirl::Utf8Validator v;
        CHECK(v.feed(s));
        CHECK_FALSE(v.complete());
        CHECK_FALSE(v.failed());
        CHECK_FALSE(swirl::is_valid_utf8(s));
    }
    // A truncated sequence followed by something that is not a continuation fails.
    swirl::Utf8Validator v;
    CHECK(v.feed(bytes({0xE2, 0x82})));
    CHECK_FALSE(v.feed("a"));
    CHECK(v.failed());
}

TEST_CASE("utf8 accepts every valid multi-byte sequence split at every byte position") {
    std::size_t checked = 0, mismatches = 0;
    std::string first_bad;
    for (std::uint32_t cp = 0x80; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const std::string s = encode(cp);
        bool ok = swirl::is_valid_utf8(s);
        for (std::size_t cut = 1; cut < s.size(); ++cut) {
            swirl::Utf8Validator v;
            ok = ok && v.feed(std::string_view(s).substr(0, cut)) && !v.complete() && !v.failed();
            ok = ok && v.feed(std::string_view(s).substr(cut)) && v.complete();
        }
        ++checked;
        if (!ok && mismatches++ == 0) first_bad = hex(s);
    }
    CAPTURE(first_bad);
    CHECK(checked == 0x10FFFF + 1 - 0x80 - 0x800);
    CHECK(mismatches == 0);
}

TEST_CASE("utf8 fails as soon as the first impossible byte arrives") {
    // "κόσμε" followed by a surrogate: the A0 after ED is the first byte that cannot continue.
    const std::string s = bytes({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80});
    swirl::Utf8Validator v;
    for (std::size_t i = 0; i < s.size(); ++i) {
        CAPTURE(i);
        const bool fed = v.feed(s.substr(i, 1));
        CHECK(fed == (i < 10));
        CHECK(v.failed() == (i >= 10));
    }
    // Same for overlong and out-of-range starts: the second byte fails.
    for (const std::string& bad : {bytes({0xE0, 0x9F}), bytes({0xF0, 0x8F}), bytes({0xF4, 0x90}), bytes({0xED, 0xBF})}) {
        CAPTURE(hex(bad));
        swirl::Utf8Validator w;
        CHECK(w.feed(bad.substr(0, 1)));
        CHECK_FALSE(w.feed(bad.substr(1, 1)));
    }
    // And in a single call the verdict is the same.
    CHECK_FALSE(swirl::Utf8Validator{}.feed(s.substr(0, 11)));
}

TEST_CASE("utf8 failure is sticky until reset") {
    swirl::Utf8Validator v;
    CHECK_FALSE(v.feed(bytes({0xFF})));
    CHECK(v.failed());
    CHECK_FALSE(v.complete());
    CHECK_FALSE(v.feed("perfectly valid ascii"));
    CHECK_FALSE(v.feed(""));
    CHECK(v.failed());

    v.reset();
    CHECK_FALSE(v.failed());
    CHECK(v.complete());
    CHECK(v.feed("ok \xC3\xA9"));
    CHECK(v.complete());
}

TEST_CASE("utf8 reset discards a pending partial sequence") {
    swirl::Utf8Validator v;
    CHECK(v.feed(bytes({0xE0})));  // expects A0..BF next
    v.reset();
    CHECK(v.complete());
    CHECK(v.feed(bytes({0x80})) == false);  // a fresh validator sees a lone continuation
    v.reset();
    CHECK(v.feed(bytes({0xF4})));  // restricts the next byte to 80..8F
    v.reset();
    CHECK(v.feed(bytes({0xF0, 0x90, 0x80, 0x80})));  // so a following F0 90 is not constrained by F4
    CHECK(v.complete());
}

TEST_CASE("utf8 ASCII fast path finds a bad byte at every offset") {
    // Offsets past two 64-byte steps, so that every loop of the fast path (64-byte steps, 16-byte vectors, words,
    // bytes) meets the byte in each of its positions.
    const std::string ascii(160, 'x');
    for (std::size_t start = 0; start < 8; ++start) {          // also vary the pointer's alignment
        for (std::size_t off = 0; off <= 140; ++off) {
            CAPTURE(start);
            CAPTURE(off);
            for (int bad : {0x80, 0xBF, 0xC0, 0xF5, 0xFF}) {
                std::string s = ascii;
                s[start + off] = static_cast<char>(bad);
                CHECK_FALSE(swirl::is_valid_utf8(std::string_view(s).substr(start)));
            }
            // A valid multi-byte character at that offset must not be skipped either:
            // the ASCII path has to hand it to the sequence checker, which accepts it.
            std::string good = ascii;
            good.replace(start + off, 2, "\xC3\xA9");
            CHECK(swirl::is_valid_utf8(std::string_view(good).substr(start)));
            // A lead byte left dangling at the very end of a long ASCII run.
            std::string dangling = ascii.substr(0, start + off + 9) + "\xE2\x82";
            swirl::Utf8Validator v;
            CHECK(v.feed(std::string_view(dangling).substr(start)));
            CHECK_FALSE(v.complete());
        }
    }
}

TEST_CASE("utf8 skip_ascii finds the first high byte for every length and position") {
    // Every length reaches each way the fast path ends: whole steps only, an overlapping last vector or word, the
    // byte loop; a second high byte later must not be reported instead of the first.
    for (std::size_t start = 0; start < 4; ++start) {
        for (std::size_t length = 0; length <= 150; ++length) {
            std::string s(start + length + 16, 'a');
            const auto* base = reinterpret_cast<const std::uint8_t*>(s.data()) + start;
            CAPTURE(start);
            CAPTURE(length);
            CHECK(swirl::detail::skip_ascii(base, base + length) == base + length);
            CHECK(swirl::is_ascii(std::string_view(s).substr(start, length)));
            for (std::size_t at = 0; at < length; ++at) {
                CAPTURE(at);
                std::string t = s;
                t[start + at] = static_cast<char>(0x80 | (at & 0x7F));
                for (std::size_t later = at + 1; later < length; later += 7) t[start + later] = '\xFF';
                const auto* tb = reinterpret_cast<const std::uint8_t*>(t.data()) + start;
                CHECK(swirl::detail::skip_ascii(tb, tb + length) == tb + at);
                CHECK_FALSE(swirl::is_ascii(std::string_view(t).substr(start, length)));
            }
            // A high byte just past the end is not looked at.
            std::string u = s;
            u[start + length] = '\x80';
            const auto* ub = reinterpret_cast<const std::uint8_t*>(u.data()) + start;
            CHECK(swirl::detail::skip_ascii(ub, ub + length) == ub + length);
        }
    }
}

TEST_CASE("utf8 agrees with a reference decoder on all one- and two-byte inputs") {
    std::size_t mismatches = 0;
    std::string first_bad;
    for (int a = 0; a < 256; ++a) {
        const std::string one = bytes({a});
        if (!matches_reference(one) && mismatches++ == 0) first_bad = hex(one);
        for (int b = 0; b < 256; ++b) {
            const std::string two = bytes({a, b});
            if (!matches_reference(two) && mismatches++ == 0) first_bad = hex(two);
        }
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
}

TEST_CASE("utf8 agrees with a reference decoder on random short byte strings") {
    // Bytes near every interesting boundary, mixed with uniformly random ones.
    static constexpr std::uint8_t special[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
                                               0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3,
                                               0xF4, 0xF5, 0xFF};
    std::mt19937 rng(20240607);
    std::size_t mismatches = 0, split_mismatches = 0, valid_seen = 0;
    std::string first_bad;
    for (int iter = 0; iter < 300'000; ++iter) {
        const std::size_t len = rng() % 13;
        std::string s;
        for (std::size_t i = 0; i < len; ++i) {
            const std::uint32_t r = rng();
            if (r & 1) s += static_cast<char>(special[(r >> 1) % sizeof special]);
            else if (r & 2) s += static_cast<char>(0x80 | ((r >> 2) & 0x3F));  // continuation bytes are common
            else s += static_cast<char>((r >> 2) & 0xFF);
        }
        const RefResult ref = reference_utf8(s);
        valid_seen += ref.complete;
        if (!matches_reference(s) && mismatches++ == 0) first_bad = hex(s);

        // Fed in two pieces, the verdict does not change.
        const std::size_t cut = len == 0 ? 0 : rng() % (len + 1);
        swirl::Utf8Validator v;
        const bool fed = v.feed(std::string_view(s).substr(0, cut)) && v.feed(std::string_view(s).substr(cut));
        if ((fed != ref.prefix_ok || v.complete() != ref.complete) && split_mismatches++ == 0) first_bad = hex(s);
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
    CHECK(split_mismatches == 0);
    CHECK(valid_seen > 10'000);  // the generator really exercises the valid side too
}

TEST_CASE("utf8 is_valid_utf8 agrees with a reference decoder after an ASCII run of every length") {
    // The fast path skips ASCII 64, 16 and 8 bytes at a time, then bytes, before it hands a lead byte to the sequence
    // checker: runs of every length up to past two 64-byte steps.
    static constexpr std::uint8_t tails[] = {0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xC3, 0xA9, 0xE0, 0xE2, 0x82, 0xAC,
                                             0xED, 0xA0, 0xF0, 0x90, 0xF4, 0x8F, 0xF5, 0xFF};
    std::mt19937 rng(20261122);
    std::size_t mismatches = 0, valid_seen = 0, invalid_seen = 0;
    std::string first_bad;
    for (std::size_t ascii = 0; ascii <= 150; ++ascii) {
        for (int iter = 0; iter < 700; ++iter) {
            std::string s(ascii, 'x');
            for (std::size_t i = rng() % 6; i > 0; --i) s += static_cast<char>(tails[rng() % sizeof tails]);
            const bool valid = reference_utf8(s).complete;
            (valid ? valid_seen : invalid_seen)++;
            if (!matches_reference(s) && mismatches++ == 0) first_bad = hex(s);
        }
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
    CHECK(valid_seen > 10'000);
    CHECK(invalid_seen > 10'000);
}

TEST_CASE("utf8 agrees with a reference decoder on long mostly-ASCII texts fed in random pieces") {
    // Texts of up to 600 bytes: ASCII runs of random length between characters of every length, with now and then a
    // byte from near a boundary, so that a sequence starts, ends or breaks anywhere in a 64-byte step.
    static constexpr std::uint8_t odd[] = {0x80, 0xBF, 0xC0, 0xC1, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
    static constexpr std::uint32_t chars[] = {0xE9, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0x10000, 0x10FFFF};
    std::mt19937 rng(20261130);
    std::size_t mismatches = 0, valid_seen = 0, invalid_seen = 0;
    std::string first_bad;
    for (int iter = 0; iter < 20'000; ++iter) {
        std::string s;
        const std::size_t size = rng() % 600;
        while (s.size() < size) {
            s.append(rng() % 90, 'a');
            const std::uint32_t r = rng() % 64;
            if (r < 3) s += static_cast<char>(odd[rng() % sizeof odd]);
            else if (r < 20) s += encode(chars[rng() % std::size(chars)]);
        }
        const RefResult ref = reference_utf8(s);
        (ref.complete ? valid_seen : invalid_seen)++;
        swirl::Utf8Validator v;
        bool fed = true;
        for (std::size_t at = 0; at < s.size() && fed;) {
            const std::size_t n = std::min<std::size_t>(s.size() - at, 1 + rng() % 200);
            fed = v.feed(std::string_view(s).substr(at, n));
            at += n;
        }
        if ((fed != ref.prefix_ok || v.complete() != ref.complete || !matches_reference(s)) && mismatches++ == 0)
            first_bad = hex(s);
    }
    CAPTURE(first_bad);
    CHECK(mismatches == 0);
    CHECK(valid_seen > 2'000);
    CHECK(invalid_seen > 2'000);
}
