// permessage-deflate end to end: swirl's server with `Settings::compression` against swirl's own client.
#include "test_support.hpp"

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE

#include <swirl/server/compression.hpp>

#include <array>
#include <atomic>
#include <random>
#include <string>
#include <utility>

using namespace std::chrono_literals;

namespace {

using Server = swirl::Server<>;

swirl::ClientOptions deflate_client(swirl::DeflateOffer offer = swirl::ClientDeflate::default_offer()) {
    swirl::ClientOptions options;
    options.deflate = swirl::ClientDeflate{};
    options.deflate->offer = offer;
    options.limits.max_message_size = 32u << 20;
    options.limits.max_frame_size = 32u << 20;
    return options;
}

swirl::Settings compressing(swirl::CompressOptions compression) {
    swirl::Settings s = test::local_settings();
    s.compression = compression;
    return s;
}

swirl::CompressOptions shared_mode() {
    swirl::CompressOptions c;
    c.enabled = true;
    return c;
}

swirl::CompressOptions dedicated_mode(std::uint8_t bits = 15, int mem_level = 8) {
    swirl::CompressOptions c = swirl::CompressOptions::dedicated(bits, mem_level);
    c.decompressor = swirl::CodecMode::dedicated;
    c.client_window_bits = bits;
    return c;
}

/// Text that compresses about as well as prose.
std::string text_of(std::size_t n, unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(n);
    while (s.size() < n) s += rng() % 6 == 0 ? ' ' : static_cast<char>('a' + rng() % 26);
    return s;
}

} // namespace

TEST_CASE("deflate: off by default, the offer is declined and messages flow uncompressed") {
    Server server(test::local_settings());
    server.on_message(test::echo<Server::Connection>);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
        CHECK_FALSE(client.deflate().has_value());
        CHECK_FALSE(client.handshake_response().header("Sec-WebSocket-Extensions").has_value());
        const std::string m = text_of(5000);
        co_await client.send(m);
        {
            const std::string got = co_await test::next_payload(client);
            CHECK(got == m);
        }
        CHECK(client.compressed_messages() == 0);
        co_await client.close();
    });
}

TEST_CASE("deflate: each mode negotiates and echoes text and binary up to 16 MiB, compressed both ways") {
    for (const auto& mode : {std::pair{"shared", shared_mode()}, std::pair{"dedicated", dedicated_mode()},
                             std::pair{"dedicated 9", dedicated_mode(9, 1)}}) {
        const std::string name = mode.first;
        const swirl::CompressOptions options = mode.second;
        CAPTURE(name);
        swirl::Settings settings = compressing(options);
        settings.max_message_size = settings.max_frame_size = 16u << 20;
        Server server(settings);
        std::atomic<int> handler_saw_rsv{0};
        server.on_message([&](auto& c, swirl::Frame& f) {
            if (f.rsv != 0) ++handler_saw_rsv;
            c.send(f.payload, f.opcode);
        });
        test::RunningServer running(server);
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
            REQUIRE(client.deflate().has_value());
            const swirl::DeflateParams& p = *client.deflate();
            CHECK(p.server_no_context_takeover == (options.compressor == swirl::CodecMode::shared));
            CHECK(p.client_no_context_takeover == (options.decompressor == swirl::CodecMode::shared));
            CHECK(p.server_window_bits() == options.window_bits);
            std::size_t expected_compressed = 0;
            const std::array<std::size_t, 7> sizes{0, 1, 1023, 1024, 70000, 1u << 20, 16u << 20};
            for (const std::size_t size : sizes) {
                CAPTURE(size);
                const std::string text = text_of(size, static_cast<unsigned>(size));
                co_await client.send(text);
                const auto echoed = co_await client.receive();
                REQUIRE(echoed);
                CHECK(echoed->opcode == swirl::Opcode::text);
                CHECK(echoed->payload == text);
                if (size >= 1024) ++expected_compressed;
                std::string binary = text;
                for (std::size_t i = 0; i < binary.size(); i += 3) binary[i] = static_cast<char>(i * 7);
                co_await client.send(binary, swirl::Opcode::binary);
                const auto echoed_binary = co_await client.receive();
                REQUIRE(echoed_binary);
                CHECK(echoed_binary->opcode == swirl::Opcode::binary);
                CHECK(echoed_binary->payload == binary);
                if (size >= 1024) ++expected_compressed;
            }
            CHECK(client.compressed_messages() == expected_compressed);  // the 1 KiB threshold, as documented
            co_await client.close();
        }, 60s);
        CHECK(handler_saw_rsv == 0);  // handlers always see inflated messages
    }
}

TEST_CASE("deflate: send with compress = false, fragments and control frames go uncompressed") {
    Server server(compressing(shared_mode()));
    server.on_message([](auto& c, swirl::Frame& f) {
        if (f.payload == "go") {
            c.send(text_of(4000), swirl::Opcode::text, true, false);
            c.send(text_of(4000, 2), swirl::Opcode::text, false);
            c.send(text_of(10, 3), swirl::Opcode::continuation, true);
            c.ping("p");
            c.send(text_of(4000));
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
        co_await client.send("go");
        {
            const std::string got = co_await test::next_payload(client);
            CHECK(got == text_of(4000));
        }
        CHECK(client.compressed_messages() == 0);
        {
            const std::string got = co_await test::next_payload(client);
            CHECK(got == text_of(4000, 2) + text_of(10, 3));
        }
        CHECK(client.compressed_messages() == 0);
        const auto ping = co_await client.receive();
        REQUIRE(ping);
        CHECK(ping->opcode == swirl::Opcode::ping);
        {
            const std::string got = co_await test::next_payload(client);
            CHECK(got == text_of(4000));
        }
        CHECK(client.compressed_messages() == 1);
        co_await client.close();
    });
}

TEST_CASE("deflate: broadcast and publish reach compressed, dedicated and plain clients, and contexts stay in step") {
    swirl::CompressOptions options = shared_mode();
    Server shared_server(compressing(options));
    Server dedicated_server(compressing(dedicated_mode()));
    for (Server* server : {&shared_server, &dedicated_server}) {
        CAPTURE(server == &shared_server);
        server->on_open([](auto& c, const swirl::Request&) -> asio::awaitable<void> {
            c.subscribe("room");
            co_return;
        });
        server->on_message([](auto& c, swirl::Frame& f) { c.send(f.payload, f.opcode); });
        test::RunningServer running(*server);
        test::run([&]() -> asio::awaitable<void> {
            auto a = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
            auto b = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
            swirl::DeflateOffer small;
            small.server_max_window_bits = 10;
            auto c = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client(small));
            auto plain = co_await swirl::Client::connect("127.0.0.1", running.port());
            REQUIRE(c.deflate().has_value());
            CHECK(c.deflate()->server_window_bits() == 10);
            REQUIRE(test::eventually([&] { return server->subscribers("room") == 4; }));
            const std::array<swirl::Client*, 4> clients{&a, &b, &c, &plain};
            const std::string m = text_of(6000, 9);
            // Each connection's own message first, so that a dedicated compressor has context to forget.
            for (swirl::Client* client : clients) {
                co_await client->send(m);
                {
                    const std::string got = co_await test::next_payload(*client);
                    CHECK(got == m);
                }
            }
            CHECK(server->broadcast(m) == 4);
            CHECK(server->publish("room", text_of(3000, 4)).total() == 4);
            for (swirl::Client* client : clients) {
                {
                    const std::string got = co_await test::next_payload(*client);
                    CHECK(got == m);
                }
                {
                    const std::string got = co_await test::next_payload(*client);
                    CHECK(got == text_of(3000, 4));
                }
                co_await client->send(m);  // and their own again, after the shared bytes
                {
                    const std::string got = co_await test::next_payload(*client);
                    CHECK(got == m);
                }
            }
            CHECK(a.compressed_messages() == 4);
            CHECK(c.compressed_messages() == 4);
            CHECK(plain.compressed_messages() == 0);
            for (swirl::Client* client : clients) co_await client->close();
        });
    }
}

TEST_CASE("deflate: the handshake hook sees the offer and the proposal, and may keep, adjust or refuse it") {
    Server server(compressing(shared_mode()));
    test::Events events;
    server.on_handshake([&](auto&, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<bool> {
        events.add("offers " + std::to_string(swirl::deflate_offers(req).size()) + ", proposed " +
                   std::string(res.header("Sec-WebSocket-Extensions").value_or("nothing")));
        const auto mode = req.query_param("deflate");
        if (mode == "refuse") {
            res.remove_header("Sec-WebSocket-Extensions");
        } else if (mode == "adjust") {
            const auto offers = swirl::deflate_offers(req);
            swirl::DeflateOptions mine = swirl::CompressOptions{}.negotiation();
            mine.server_max_window_bits = 11;  // and context takeover both ways: dedicated codecs for this one
            mine.server_no_context_takeover = mine.client_no_context_takeover = false;
            res.set_header("Sec-WebSocket-Extensions", swirl::deflate_response(swirl::accept_deflate_offer(offers.front(), mine)));
        } else if (mode == "invalid") {
            res.set_header("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=20");
        }
        co_return swirl::accept_handshake(req, res);
    });
    server.on_message([](auto& c, swirl::Frame& f) { c.send(f.payload, f.opcode); });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        const std::string m = text_of(3000);
        {
            auto kept = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
            REQUIRE(kept.deflate().has_value());
            CHECK(kept.deflate()->server_no_context_takeover);
            co_await kept.send(m);
            {
                const std::string got = co_await test::next_payload(kept);
                CHECK(got == m);
            }
            co_await kept.close();
        }
        {
            swirl::ClientOptions options = deflate_client();
            options.target = "/?deflate=refuse";
            auto refused = co_await swirl::Client::connect("127.0.0.1", running.port(), options);
            CHECK_FALSE(refused.deflate().has_value());
            co_await refused.send(m);
            {
                const std::string got = co_await test::next_payload(refused);
                CHECK(got == m);
            }
            CHECK(refused.compressed_messages() == 0);
            co_await refused.close();
        }
        {
            swirl::ClientOptions options = deflate_client();
            options.target = "/?deflate=adjust";
            auto adjusted = co_await swirl::Client::connect("127.0.0.1", running.port(), options);
            REQUIRE(adjusted.deflate().has_value());
            CHECK(adjusted.deflate()->server_max_window_bits == 11);
            CHECK_FALSE(adjusted.deflate()->server_no_context_takeover);
            for (int i = 0; i < 3; ++i) {
                co_await adjusted.send(m);
                {
                    const std::string got = co_await test::next_payload(adjusted);
                    CHECK(got == m);
                }
            }
            CHECK(adjusted.compressed_messages() == 3);
            co_await adjusted.close();
        }
        {
            swirl::ClientOptions options = deflate_client();
            options.target = "/?deflate=invalid";
            int status = 0;
            const std::string host = "127.0.0.1";  // named: GCC 12 destroys a throwing co_await's temporaries twice
            try {
                co_await swirl::Client::connect(host, running.port(), options);
            } catch (const swirl::HandshakeRejected& e) {
                status = e.response().status;
            }
            CHECK(status == 500);
        }
    });
    CHECK(events.contains("offers 1, proposed permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
    test::run([&]() -> asio::awaitable<void> {
        auto plain = co_await swirl::Client::connect("127.0.0.1", running.port());
        CHECK_FALSE(plain.handshake_response().header("Sec-WebSocket-Extensions").has_value());
        co_await plain.close();
    });
    CHECK(events.contains("offers 0, proposed nothing"));
}

TEST_CASE("deflate: RSV1 misuse is 1002, corrupt data and bad UTF-8 are 1007, inflating past the limit is 1009") {
    swirl::Settings settings = compressing(shared_mode());
    settings.max_message_size = settings.max_frame_size = 100000;
    Server server(settings);
    server.on_message(test::echo<Server::Connection>);
    test::RunningServer running(server);
    const auto compressed = [](std::string_view data) {
        swirl::Deflater d(15, true);
        std::string out;
        d.compress(data, out);
        return out;
    };
    const auto masked = [](std::string_view payload, swirl::Opcode op, bool fin, std::uint8_t rsv) {
        return swirl::pack(payload, op, fin, swirl::MaskKey{1, 2, 3, 4}, rsv);
    };
    const auto close_code_after = [&](std::string bytes, bool offer = true) {
        return test::run([&]() -> asio::awaitable<std::uint16_t> {
            // Named: GCC 12 mishandles temporaries in a co_await expression.
            const swirl::ClientOptions options = offer ? deflate_client() : swirl::ClientOptions{};
            auto client = co_await swirl::Client::connect("127.0.0.1", running.port(), options);
            co_await client.send_raw(bytes);
            while (auto f = co_await client.receive())
                if (f->opcode == swirl::Opcode::close) co_return f->code;
            co_return std::uint16_t{0};
        });
    };
    using swirl::rsv::rsv1;
    const std::string hello = compressed("hello hello hello");
    CHECK(close_code_after(masked(hello, swirl::Opcode::text, true, rsv1), false) == 1002);
    CHECK(close_code_after(masked(hello.substr(0, 4), swirl::Opcode::text, false, rsv1) +
                           masked(hello.substr(4), swirl::Opcode::continuation, true, rsv1)) == 1002);
    CHECK(close_code_after(masked("", swirl::Opcode::ping, true, rsv1)) == 1002);
    CHECK(close_code_after(masked("\xFF\xFF\xFF\xFF", swirl::Opcode::binary, true, rsv1)) == 1007);
    CHECK(close_code_after(masked(compressed("caf\xC3 x"), swirl::Opcode::text, true, rsv1)) == 1007);
    CHECK(close_code_after(masked(compressed(std::string(100001, 'a')), swirl::Opcode::binary, true, rsv1)) == 1009);
    CHECK(close_code_after(masked(compressed(std::string(64u << 20, 'a')), swirl::Opcode::binary, true, rsv1)) == 1009);
    // Exactly the limit, fragmented with a ping between: echoed.
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await swirl::Client::connect("127.0.0.1", running.port(), deflate_client());
        const std::string exact = text_of(100000);
        const std::string data = compressed(exact);
        const std::string frames = masked(data.substr(0, 10), swirl::Opcode::text, false, rsv1) +
                                   masked("x", swirl::Opcode::ping, true, 0) +
                                   masked(data.substr(10), swirl::Opcode::continuation, true, 0);
        co_await client.send_raw(frames);
        const auto pong = co_await client.receive();
        REQUIRE(pong);
        CHECK(pong->opcode == swirl::Opcode::pong);
        {
            const std::string got = co_await test::next_payload(client);
            CHECK(got == exact);
        }
        co_await client.close();
    });
    test::run([&]() -> asio::awaitable<void> { co_await test::check_still_serving(running.port()); });
}

#endif
