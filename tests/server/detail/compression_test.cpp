#include "doctest.hpp"

#include <swirl/server/compression.hpp>
#include <swirl/server/detail/compression.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <memory>
#include <vector>

using swirl::CodecMode;
using swirl::CompressOptions;
using swirl::DeflateParams;

TEST_CASE("compression is off by default and each shared direction negotiates no context takeover") {
    const CompressOptions off;
    CHECK_FALSE(off.enabled);
    CHECK_FALSE(off.negotiation().enabled);
    CHECK(off.threshold == 1024);

    CompressOptions shared;
    shared.enabled = true;
    const swirl::DeflateOptions d = shared.negotiation();
    CHECK(d.enabled == swirl::deflate_available);
    CHECK(d.server_no_context_takeover);
    CHECK(d.client_no_context_takeover);
    CHECK(d.server_max_window_bits == 15);
    CHECK(d.client_max_window_bits == 15);

    CompressOptions dedicated = CompressOptions::dedicated(10, 3);
    dedicated.decompressor = CodecMode::dedicated;
    dedicated.client_window_bits = 11;
    const swirl::DeflateOptions e = dedicated.negotiation();
    CHECK_FALSE(e.server_no_context_takeover);
    CHECK_FALSE(e.client_no_context_takeover);
    CHECK(e.server_max_window_bits == 10);
    CHECK(e.client_max_window_bits == 11);
    CHECK(e.mem_level == 3);

    // What a client offering everything gets back.
    const auto offers = swirl::deflate_offers("permessage-deflate; client_max_window_bits");
    REQUIRE(offers.size() == 1);
    CHECK(swirl::deflate_response(swirl::accept_deflate_offer(offers[0], d)) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    CHECK(swirl::deflate_response(swirl::accept_deflate_offer(offers[0], e)) ==
          "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11");
}

TEST_CASE("compressor memory follows uWebSockets' dedicated sizes") {
    CHECK(CompressOptions::dedicated(9, 1).compressor_memory() == 3 * 1024);
    CHECK(CompressOptions::dedicated(9, 2).compressor_memory() == 4 * 1024);
    CHECK(CompressOptions::dedicated(10, 3).compressor_memory() == 8 * 1024);
    CHECK(CompressOptions::dedicated(12, 5).compressor_memory() == 32 * 1024);
    CHECK(CompressOptions::dedicated(15, 8).compressor_memory() == 256 * 1024);
    CHECK(CompressOptions::dedicated(20, 30).compressor_memory() == (1u << 17) + (1u << 18));  // clamped
}

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE

using swirl::Deflater;
using swirl::InflateResult;
using swirl::Inflater;
using swirl::detail::ConnectionDeflate;
using swirl::detail::SharedCodecs;

namespace {

/// Text that compresses about as well as prose: random lower-case words.
std::string sample(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(n);
    while (s.size() < n) s += (rng() % 6 == 0) ? ' ' : static_cast<char>('a' + rng() % 26);
    return s;
}

DeflateParams params_for(const CompressOptions& options, std::string_view offer = "permessage-deflate; client_max_window_bits") {
    const auto offers = swirl::deflate_offers(offer);
    REQUIRE(offers.size() == 1);
    return swirl::accept_deflate_offer(offers[0], options.negotiation());
}

/// Compresses `messages` on `server` and inflates them as the client of `params` would, in order.
void check_server_to_client(ConnectionDeflate& server, const DeflateParams& params, const std::vector<std::string>& messages) {
    Inflater client = Inflater::for_client(params);
    for (const auto& m : messages) {
        std::string wire;
        server.compress(m, wire);
        std::string out;
        REQUIRE(client.inflate(wire, true, out, 1u << 24) == InflateResult::ok);
        CHECK(out == m);
    }
}

} // namespace

TEST_CASE("shared codecs: a connection holds none, and messages round-trip both ways") {
    CompressOptions options;
    options.enabled = true;
    const DeflateParams params = params_for(options);
    ConnectionDeflate c(params, options);
    CHECK_FALSE(c.dedicated_compressor());
    CHECK_FALSE(c.dedicated_decompressor());
    check_server_to_client(c, params, {sample(5000, 1), sample(5000, 1), sample(20, 2), ""});

    // Two connections' messages through the one shared inflater, interleaved.
    ConnectionDeflate other(params, options);
    Deflater a = Deflater::for_client(params), b = Deflater::for_client(params);
    for (unsigned i = 0; i < 4; ++i) {
        for (auto* pair : {&a, &b}) {
            const std::string m = sample(3000 + i, i);
            std::string wire, out;
            pair->compress(m, wire);
            REQUIRE((pair == &a ? c : other).inflate(wire, out, 1u << 20) == InflateResult::ok);
            CHECK(out == m);
        }
    }
}

TEST_CASE("dedicated codecs keep their context between messages") {
    CompressOptions options = CompressOptions::dedicated(12, 5);
    options.decompressor = CodecMode::dedicated;
    options.client_window_bits = 10;
    const DeflateParams params = params_for(options);
    CHECK(params.server_max_window_bits == 12);
    CHECK(params.client_max_window_bits == 10);
    ConnectionDeflate c(params, options);
    CHECK(c.dedicated_compressor());
    CHECK(c.dedicated_decompressor());

    // The second copy of a message refers back into the first: far smaller than the first.
    const std::string m = sample(2000, 3);
    std::string first, second;
    c.compress(m, first);
    c.compress(m, second);
    CHECK(second.size() * 4 < first.size());
    Inflater client = Inflater::for_client(params);
    std::string out;
    REQUIRE(client.inflate(first, true, out, 1u << 20) == InflateResult::ok);
    out.clear();
    REQUIRE(client.inflate(second, true, out, 1u << 20) == InflateResult::ok);
    CHECK(out == m);

    // The client's context too.
    Deflater client_deflater = Deflater::for_client(params);
    for (int i = 0; i < 3; ++i) {
        std::string wire, inflated;
        client_deflater.compress(m, wire);
        REQUIRE(c.inflate(wire, inflated, 1u << 20) == InflateResult::ok);
        CHECK(inflated == m);
    }
}

TEST_CASE("a direction with context takeover gets a dedicated codec even in shared mode") {
    CompressOptions options;
    options.enabled = true;
    DeflateParams params;  // what a handshake hook might have answered: context takeover both ways
    ConnectionDeflate c(params, options);
    CHECK(c.dedicated_compressor());
    CHECK(c.dedicated_decompressor());
    check_server_to_client(c, params, {sample(4000, 4), sample(4000, 4)});
}

TEST_CASE("dedicated mode uses the shared codecs for a direction without context takeover (the client asked)") {
    CompressOptions options = CompressOptions::dedicated(12, 5);
    options.decompressor = CodecMode::dedicated;
    const DeflateParams params =
        params_for(options, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    REQUIRE(params.server_no_context_takeover);
    REQUIRE(params.client_no_context_takeover);
    ConnectionDeflate c(params, options);
    CHECK_FALSE(c.dedicated_compressor());  // it would be reset after every message: no memory per connection
    CHECK_FALSE(c.dedicated_decompressor());
    check_server_to_client(c, params, {sample(4000, 5), sample(4000, 5), sample(30, 6)});
    Deflater client = Deflater::for_client(params);
    const std::string m = sample(3000, 7);
    std::string wire, out;
    client.compress(m, wire);
    REQUIRE(c.inflate(wire, out, 1u << 20) == InflateResult::ok);
    CHECK(out == m);

    // Only one direction without context takeover: the other keeps its dedicated codec.
    const DeflateParams half = params_for(options, "permessage-deflate; server_no_context_takeover");
    ConnectionDeflate d(half, options);
    CHECK_FALSE(d.dedicated_compressor());
    CHECK(d.dedicated_decompressor());
}

TEST_CASE("a dedicated compressor that took shared bytes resets, and the client keeps decoding") {
    const CompressOptions options = CompressOptions::dedicated(15, 8);
    const DeflateParams params = params_for(options);
    ConnectionDeflate c(params, options);
    Inflater client = Inflater::for_client(params);
    const std::string m = sample(3000, 5);
    const auto expect = [&](const std::string& wire, const std::string& message) {
        std::string out;
        REQUIRE(client.inflate(wire, true, out, 1u << 20) == InflateResult::ok);
        CHECK(out == message);
    };
    std::string own;
    c.compress(m, own);
    expect(own, m);
    // A broadcast's bytes, from the shared compressor of the connection's window.
    std::string shared;
    SharedCodecs::this_thread().deflater(c.window_bits(), options.level, options.mem_level).compress(sample(3000, 6), shared);
    c.took_shared_bytes();
    expect(shared, sample(3000, 6));
    std::string next;
    c.compress(m, next);
    expect(next, m);
}

TEST_CASE("shared compressors of one window give the same bytes on every thread") {
    const std::string m = sample(10000, 7);
    std::string here;
    SharedCodecs::this_thread().deflater(11, 6, 8).compress(m, here);
    std::string again;
    SharedCodecs::this_thread().deflater(11, 6, 8).compress(m, again);
    CHECK(again == here);  // reset after every message
    std::string there;
    std::thread([&] { SharedCodecs::this_thread().deflater(11, 6, 8).compress(m, there); }).join();
    CHECK(there == here);
    CHECK(&SharedCodecs::this_thread().deflater(11, 6, 8) != &SharedCodecs::this_thread().deflater(12, 6, 8));
}

TEST_CASE("inflating is bounded by the message limit: a bomb stops at it, corrupt data is 1007") {
    CompressOptions options;
    options.enabled = true;
    const DeflateParams params = params_for(options);
    ConnectionDeflate c(params, options);
    Deflater client = Deflater::for_client(params);
    std::string bomb;
    client.compress(std::string(4u << 20, 'x'), bomb);
    CHECK(bomb.size() < 8 * 1024);
    std::string out;
    CHECK(c.inflate(bomb, out, 64 * 1024) == InflateResult::too_big);
    CHECK(out.size() == 64 * 1024);
    CHECK(out.capacity() <= 64 * 1024 + 64);  // no more allocated than the limit (plus the string's rounding)
    CHECK(swirl::close_code_for(InflateResult::too_big) == 1009);
    CHECK_FALSE(c.error_reason().empty());
    // Just over and exactly at the limit.
    std::string exact;
    client.compress(std::string(1000, 'y'), exact);
    CHECK(c.inflate(exact, out, 999) == InflateResult::too_big);
    CHECK(c.inflate(exact, out, 1000) == InflateResult::ok);
    CHECK(out == std::string(1000, 'y'));
    CHECK(c.inflate(std::string("\xFF\xFF\xFF\xFF", 4), out, 1000) == InflateResult::corrupt);
    CHECK(swirl::close_code_for(InflateResult::corrupt) == 1007);
    // The shared inflater is fine for the next message.
    CHECK(c.inflate(exact, out, 1000) == InflateResult::ok);
}

TEST_CASE("messages below the threshold go uncompressed") {
    CompressOptions options;
    options.enabled = true;
    options.threshold = 100;
    ConnectionDeflate c(params_for(options), options);
    CHECK_FALSE(c.compresses(99));
    CHECK(c.compresses(100));
    options.threshold = 0;
    ConnectionDeflate all(params_for(options), options);
    CHECK(all.compresses(0));
}

TEST_CASE("a shared message is framed once, and compressed once per window among its recipients") {
    using swirl::detail::SharedMessage;
    const std::string data(5000, 'q');
    const auto message = SharedMessage::make(data, swirl::Opcode::binary);
    bool compressed = true;
    const auto plain = SharedMessage::frame_for(message, nullptr, compressed);
    CHECK_FALSE(compressed);
    CHECK(*plain == swirl::pack(data, swirl::Opcode::binary));

    CompressOptions options;
    options.enabled = true;
    const DeflateParams p15 = params_for(options);
    const DeflateParams p10 = params_for(options, "permessage-deflate; server_max_window_bits=10");
    ConnectionDeflate a(p15, options), b(p15, options), c(p10, options);
    const auto fa = SharedMessage::frame_for(message, &a, compressed);
    CHECK(compressed);
    const auto fb = SharedMessage::frame_for(message, &b, compressed);
    CHECK(fa.get() == fb.get());  // the same bytes, not a copy
    const auto fc = SharedMessage::frame_for(message, &c, compressed);
    CHECK(fc.get() != fa.get());
    for (const auto& [frame, params] : {std::pair{fa, p15}, std::pair{fc, p10}}) {
        const auto f = swirl::unpack(*frame);
        REQUIRE(f.has_value());
        CHECK(f->rsv == swirl::rsv::rsv1);
        Inflater client = Inflater::for_client(params);
        std::string out;
        REQUIRE(client.inflate(f->payload, true, out, 1u << 20) == InflateResult::ok);
        CHECK(out == data);
    }
    // Below the threshold: the plain frame, whoever receives it.
    const auto small = SharedMessage::make("hi", swirl::Opcode::text);
    CHECK(SharedMessage::frame_for(small, &a, compressed)->size() == 4);
    CHECK_FALSE(compressed);
    // The frames live as long as any recipient holds one.
    const std::weak_ptr<SharedMessage> weak = message;
    CHECK_FALSE(weak.expired());
}

#endif // SWIRL_HAS_DEFLATE
