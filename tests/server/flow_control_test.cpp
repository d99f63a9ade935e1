// Flow control as uWebSockets and Swoole users expect it: `Connection::buffered()`, the drain event after
// backpressure, and pausing and resuming reads by hand.
#include "test_support.hpp"

#include <atomic>

namespace {

using namespace std::chrono_literals;
using swirl::Client;
using swirl::Opcode;
using Server = swirl::Server<>;
using Conn = Server::Connection;
using clock_type = std::chrono::steady_clock;

/// The next data frame, skipping the heartbeat's pings (which `receive` also returns).
asio::awaitable<swirl::Frame> next_data(Client& client) {
    while (true) {
        auto frame = co_await client.receive();
        REQUIRE(frame);
        if (frame->opcode != Opcode::ping && frame->opcode != Opcode::pong) co_return std::move(*frame);
    }
}

/// Lets `d` pass (a peer not reading meanwhile, say).
asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

/// Sends 32 KiB chunks until the server refuses one (64 MiB at most), so that on_drain follows once the peer reads.
void flood(Conn& c, swirl::Frame&) {
    static const std::string chunk(32u << 10, 'y');
    for (int i = 0; i < 2048 && c.send(chunk, Opcode::binary); ++i) {}
}

} // namespace

TEST_CASE("buffered() grows while the peer does not read; on_drain fires once it has read, and sending resumes") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 1u << 20;
    settings.drain_below = 64u << 10;
    Server server(settings);
    std::atomic<std::size_t> peak{0}, sent{0}, at_drain{~std::size_t{0}};
    std::atomic<int> drains{0};
    const std::string chunk(48u << 10, 'x');
    server.on_message([&](Conn& c, swirl::Frame&) {
        // Floods a peer that has stopped reading until the server refuses (bounded: 256 MiB at most).
        for (int i = 0; i < 256 * 1024 / 48; ++i) {
            const auto r = c.send(chunk, Opcode::binary);
            if (r.status == swirl::PushStatus::buffer_full) break;
            REQUIRE(r);
            sent += chunk.size();
            peak = std::max(peak.load(), c.buffered());
        }
    });
    server.on_drain([&](Conn& c) {
        at_drain = c.buffered();
        ++drains;
        c.send("drained");
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("flood me");
        co_await sleep_for(200ms);  // not reading meanwhile
        CHECK(drains == 0);  // nothing has been read: the queue is still over the low-water mark
        std::size_t got = 0;
        while (true) {
            const swirl::Frame f = co_await next_data(client);
            if (f.opcode == Opcode::text) {
                CHECK(f.payload == "drained");
                break;
            }
            got += f.payload.size();
        }
        CHECK(got == sent);  // everything queued arrived before the drain handler's message
        co_await client.close();
    }, 30s);
    CHECK(peak > settings.drain_below);
    CHECK(peak <= settings.max_output_buffer + chunk.size() + 16);
    CHECK(drains == 1);
    CHECK(at_drain <= settings.drain_below);
}

TEST_CASE("a plain handler's small replies are bounded by max_output_buffer and arrive in order") {
    // Replies under 8 KiB from a plain message handler take the connection's short path (`queue_reply`); at the
    // limit it gives way to the general one, which refuses.
    auto settings = test::local_settings();
    settings.max_output_buffer = 256u << 10;
    Server server(settings);
    std::atomic<std::size_t> sent{0}, at_refusal{0};
    std::atomic<bool> refused{false};
    server.on_message([&](Conn& c, swirl::Frame&) {
        std::string chunk(4000, 'r');
        for (std::size_t i = 0; i < 16384; ++i) {  // 64 MiB at most
            std::memcpy(chunk.data(), &i, sizeof i);
            const auto r = c.send(chunk, Opcode::binary);
            if (r.status == swirl::PushStatus::buffer_full) {
                refused = true;
                at_refusal = c.buffered();
                break;
            }
            REQUIRE(r);
            ++sent;
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("go");
        co_await sleep_for(200ms);  // not reading meanwhile
        REQUIRE(refused);
        for (std::size_t i = 0; i < sent; ++i) {
            const swirl::Frame f = co_await next_data(client);
            REQUIRE(f.payload.size() == 4000);
            std::size_t n = 0;
            std::memcpy(&n, f.payload.data(), sizeof n);
            REQUIRE(n == i);
        }
        co_await client.close();
    }, 30s);
    CHECK(at_refusal >= settings.max_output_buffer);
    CHECK(at_refusal <= settings.max_output_buffer + 4000 + 16);
}

TEST_CASE("a plain handler's replies keep their order across sizes and opcodes") {
    // Small whole data frames take the short path; large ones and fragments the general one: one queue, in order.
    Server server(test::local_settings());
    const std::string large(20000, 'L');
    server.on_message([&](Conn& c, swirl::Frame& f) {
        c.send("one");
        c.send(large, Opcode::binary);
        c.send(std::string(9000, 'M'), Opcode::binary);
        c.send(f.payload, f.opcode);
        c.send("last", Opcode::text, false);  // a fragment: the general path
        c.send("", Opcode::continuation, true);
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send_raw(test::client_frame("a") + test::client_frame("b"));
        for (const char* echoed : {"a", "b"}) {
            swirl::Frame f = co_await next_data(client);
            CHECK(f.payload == "one");
            f = co_await next_data(client);
            CHECK(f.payload == large);
            f = co_await next_data(client);
            CHECK(f.payload == std::string(9000, 'M'));
            f = co_await next_data(client);
            CHECK(f.payload == echoed);
            f = co_await next_data(client);
            CHECK(f.payload == "last");
            CHECK(f.opcode == Opcode::text);
        }
        co_await client.close();
    });
}

TEST_CASE("on_drain may be a coroutine") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 256u << 10;
    Server server(settings);
    server.on_message(flood);
    server.on_drain([](Conn& c) -> asio::awaitable<void> {
        co_await sleep_for(10ms);
        c.send("drained later");
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("go");
        while (true) {
            const swirl::Frame f = co_await next_data(client);
            if (f.opcode == Opcode::text) {
                CHECK(f.payload == "drained later");
                break;
            }
        }
        co_await client.close();
    }, 30s);
}

TEST_CASE("pause_reading holds back the rest of a read, heartbeats included, until resume_reading") {
    auto settings = test::local_settings();
    settings.ping_interval = 100ms;  // a paused connection is not dropped for the pongs it cannot read
    settings.pong_timeout = 100ms;
    Server server(settings);
    std::mutex mutex;
    std::vector<std::pair<std::string, clock_type::time_point>> seen;
    server.on_message([&](Conn& c, swirl::Frame& f) {
        {
            std::lock_guard lock(mutex);
            seen.emplace_back(f.payload, clock_type::now());
        }
        if (f.payload == "pause") {
            c.pause_reading();
            CHECK(c.reading_paused());
            c.server().after(600ms, [&server, id = c.id()] { CHECK(server.resume(id)); });
        }
        c.send(f.payload, f.opcode);
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        // Three messages in one write: the server reads them at once, and must still hold back the last two.
        co_await client.send_raw(test::client_frame("pause") + test::client_frame("a") + test::client_frame("b"));
        CHECK((co_await next_data(client)).payload == "pause");
        CHECK((co_await next_data(client)).payload == "a");  // only after the resume
        CHECK((co_await next_data(client)).payload == "b");
        co_await client.send("after");
        CHECK((co_await next_data(client)).payload == "after");
        co_await client.close();
    });
    std::lock_guard lock(mutex);
    REQUIRE(seen.size() == 4);
    CHECK(seen[1].first == "a");
    CHECK(seen[1].second - seen[0].second >= 550ms);
    CHECK(seen[2].first == "b");
}

TEST_CASE("a close while reading is paused still completes the close handshake") {
    Server server(test::local_settings());
    test::Events events;
    server.on_message([&](Conn& c, swirl::Frame&) {
        c.pause_reading();
        c.server().after(50ms, [&server, id = c.id()] { CHECK(server.disconnect(id, swirl::close_code::normal, "bye")); });
    });
    server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {} clean {}", info.code, info.clean)); });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("pause me");
        const auto close = co_await client.receive();  // the server's close; the client answers it
        REQUIRE(close);
        CHECK(close->opcode == Opcode::close);
        CHECK(close->code == swirl::close_code::normal);
    });
    CHECK(events.wait_for("close 1000 clean true"));
}

TEST_CASE("resume_reading restarts the idle clock, also after a pause taken while the connection waited for input") {
    for (const bool from_handler : {true, false}) {
        auto settings = test::local_settings();
        settings.ping_interval = 0ms;
        settings.idle_timeout = 400ms;
        Server server(settings);
        std::atomic<swirl::ConnectionId> id{0};
        std::atomic<clock_type::rep> closed_at{0};
        server.on_message([&](Conn& c, swirl::Frame& f) {
            id = c.id();
            if (from_handler) c.pause_reading();
            c.send(f.payload, f.opcode);
        });
        server.on_close([&](Conn&, const swirl::CloseInfo&) { closed_at = clock_type::now().time_since_epoch().count(); });
        test::RunningServer running(server);
        clock_type::time_point resumed;
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", running.port());
            co_await client.send("hi");
            CHECK(co_await test::next_payload(client) == "hi");
            if (!from_handler) CHECK(server.pause(id));  // from this thread, while the session waits for input
            co_await sleep_for(1s);  // 2.5 idle timeouts, paused
            CHECK(server.exist(id));
            resumed = clock_type::now();
            CHECK(server.resume(id));
            const auto close = co_await client.receive();  // then the idle close, a whole idle_timeout later
            REQUIRE(close);
            CHECK(close->code == swirl::close_code::going_away);
        });
        REQUIRE(test::eventually([&] { return closed_at != 0; }));
        CHECK(clock_type::time_point(clock_type::duration(closed_at.load())) - resumed >= 350ms);
    }
}

TEST_CASE("a paused connection whose peer went away is still ended: the heartbeat's pings find it") {
    auto settings = test::local_settings();
    settings.ping_interval = 100ms;
    settings.pong_timeout = 100ms;
    Server server(settings);
    std::atomic<swirl::ConnectionId> id{0};
    test::Events events;
    server.on_message([&](Conn& c, swirl::Frame&) {
        id = c.id();
        c.pause_reading();
    });
    server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {}", info.code)); });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("pause me");
        co_await sleep_for(100ms);
        co_await client.send_raw(test::client_frame(swirl::close_payload(1000, "bye"), Opcode::close));
        client.socket().close();  // and gone, without waiting for the server's answer
    });
    CHECK(events.wait_for("close 1006", 3s));  // the reset a ping drew fails a later write
    CHECK_FALSE(server.exist(id));
}

TEST_CASE("a coroutine drain handler that throws closes its connection with 1011, as every handler") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 256u << 10;
    Server server(settings);
    server.on_message(flood);
    server.on_drain([](Conn&) -> asio::awaitable<void> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        throw std::runtime_error("drain failed");
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("go");
        while (true) {
            const swirl::Frame f = co_await next_data(client);
            if (f.opcode == Opcode::close) {
                CHECK(f.code == swirl::close_code::internal_error);
                break;
            }
        }
    }, 30s);
}
