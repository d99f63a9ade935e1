// permessage-deflate allocates nothing per message once its buffers are warm: global operator new is replaced to
// count (zlib allocates through it too, see swirl/protocol/deflate.hpp), a warm-up message creates the zlib
// streams and grows the buffers, then many messages must not allocate at all. Own executable, because the
// replacement applies to the whole program. Also reports what the zlib streams hold.

#include "counting_new.hpp"
#include "doctest.hpp"

#include <swirl/protocol/deflate.hpp>

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

namespace {
std::size_t allocations = 0;
std::size_t allocated_bytes = 0;
bool counting = false;
} // namespace

void* test::counted_allocate(std::size_t size, std::size_t alignment) {
    if (counting) {
        ++allocations;
        allocated_bytes += size;
    }
    return plain_allocate(size, alignment);
}

namespace {

struct Count {
    Count() {
        allocations = 0;
        allocated_bytes = 0;
        counting = true;
    }
    ~Count() { counting = false; }
};

std::vector<std::string> messages() {
    std::vector<std::string> out;
    std::string text;
    for (int i = 0; i < 300; ++i) text += "{\"user\":" + std::to_string(i) + ",\"text\":\"hello, world\",\"room\":\"lobby\"} ";
    out.push_back(text);
    out.push_back(text.substr(0, 40));
    out.push_back("");
    out.push_back(std::string(50000, 'x'));
    return out;
}

} // namespace

TEST_CASE("compressing and inflating warm messages allocates nothing, with and without context takeover") {
    const auto sample = messages();
    for (bool no_context : {false, true}) {
        INFO("no context takeover ", no_context);
        swirl::Deflater deflater(15, no_context);
        swirl::Inflater inflater(15, no_context);
        std::string payload, message;
        // Warm-up: creates both zlib streams, the inflate window and the buffers.
        for (const auto& m : sample) {
            payload.clear();
            deflater.compress(m, payload);
            message.clear();
            REQUIRE(inflater.inflate(payload, true, message, 1 << 20) == swirl::InflateResult::ok);
        }
        Count count;
        for (int round = 0; round < 200; ++round) {
            for (const auto& m : sample) {
                payload.clear();
                deflater.compress(m, payload);
                message.clear();
                // Frame by frame, as frames arrive.
                const std::size_t half = payload.size() / 2;
                REQUIRE(inflater.inflate(std::string_view(payload).substr(0, half), false, message, 1 << 20) == swirl::InflateResult::ok);
                REQUIRE(inflater.inflate(std::string_view(payload).substr(half), true, message, 1 << 20) == swirl::InflateResult::ok);
                REQUIRE(message == m);
            }
        }
        CHECK(allocations == 0);
    }
}

TEST_CASE("failed messages allocate nothing either") {
    swirl::Inflater inflater;
    std::string message;
    message.reserve(4096);
    const std::string bomb = [] {
        swirl::Deflater d;
        std::string out;
        d.compress(std::string(1 << 20, '\0'), out);
        return out;
    }();
    REQUIRE(inflater.inflate(bomb, true, message, 4096) == swirl::InflateResult::too_big);
    Count count;
    for (int i = 0; i < 100; ++i) {
        message.clear();
        REQUIRE(inflater.inflate(bomb, true, message, 4096) == swirl::InflateResult::too_big);
        message.clear();
        REQUIRE(inflater.inflate(std::string("\x07\x00", 2), true, message, 4096) == swirl::InflateResult::corrupt);
    }
    CHECK(allocations == 0);
}

TEST_CASE("the zlib streams are created on first use, once") {
    Count count;
    swirl::Deflater deflater(15, false);
    swirl::Inflater inflater(15, false);
    CHECK(allocations == 0);  // nothing until the first message
    std::string payload, message;
    payload.reserve(1 << 16);
    message.reserve(1 << 16);
    allocations = allocated_bytes = 0;
    deflater.compress("hello", payload);
    const std::size_t deflate_bytes = allocated_bytes;
    CHECK(allocations > 0);
    allocations = allocated_bytes = 0;
    REQUIRE(inflater.inflate(payload, true, message, 100) == swirl::InflateResult::ok);
    const std::size_t inflate_bytes = allocated_bytes;
    CHECK(allocations > 0);
    MESSAGE("zlib memory at window 15, mem level 8: deflater ", deflate_bytes, " B, inflater ", inflate_bytes, " B");
    for (int bits : {9, 12}) {
        allocations = allocated_bytes = 0;
        swirl::Deflater d(bits, false, 6, bits == 9 ? 1 : 5);
        payload.clear();
        d.compress("hello", payload);
        const std::size_t dbytes = allocated_bytes;
        allocations = allocated_bytes = 0;
        swirl::Inflater i(bits);
        message.clear();
        REQUIRE(i.inflate(payload, true, message, 100) == swirl::InflateResult::ok);
        MESSAGE("zlib memory at window ", bits, ", mem level ", bits == 9 ? 1 : 5, ": deflater ", dbytes, " B, inflater ",
                allocated_bytes, " B");
    }
}
