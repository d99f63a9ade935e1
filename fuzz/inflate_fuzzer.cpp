/// libFuzzer target: swirl::Inflater (permessage-deflate decompression, RFC 7692 §7.2.2) against zlib.
///
/// Input layout: [window][flags][limit][chunk seed][compression] then messages, each [length byte][bytes] (length
/// 0xFF: the rest). flags: bit 0 no context takeover; bit 1 the messages are plaintexts that zlib compresses first,
/// bit 2 then flips one byte of each and bit 3 repeats each plaintext 97 times, so valid, broken and large streams
/// are all common; otherwise the bytes are fed as they are. compression: level (% 10), strategy (/ 10 % 5), and
/// bit 7 compresses with a 32 KiB window whatever was agreed (a peer breaking the agreement).
///
/// Each message is inflated by the Inflater in input-derived chunks (moving it now and then, with empty pieces),
/// and by two one-shot zlib references over payload + 00 00 ff ff with the same rules for what ends a message:
///  - strict: the agreed window, one byte of output per call, so that zlib checks every distance against it;
///  - lenient: a 32 KiB window, one call, so that only distances beyond all output fail.
/// zlib checks distances against its window only before the current call's output, so the Inflater may land on
/// either side for a distance beyond the agreed window; it must equal one of the two (result, and output when
/// ok or too big), and both when they agree. Always: never more than the limit, exactly the limit on too_big,
/// buffers never beyond the limit. Comparison stops at the first message where anything fails or differs.

#include "fuzz_support.hpp"

#include <swirl/protocol/deflate.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using swirl::InflateResult;

const std::string tail("\x00\x00\xff\xff", 4);

struct Outcome {
    InflateResult result = InflateResult::ok;
    std::string out;  ///< for ok and too_big

    bool operator==(const Outcome& o) const {
        return result == o.result && (result == InflateResult::corrupt || out == o.out);
    }
};

/// zlib over one message at a time, keeping its stream across messages (unless told not to).
class Reference {
public:
    Reference(int bits, bool strict) : strict_(strict) { FUZZ_CHECK(inflateInit2(&z_, -bits) == Z_OK); }
    ~Reference() { inflateEnd(&z_); }
    Reference(const Reference&) = delete;
    Reference& operator=(const Reference&) = delete;

    void reset() { inflateReset(&z_); }

    /// The payload's outcome: empty → empty message; else payload + tail must decode, ending between blocks
    /// byte-aligned, or just where a stream (BFINAL) ended. A stream that ends exactly at the end of the payload
    /// needs no tail; bytes after a stream's end start a new one.
    Outcome message(std::string_view payload, std::size_t limit) {
        Outcome o;
        if (payload.empty()) return o;
        std::string input(payload);
        input += tail;
        o.out.resize(limit + 1);
        std::size_t produced = 0;
        z_.next_in = reinterpret_cast<Bytef*>(input.data());
        z_.avail_in = static_cast<uInt>(input.size());
        bool ended = false, between_blocks = false;
        while (true) {
            const std::size_t room = strict_ ? 1 : limit + 1 - produced;
            z_.next_out = reinterpret_cast<Bytef*>(o.out.data() + produced);
            z_.avail_out = static_cast<uInt>(room);
            const uInt before = z_.avail_in;
            const int rc = inflate(&z_, Z_SYNC_FLUSH);
            const std::size_t made = room - z_.avail_out;
            produced += made;
            if (produced == limit + 1) {  // one byte past the limit: too big, whatever else this call found
                o.result = InflateResult::too_big;
                o.out.resize(limit);
                return o;
            }
            const bool progress = made != 0 || z_.avail_in != before;
            if (rc == Z_STREAM_END) {
                ended = true;
                inflateReset(&z_);
                if (z_.avail_in == tail.size() || z_.avail_in == 0) break;  // ended with the payload, or the input
                continue;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                o.result = InflateResult::corrupt;
                return o;
            }
            if (progress) {
                if (z_.avail_in != before) ended = false;
                between_blocks = z_.data_type == 128;
            }
            if (z_.avail_out != 0 && (z_.avail_in == 0 || !progress)) break;
        }
        if (z_.avail_in != 0 && !(ended && z_.avail_in == tail.size())) {
            o.result = InflateResult::corrupt;
            return o;
        }
        if (!ended && !between_blocks) {
            o.result = InflateResult::corrupt;
            return o;
        }
        o.out.resize(produced);
        return o;
    }

private:
    bool strict_;
    z_stream z_{};
};

std::size_t limit_from(std::uint8_t b) {
    if (b == 0xFF) return 65536;
    if (b >= 0xF0) return 8192;
    return std::size_t{b} * 16;
}

/// The messages: length-prefixed pieces of the rest of the input.
std::vector<std::string_view> split_messages(std::string_view rest) {
    std::vector<std::string_view> out;
    while (!rest.empty() && out.size() < 64) {
        const auto len = static_cast<std::uint8_t>(rest.front());
        rest.remove_prefix(1);
        const std::size_t n = len == 0xFF ? rest.size() : std::min<std::size_t>(len, rest.size());
        out.push_back(rest.substr(0, n));
        rest.remove_prefix(n);
    }
    return out;
}

/// zlib's compression of each plaintext (sync flush, tail cut), as a peer would send them.
std::vector<std::string> compress_all(const std::vector<std::string_view>& plain, int bits, bool no_context, bool repeated,
                                      std::uint8_t compression) {
    static constexpr int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
    const int level = (compression & 0x7F) % 10;
    const int strategy = strategies[(compression & 0x7F) / 10 % 5];
    const int window = (compression & 0x80) != 0 ? 15 : std::max(bits, 9);
    const std::size_t repeat = repeated ? 97 : 1;
    z_stream z{};
    FUZZ_CHECK(deflateInit2(&z, level, Z_DEFLATED, -window, 8, strategy) == Z_OK);
    std::vector<std::string> out;
    for (const auto m : plain) {
        std::string text;
        for (std::size_t i = 0; i < repeat; ++i) text += m;
        if (text.empty()) {
            out.emplace_back(1, '\0');  // zlib skips a sync flush right after another
            continue;
        }
        std::string c(deflateBound(&z, text.size()) + 64, '\0');
        z.next_in = reinterpret_cast<Bytef*>(text.data());
        z.avail_in = static_cast<uInt>(text.size());
        z.next_out = reinterpret_cast<Bytef*>(c.data());
        z.avail_out = static_cast<uInt>(c.size());
        FUZZ_CHECK(deflate(&z, Z_SYNC_FLUSH) == Z_OK && z.avail_in == 0 && z.avail_out > 6);
        c.resize(c.size() - z.avail_out);
        FUZZ_CHECK(c.size() >= 5 && c.ends_with(tail));
        c.resize(c.size() - 4);
        out.push_back(std::move(c));
        if (no_context) deflateReset(&z);
    }
    deflateEnd(&z);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const int bits = 8 + in.byte() % 8;
    const std::uint8_t flags = in.byte();
    const std::size_t limit = limit_from(in.byte());
    fuzz::Chunker chunker(in.byte());
    const std::uint8_t compression = in.byte();
    const bool no_context = (flags & 1) != 0;

    const auto pieces = split_messages(in.rest_chars());
    std::vector<std::string> payloads;
    if ((flags & 2) != 0) {
        payloads = compress_all(pieces, bits, no_context, (flags & 8) != 0, compression);
        if ((flags & 4) != 0) {
            for (std::size_t i = 0; i < payloads.size(); ++i) {
                auto& p = payloads[i];
                if (p.empty() || pieces[i].empty()) continue;
                const auto at = static_cast<std::uint8_t>(pieces[i][0]) % p.size();
                p[at] = static_cast<char>(p[at] ^ (1 << (static_cast<std::uint8_t>(pieces[i].back()) % 8)));
            }
        }
    } else {
        for (const auto p : pieces) payloads.emplace_back(p);
    }

    Reference strict(bits, true);
    Reference lenient(15, false);
    swirl::Inflater inflater(bits, no_context);
    std::string out;
    for (const auto& payload : payloads) {
        const Outcome s = strict.message(payload, limit);
        const Outcome l = lenient.message(payload, limit);
        if (bits == 15) FUZZ_CHECK(s == l);  // the same rules with the same window

        out.clear();
        Outcome mine;
        std::size_t pos = 0;
        do {
            const std::size_t n = payload.empty() ? 0 : chunker.size(payload.size() - pos);
            const bool fin = pos + n == payload.size() && !chunker.coin(8);  // now and then an empty last frame
            mine.result = inflater.inflate(std::string_view(payload).substr(pos, n), fin, out, limit);
            pos += n;
            FUZZ_CHECK(out.size() <= limit);
            FUZZ_CHECK(out.capacity() <= std::max<std::size_t>(limit, 15) + 64);
            if (mine.result != InflateResult::ok) break;
            if (fin) break;
            FUZZ_CHECK(inflater.in_message());
            if (chunker.coin(16)) {
                swirl::Inflater moved(std::move(inflater));
                inflater = std::move(moved);
            }
            if (pos == payload.size()) {
                mine.result = inflater.inflate(std::string_view{}, true, out, limit);
                break;
            }
        } while (true);
        FUZZ_CHECK(!inflater.in_message());
        if (mine.result == InflateResult::too_big) FUZZ_CHECK(out.size() == limit);
        if (mine.result != InflateResult::ok) FUZZ_CHECK(!inflater.error_reason().empty());
        mine.out = out;

        FUZZ_CHECK(mine == s || mine == l);
        if (s == l) FUZZ_CHECK(mine == s);
        if (!(s == l) || s.result != InflateResult::ok || mine.result != InflateResult::ok) break;
        if (no_context) {
            strict.reset();
            lenient.reset();
        }
    }
    return 0;
}
