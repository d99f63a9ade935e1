// The server's events as a newcomer writes them: plain (non-coroutine) handlers for every event, a server that
// refuses to listen without a message handler, a custom handshake that gets the configured subprotocols, and
// SIGINT/SIGTERM stopping the server.
#include "test_support.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <stdexcept>
#include <thread>

namespace {

using namespace std::chrono_literals;
using swirl::Client;
using Server = swirl::Server<>;
using Conn = Server::Connection;

void echo_plain(Conn& c, swirl::Frame& f) { c.send(f.payload, f.opcode); }

} // namespace

TEST_CASE("every event takes a plain handler that never waits (no coroutine, no co_return needed)") {
    test::Events events;
    Server server(test::local_settings());
    server.on_handshake([&](Conn&, const swirl::Request& req, swirl::Response& res) {
        if (req.query_param("token") != "ok") {
            res.status = 403;
            return false;
        }
        events.add("handshake");
        return swirl::accept_handshake(req, res);
    });
    server.on_open([&](Conn&, const swirl::Request&) { events.add("open"); });
    server.on_message(echo_plain);
    server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {}", info.code)); });
    server.on_request([&](Conn&, const swirl::Request& req, swirl::Response& res) {
        events.add("request " + req.target);
        res.body = "plain answer\n";
    });
    test::RunningServer running(server);

    const auto response = test::http_exchange(running.port(), "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(response.starts_with("HTTP/1.1 200 "));
    CHECK(response.ends_with("plain answer\n"));
    CHECK(test::http_exchange(running.port(), test::upgrade_request()).starts_with("HTTP/1.1 403 "));
    test::run([&]() -> asio::awaitable<void> {
        swirl::ClientOptions options;
        options.target = "/?token=ok";
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        co_await client.send("plain");
        CHECK(co_await test::next_payload(client) == "plain");
        co_await client.close();
    });
    CHECK(events.wait_for("close 1000"));
    CHECK(events.contains("request /status"));
    CHECK(events.contains("handshake"));
    CHECK(events.contains("open"));
}

TEST_CASE("after abort() the handler hears nothing more, not even the rest of the same read, and sends are refused") {
    Server server(test::local_settings());
    std::atomic<int> heard{0};
    std::atomic<bool> refused{false};
    test::Events events;
    server.on_message([&](Conn& c, swirl::Frame&) {
        ++heard;
        c.abort();
        refused = c.send("too late").status == swirl::PushStatus::not_open;
    });
    server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {}", info.code)); });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        // Three messages in one write: the server reads them at once; the first handler call aborts.
        co_await client.send_raw(test::client_frame("a") + test::client_frame("b") + test::client_frame("c"));
        CHECK_FALSE(co_await client.receive());  // dropped: no close frame, nothing sent after the abort
    });
    CHECK(events.wait_for("close 1006"));
    CHECK(heard == 1);
    CHECK(refused);
}

TEST_CASE("a handler class may mix plain and coroutine members") {
    struct App {
        test::Events& events;
        bool on_handshake(Conn&, const swirl::Request& req, swirl::Response& res) {
            events.add("handshake");
            return swirl::accept_handshake(req, res);
        }
        void on_message(Conn& c, swirl::Frame& f) { c.send(f.payload, f.opcode); }
        asio::awaitable<void> on_close(Conn&, const swirl::CloseInfo&) {
            events.add("close");
            co_return;
        }
    };
    test::Events events;
    App app{events};
    Server server(test::local_settings());
    server.use(app);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("mixed");
        CHECK(co_await test::next_payload(client) == "mixed");
        co_await client.close();
    });
    CHECK(events.wait_for("close"));
    CHECK(events.contains("handshake"));
}

TEST_CASE("listen() without a message handler fails loudly instead of dropping every message") {
    Server server(test::local_settings());
    server.on_open([](Conn&, const swirl::Request&) {});
    CHECK_THROWS_AS(server.listen(), std::logic_error);
    CHECK_THROWS_AS(server.start(), std::logic_error);
    server.on_message(echo_plain);
    test::RunningServer running(server);  // and once one is registered, it listens
    CHECK(running.port() != 0);
}

TEST_CASE("a custom handshake calling accept_handshake(req, res) answers with a subprotocol from Settings") {
    auto settings = test::local_settings();
    settings.subprotocols = {"v2.chat", "v1.chat"};
    Server server(settings);
    server.on_handshake([](Conn&, const swirl::Request& req, swirl::Response& res) { return swirl::accept_handshake(req, res); });
    std::vector<std::string> seen;
    std::mutex seen_mutex;
    server.on_open([&](Conn& c, const swirl::Request&) {
        std::lock_guard lock(seen_mutex);
        seen.push_back(c.subprotocol());
    });
    server.on_message(echo_plain);
    test::RunningServer running(server);
    swirl::ClientOptions options;  // out of the coroutine: g++ 12 miscompiles a braced list of strings inside one
    options.subprotocols = {"v1.chat", "v2.chat"};
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(client.handshake_response().header("Sec-WebSocket-Protocol") == "v2.chat");  // the server's preference
        co_await client.close();
        auto plain = co_await Client::connect("127.0.0.1", running.port());  // offered none: none is answered
        CHECK(plain.handshake_response().header("Sec-WebSocket-Protocol") == std::nullopt);
        co_await plain.close();
    });
    REQUIRE(test::eventually([&] {
        std::lock_guard lock(seen_mutex);
        return seen.size() == 2;
    }));
    std::lock_guard lock(seen_mutex);
    CHECK(seen[0] == "v2.chat");
    CHECK(seen[1].empty());
}

TEST_CASE("a handshake hook declines every subprotocol with an empty Sec-WebSocket-Protocol, which is not sent") {
    auto settings = test::local_settings();
    settings.subprotocols = {"chat"};
    Server server(settings);
    server.on_handshake([](Conn&, const swirl::Request& req, swirl::Response& res) {
        res.set_header("Sec-WebSocket-Protocol", "");  // none, although the client offered one we support
        return swirl::accept_handshake(req, res);
    });
    std::atomic<bool> agreed_none{false};
    server.on_open([&](Conn& c, const swirl::Request&) { agreed_none = c.subprotocol().empty(); });
    server.on_message(echo_plain);
    test::RunningServer running(server);
    swirl::ClientOptions options;
    options.subprotocols = {"chat"};
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(client.handshake_response().header("Sec-WebSocket-Protocol") == std::nullopt);
        co_await client.close();
    });
    CHECK(test::eventually([&] { return agreed_none.load(); }));
}

TEST_CASE("a handshake hook that picks a subprotocol the client did not offer gets a 500, not a broken upgrade") {
    Server server(test::local_settings());
    server.on_handshake([](Conn&, const swirl::Request& req, swirl::Response& res) {
        swirl::accept_handshake(req, res);
        res.set_header("Sec-WebSocket-Protocol", "mqtt");
        return true;
    });
    server.on_message(echo_plain);
    test::RunningServer running(server);
    CHECK(test::http_exchange(running.port(), test::upgrade_request("Sec-WebSocket-Protocol: chat\r\n")).starts_with("HTTP/1.1 500 "));
    CHECK(test::http_exchange(running.port(), test::upgrade_request()).starts_with("HTTP/1.1 500 "));
    swirl::ClientOptions options;
    options.subprotocols = {"chat", "mqtt"};
    test::run([&]() -> asio::awaitable<void> {  // offered: accepted with the hook's choice
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(client.handshake_response().header("Sec-WebSocket-Protocol") == "mqtt");
        co_await client.close();
    });
}

TEST_CASE("a stop handler that throws, even a non-exception, does not keep the server from stopping") {
    Server server(test::local_settings());
    server.on_message(echo_plain);
    server.on_stop([] { throw 42; });
    server.start();
    server.stop();
    std::atomic<bool> stopped{false};
    std::thread waiter([&] {
        server.wait();
        stopped = true;
    });
    CHECK(test::eventually([&] { return stopped.load(); }));
    waiter.join();
}

TEST_CASE("a listen() that cannot bind leaves SIGINT and SIGTERM as they were") {
    auto quiet = test::local_settings();
    quiet.stop_on_signals = false;
    Server first(quiet);
    first.on_message(echo_plain);
    test::RunningServer running(first);
    auto settings = test::local_settings();
    settings.port = running.port();  // taken (and `second` does not set SO_REUSEPORT)
    Server second(settings);
    second.on_message(echo_plain);
    struct sigaction before {}, after {};
    ::sigaction(SIGTERM, nullptr, &before);
    // A registration taken by a failed listen() would stay until `second` is destroyed: Ctrl-C would no longer
    // end a program that goes on after the failure.
    CHECK_THROWS_AS(second.listen(), std::system_error);
    ::sigaction(SIGTERM, nullptr, &after);
    CHECK((before.sa_handler == after.sa_handler));  // not on the server's handler now
    CHECK_FALSE(second.stopping());
}

TEST_CASE("SIGTERM and SIGINT stop a running server gracefully; stop_on_signals = false leaves them alone") {
    for (const int sig : {SIGTERM, SIGINT}) {
        test::Events events;
        Server server(test::local_settings());
        server.on_message(echo_plain);
        server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {}", info.code)); });
        server.on_stop([&] { events.add("stop"); });
        server.start();
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", server.local_endpoint().port());
            co_await client.send("before");
            CHECK(co_await test::next_payload(client) == "before");
            std::raise(sig);
            const auto close = co_await client.receive();  // the server's close frame: 1001 going away
            REQUIRE(close);
            CHECK(close->opcode == swirl::Opcode::close);
            CHECK(close->code == swirl::close_code::going_away);
        });
        server.wait();  // returns: the signal stopped the server
        CHECK(server.stopping());
        CHECK(events.contains("stop"));
        CHECK(events.contains("close 1001"));
    }

    auto settings = test::local_settings();
    settings.stop_on_signals = false;
    Server server(settings);
    server.on_message(echo_plain);
    test::RunningServer running(server);
    {
        // Someone else handles SIGTERM here; the server must not have taken it.
        asio::io_context ctx;
        asio::signal_set mine(ctx, SIGTERM);
        bool caught = false;
        mine.async_wait([&](std::error_code ec, int) { caught = !ec; });
        std::raise(SIGTERM);
        ctx.run_for(2s);
        CHECK(caught);
    }
    CHECK_FALSE(server.stopping());
    test::run([&]() -> asio::awaitable<void> { co_await test::check_still_serving(running.port()); });
}

TEST_CASE("an upgrade request in pieces, or with frames behind it in the same write, upgrades and loses nothing") {
    // Both kinds of message handler: a plain one (the connection parks between reads) and a coroutine one.
    for (const bool plain : {true, false}) {
        CAPTURE(plain);
        test::Events events;
        Server server(test::local_settings());
        if (plain) server.on_message(echo_plain);
        else server.on_message([](Conn& c, swirl::Frame& f) { return test::echo(c, f); });
        server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {} {}", info.code, info.clean)); });
        test::RunningServer running(server);
        const std::string close_frame = test::client_frame(std::string("\x03\xE8", 2), swirl::Opcode::close);
        const std::string answer = "HTTP/1.1 101 ";
        const std::string echoed = swirl::pack("first") + swirl::pack("second") + swirl::pack(std::string("\x03\xE8", 2), swirl::Opcode::close);
        test::run([&]() -> asio::awaitable<void> {
            {  // the request and three frames in one write: the frames are read from behind the request
                auto socket = co_await test::connect_raw(running.port());
                const std::string all = test::upgrade_request() + test::client_frame("first") + test::client_frame("second") + close_frame;
                co_await asio::async_write(socket, asio::buffer(all), asio::use_awaitable);
                const std::string got = co_await test::read_to_eof(socket);
                CHECK(got.starts_with(answer));
                CHECK(got.ends_with("\r\n\r\n" + echoed));
            }
            {  // the request in three writes, apart in time: the first read finds only part of it
                auto socket = co_await test::connect_raw(running.port());
                const std::string request = test::upgrade_request();
                asio::steady_timer pause(co_await asio::this_coro::executor);
                for (const auto& piece : {request.substr(0, 10), request.substr(10, 30), request.substr(40)}) {
                    co_await asio::async_write(socket, asio::buffer(piece), asio::use_awaitable);
                    pause.expires_after(50ms);
                    co_await pause.async_wait(asio::use_awaitable);
                }
                const std::string frames = test::client_frame("first") + test::client_frame("second") + close_frame;
                co_await asio::async_write(socket, asio::buffer(frames), asio::use_awaitable);
                const std::string got = co_await test::read_to_eof(socket);
                CHECK(got.starts_with(answer));
                CHECK(got.ends_with("\r\n\r\n" + echoed));
            }
        });
        CHECK(test::eventually([&] { return server.connection_count() == 0; }));
        const auto all = events.all();
        CHECK(std::count(all.begin(), all.end(), "close 1000 true") == 2);
    }
}

TEST_CASE("a plain handshake hook that throws, or accepts what cannot be sent, answers 500; plain open and close run") {
    test::Events events;
    Server server(test::local_settings());
    server.on_handshake([](Conn&, const swirl::Request& req, swirl::Response& res) -> bool {
        const auto token = req.query_param("token").value_or("");
        if (token == "throw") throw std::runtime_error("hook failed");
        if (token == "no101") return true;  // accepts without accept_handshake
        if (token == "crlf") res.add_header("X-Name", "a\r\nSet-Cookie: x");
        return swirl::accept_handshake(req, res);
    });
    server.on_open([&](Conn& c, const swirl::Request& req) {
        events.add("open");
        if (req.query_param("token") == "bye") c.close(4000, "bye");
    });
    server.on_message(echo_plain);
    server.on_close([&](Conn&, const swirl::CloseInfo& info) { events.add(fmt::format("close {}", info.code)); });
    test::RunningServer running(server);
    for (const char* token : {"throw", "no101", "crlf"}) {
        CAPTURE(token);
        const auto response = test::http_exchange(running.port(), test::upgrade_request({}, std::string("/?token=") + token));
        CHECK(response.starts_with("HTTP/1.1 500 "));
        CHECK(response.find("Set-Cookie") == std::string::npos);
    }
    CHECK_FALSE(events.contains("open"));  // refused connections never open, so never close either
    CHECK_FALSE(events.contains("close 4000"));
    test::run([&]() -> asio::awaitable<void> {
        swirl::ClientOptions options;
        options.target = "/?token=bye";  // the open handler closes at once
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        const auto frame = co_await client.receive();
        REQUIRE(frame);
        CHECK(frame->opcode == swirl::Opcode::close);
        CHECK(frame->code == 4000);
    });
    CHECK(events.wait_for("close 4000"));
    CHECK(test::eventually([&] { return server.connection_count() == 0; }));
    test::run([&]() -> asio::awaitable<void> { co_await test::check_still_serving(running.port()); });
}
