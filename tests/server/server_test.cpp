// The Asio layer end to end on 127.0.0.1, driven by swirl's own client and raw sockets.
#include "test_support.hpp"

#include <atomic>
#include <set>

using namespace std::chrono_literals;
using swirl::Client;
using swirl::Frame;
using swirl::Opcode;
using swirl::PushStatus;

namespace {

struct Session {
    std::string user;
    int messages = 0;
};
using Server = swirl::Server<Session>;
using Conn = Server::Connection;

asio::awaitable<void> echo_message(Conn& c, Frame& f) { return test::echo(c, f); }

/// An echo server that remembers the id of the last connection opened.
struct EchoServer {
    std::atomic<swirl::ConnectionId> id{0};
    Server server;
    explicit EchoServer(swirl::Settings settings) : server(std::move(settings)) {
        server.on_open([this](Conn& c, const swirl::Request&) -> asio::awaitable<void> {
            id = c.id();
            co_return;
        });
        server.on_message(echo_message);
    }
    /// Waits until a connection has opened.
    void wait_open() const { REQUIRE(test::eventually([&] { return id != 0; })); }
};

/// Settings for a server with two event loops (pushes from one thread while another serves).
swirl::Settings two_threads() {
    auto settings = test::local_settings();
    settings.threads = 2;
    return settings;
}

} // namespace

TEST_CASE("server echoes text and binary messages of every length form") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        for (const std::size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 3u << 20}) {
            std::string text(size, 'x');
            std::string binary(size, '\0');
            for (std::size_t i = 0; i < size; ++i) binary[i] = static_cast<char>(i * 7);
            co_await client.send(text, Opcode::text);
            co_await client.send(binary, Opcode::binary);
            auto a = co_await client.receive();
            auto b = co_await client.receive();
            REQUIRE(a);
            REQUIRE(b);
            CHECK(a->opcode == Opcode::text);
            CHECK(a->payload == text);
            CHECK(b->opcode == Opcode::binary);
            CHECK(b->payload == binary);
        }
        const auto reply = co_await client.close();
        CHECK(reply->code == swirl::close_code::normal);
    });
}

TEST_CASE("events fire in order with user data and close details from a client close") {
    test::Events events;
    Server server(test::local_settings());
    server.on_open([&](Conn& c, const swirl::Request& req) -> asio::awaitable<void> {
        c.data().user = std::string(req.query_param("user").value_or("?"));
        events.add("open " + c.data().user);
        co_return;
    });
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {
        ++c.data().messages;
        events.add("message " + f.payload);
        co_return;
    });
    server.on_close([&](Conn& c, const swirl::CloseInfo& info) -> asio::awaitable<void> {
        events.add(fmt::format("close {} {} {} by_server={} clean={} messages={}", c.data().user, info.code, info.reason,
                               info.by_server, info.clean, c.data().messages));
        CHECK(c.status() == swirl::ConnectionStatus::closed);
        co_return;
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        swirl::ClientOptions options;
        options.target = "/chat?user=ann";
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        co_await client.send("one");
        co_await client.send("two");
        const auto reply = co_await client.close(4001, "bye");
        REQUIRE(reply);
        CHECK(reply->code == 4001);  // the server echoes the code
    });
    REQUIRE(events.wait_for("close ann 4001 bye by_server=false clean=true messages=2"));
    CHECK(events.all() == std::vector<std::string>{"open ann", "message one", "message two",
                                                   "close ann 4001 bye by_server=false clean=true messages=2"});
}

TEST_CASE("disconnect sends the close frame and reports a server-initiated clean close") {
    test::Events events;
    EchoServer echo(test::local_settings());
    auto& server = echo.server;
    auto& id = echo.id;
    server.on_close([&](Conn&, const swirl::CloseInfo& info) -> asio::awaitable<void> {
        events.add(fmt::format("close {} {} by_server={} clean={}", info.code, info.reason, info.by_server, info.clean));
        co_return;
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        CHECK(server.client_info(id)->status == swirl::ConnectionStatus::active);
        CHECK(server.disconnect(id, 4100, "kicked"));
        CHECK(server.client_info(id)->status == swirl::ConnectionStatus::closing);
        CHECK_FALSE(server.is_established(id));
        CHECK(server.push(id, "after close") == PushStatus::not_open);
        CHECK_FALSE(server.disconnect(id, 4100, "twice"));  // already closing
        const auto frame = co_await client.receive();
        REQUIRE(frame);
        CHECK(frame->opcode == Opcode::close);
        CHECK(frame->code == 4100);
        CHECK(frame->reason == "kicked");
        const auto end_of_stream = co_await client.receive();
        CHECK_FALSE(end_of_stream);  // then the server closes TCP
    });
    CHECK(events.wait_for("close 4100 kicked by_server=true clean=true"));
}

TEST_CASE("push reports closed, unknown and invalid targets instead of crashing") {
    EchoServer echo(test::local_settings());
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    CHECK(server.push(12345, "nobody") == PushStatus::no_such_connection);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        CHECK(server.push(id, "x", Opcode::ping, false) == PushStatus::invalid_frame);
        CHECK(server.push(id, std::string(126, 'p'), Opcode::ping) == PushStatus::invalid_frame);
        CHECK(static_cast<bool>(server.push(id, "from the server")));
        const auto f = co_await client.receive();
        CHECK(f->payload == "from the server");
        co_await client.close();
    });
    REQUIRE(test::eventually([&] { return !server.exist(id); }));
    const auto result = server.push(id, "too late");
    CHECK_FALSE(result);
    CHECK(result == PushStatus::no_such_connection);
    CHECK_FALSE(server.ping(id));
    CHECK_FALSE(server.client_info(id));
}

TEST_CASE("push from other threads reaches the client in per-thread order") {
    auto settings = test::local_settings();
    settings.threads = 2;
    EchoServer echo(settings);
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    constexpr int per_thread = 500;
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        std::vector<std::thread> pushers;
        for (int t = 0; t < 4; ++t)
            pushers.emplace_back([&, t] {
                for (int i = 0; i < per_thread; ++i) CHECK(static_cast<bool>(server.push(id, fmt::format("{}:{}", t, i))));
            });
        for (auto& p : pushers) p.join();
        std::vector<int> next(4, 0);
        for (int n = 0; n < 4 * per_thread; ++n) {
            const auto f = co_await client.receive();
            REQUIRE(f);
            const int t = f->payload[0] - '0';
            CHECK(f->payload == fmt::format("{}:{}", t, next[t]++));
        }
        co_await client.close();
    }, 20s);
}

TEST_CASE("broadcast encodes once and reaches every established connection") {
    std::atomic<int> opened{0};
    Server server(test::local_settings());
    server.on_open([&](Conn&, const swirl::Request&) -> asio::awaitable<void> { ++opened; co_return; });
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        std::vector<Client> clients;
        for (int i = 0; i < 5; ++i) clients.push_back(co_await Client::connect("127.0.0.1", running.port()));
        REQUIRE(test::eventually([&] { return opened == 5; }));
        CHECK(server.broadcast("news", Opcode::text) == 5);
        CHECK(server.broadcast("\x01\x02", Opcode::binary) == 5);
        for (auto& c : clients) {
            const auto a = co_await c.receive();
            const auto b = co_await c.receive();
            CHECK(a->payload == "news");
            CHECK(b->opcode == Opcode::binary);
            CHECK(b->payload == "\x01\x02");
        }
        for (auto& c : clients) co_await c.close();
    });
}

TEST_CASE("client_info, exist, is_established and iteration describe live connections") {
    EchoServer echo(test::local_settings());
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        const auto before = std::chrono::system_clock::now();
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("ping me");
        co_await client.receive();
        REQUIRE(id != 0);
        CHECK(server.exist(id));
        CHECK(server.is_established(id));
        CHECK(server.connections() == std::vector<swirl::ConnectionId>{id.load()});
        CHECK(server.connection_count() == 1);
        int visited = 0;
        server.for_each_connection([&](Conn& c) { ++visited; CHECK(c.id() == id); });
        CHECK(visited == 1);
        const auto info = server.client_info(id);
        REQUIRE(info);
        CHECK(info->id == id);
        CHECK(info->status == swirl::ConnectionStatus::active);
        CHECK(info->remote.port() == client.socket().local_endpoint().port());
        CHECK(info->connect_time >= before - 1s);
        CHECK(info->last_activity >= info->connect_time);
        CHECK(info->bytes_in > 7);
        CHECK(info->bytes_out > 7);
        co_await client.close();
    });
    CHECK(test::eventually([&] { return !server.exist(id) && server.connection_count() == 0; }));
}

TEST_CASE("connection ids are unique and increasing") {
    std::mutex mutex;
    std::vector<swirl::ConnectionId> ids;
    Server server(test::local_settings());
    server.on_open([&](Conn& c, const swirl::Request&) -> asio::awaitable<void> {
        std::lock_guard lock(mutex);
        ids.push_back(c.id());
        co_return;
    });
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 20; ++i) {
            auto c = co_await Client::connect("127.0.0.1", running.port());
            co_await c.close();
        }
    });
    REQUIRE(test::eventually([&] { std::lock_guard lock(mutex); return ids.size() == 20; }));
    CHECK(std::set(ids.begin(), ids.end()).size() == 20);
    CHECK(std::is_sorted(ids.begin(), ids.end()));
}

TEST_CASE("connection ids are unique in the process, across servers, and name their event loop") {
    EchoServer one(test::local_settings());
    EchoServer two(two_threads());
    test::RunningServer running_one(one.server), running_two(two.server);
    std::set<swirl::ConnectionId> ids_one, ids_two;
    test::run([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 4; ++i) {
            auto a = co_await Client::connect("127.0.0.1", running_one.port());
            auto b = co_await Client::connect("127.0.0.1", running_two.port());
            co_await a.send("x");
            co_await b.send("x");
            co_await a.receive();  // echoed: both are open and registered
            co_await b.receive();
            for (const auto id : one.server.connections()) ids_one.insert(id);
            for (const auto id : two.server.connections()) {
                ids_two.insert(id);
                CHECK(two.server.exist(id));  // found on the loop `id % 2` names
            }
            co_await a.close();
            co_await b.close();
        }
    });
    CHECK(ids_one.size() >= 4);
    CHECK(ids_two.size() >= 4);
    for (const auto id : ids_one) CHECK(ids_two.count(id) == 0);
}

TEST_CASE("connections are dealt to every event loop and echo there, with and without Asio's socket locks") {
    for (const bool locks : {false, true}) {
        CAPTURE(locks);
        auto settings = two_threads();
        settings.socket_locks = locks;
        EchoServer echo(settings);
        std::atomic<int> on_first{0}, on_second{0};
        echo.server.on_open([&](Conn& c, const swirl::Request&) {
            (c.id() % 2 == 0 ? on_first : on_second).fetch_add(1);
        });
        test::RunningServer running(echo.server);
        test::run([&]() -> asio::awaitable<void> {
            std::vector<Client> clients;
            for (int i = 0; i < 6; ++i) clients.push_back(co_await Client::connect("127.0.0.1", running.port()));
            for (std::size_t i = 0; i < clients.size(); ++i) co_await clients[i].send(std::string(i * 100, 'a'));
            for (std::size_t i = 0; i < clients.size(); ++i) {
                const auto reply = co_await clients[i].receive();
                REQUIRE(reply);
                CHECK(reply->payload == std::string(i * 100, 'a'));
            }
            for (auto& c : clients) co_await c.close();
        });
        CHECK(on_first.load() == 3);  // in turn: each loop registered and served its own
        CHECK(on_second.load() == 3);
    }
}

TEST_CASE("a custom handshake can reject with any response or accept with extra headers") {
    test::Events events;
    Server server(test::local_settings());
    server.on_handshake([&](Conn& c, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<bool> {
        if (req.query_param("token") != "secret") {
            res.status = 401;
            res.set_header("WWW-Authenticate", "Token");
            res.body = "no entry\n";
            co_return false;
        }
        c.data().user = "token-holder";
        const auto info = c.server().client_info(c.id());
        events.add(fmt::format("status during handshake {}", info ? swirl::to_string(info->status) : "none"));
        res.add_header("Set-Cookie", "session=abc");
        co_return swirl::accept_handshake(req, res);
    });
    server.on_open([&](Conn& c, const swirl::Request&) -> asio::awaitable<void> {
        events.add("open " + c.data().user);
        c.send("hello, welcome");
        co_return;
    });
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        try {
            co_await Client::connect("127.0.0.1", running.port());
            FAIL("handshake without a token was accepted");
        } catch (const swirl::HandshakeRejected& e) {
            CHECK(e.response().status == 401);
            CHECK(e.response().header("WWW-Authenticate") == "Token");
            CHECK(e.response().body == "no entry\n");
        }
        swirl::ClientOptions options;
        options.target = "/?token=secret";
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(client.handshake_response().header("Set-Cookie") == "session=abc");
        CHECK(client.handshake_response().header("Sec-WebSocket-Protocol") == std::nullopt);
        const auto hello = co_await client.receive();
        CHECK(hello->payload == "hello, welcome");
        co_await client.close();
    });
    CHECK(events.contains("open token-holder"));
    CHECK(events.contains("status during handshake HANDSHAKE"));
}

TEST_CASE("a handshake hook that accepts without a 101 response gets a 500") {
    Server server(test::local_settings());
    server.on_handshake([](Conn&, const swirl::Request&, swirl::Response&) -> asio::awaitable<bool> { co_return true; });
    server.on_message(echo_message);
    test::RunningServer running(server);
    const auto response = test::http_exchange(running.port(), test::upgrade_request());
    CHECK(response.starts_with("HTTP/1.1 500 "));
}

TEST_CASE("a hook's header value with CR/LF is never sent: the client gets a 500 instead") {
    Server server(test::local_settings());
    server.on_handshake([](Conn&, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<bool> {
        res.add_header("X-Echo", std::string(req.query_param("name").value_or("")));  // attacker-controlled
        co_return swirl::accept_handshake(req, res);
    });
    server.on_message(echo_message);
    test::RunningServer running(server);
    const auto response = test::http_exchange(running.port(), test::upgrade_request({}, "/?name=a%0D%0ASet-Cookie:%20x"));
    CHECK(response.starts_with("HTTP/1.1 500 "));
    CHECK(response.find("Set-Cookie") == std::string::npos);
    test::run([&]() -> asio::awaitable<void> {
        swirl::ClientOptions options;
        options.target = "/?name=ada";
        auto client = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(client.handshake_response().header("X-Echo") == "ada");
        co_await client.close();
    });
}

TEST_CASE("the default handshake answers 426, 400 and never an unrequested subprotocol") {
    auto settings = test::local_settings();
    settings.subprotocols = {"chat", "superchat"};
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);

    const auto wrong_version = test::http_exchange(running.port(), test::upgrade_request("", "/", "8"));
    CHECK(wrong_version.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    CHECK(wrong_version.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);

    CHECK(test::http_exchange(running.port(), test::upgrade_request("", "/", "13", "abc")).starts_with("HTTP/1.1 400 "));
    CHECK(test::http_exchange(running.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400 "));
    CHECK(test::http_exchange(running.port(), "NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400 "));

    test::run([&]() -> asio::awaitable<void> {
        auto plain = co_await Client::connect("127.0.0.1", running.port());
        CHECK_FALSE(plain.handshake_response().header("Sec-WebSocket-Protocol"));
        swirl::ClientOptions options;
        options.subprotocols = {"other", "superchat", "chat"};
        auto chosen = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK(chosen.handshake_response().header("Sec-WebSocket-Protocol") == "chat");  // server preference
        options.subprotocols = {"other"};
        auto none = co_await Client::connect("127.0.0.1", running.port(), options);
        CHECK_FALSE(none.handshake_response().header("Sec-WebSocket-Protocol"));
        co_await plain.close();
        co_await chosen.close();
        co_await none.close();
    });
}

TEST_CASE("oversized request headers get 431") {
    auto settings = test::local_settings();
    settings.http.max_header_bytes = 1024;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    const auto response = test::http_exchange(running.port(), test::upgrade_request("X-Big: " + std::string(2000, 'a') + "\r\n"));
    CHECK(response.starts_with("HTTP/1.1 431 "));
}

TEST_CASE("plain HTTP requests go to the request handler, with keep-alive") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    server.on_request([](Conn&, const swirl::Request& req, swirl::Response& res) -> asio::awaitable<void> {
        res.status = 200;
        res.set_header("Content-Type", "text/plain");
        res.body = "path=" + std::string(req.path()) + " body=" + req.body;
        co_return;
    });
    test::RunningServer running(server);
    const auto response = test::http_exchange(
        running.port(),
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "GET /b?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto first = response.find("HTTP/1.1 200 OK\r\n");
    const auto second = response.find("HTTP/1.1 200 OK\r\n", first + 1);
    CHECK(first == 0);
    REQUIRE(second != std::string::npos);
    CHECK(response.find("path=/a body=abc") != std::string::npos);
    CHECK(response.find("path=/b body=") != std::string::npos);
    CHECK(response.find("Connection: close") > second);
}

TEST_CASE("a client that never finishes the upgrade is dropped after the handshake timeout") {
    auto settings = test::local_settings();
    settings.handshake_timeout = 300ms;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    // Part of a request, and nothing at all (the server waits for the request without reading).
    for (const std::string sent : {"GET / HTTP/1.1\r\nHost: x\r\n", ""}) {
        CAPTURE(sent);
        test::run([&]() -> asio::awaitable<void> {
            auto socket = co_await test::connect_raw(running.port());
            if (!sent.empty()) co_await asio::async_write(socket, asio::buffer(sent), asio::use_awaitable);
            const auto start = std::chrono::steady_clock::now();
            const auto rest = co_await test::read_to_eof(socket);
            const auto waited = std::chrono::steady_clock::now() - start;
            CHECK(rest.empty());
            CHECK(waited >= 250ms);
            CHECK(waited < 2s);
        });
    }
    CHECK(test::eventually([&] { return server.connection_count() == 0; }));
}

TEST_CASE("an idle connection is closed with 1001 after the idle timeout") {
    auto settings = test::local_settings();
    settings.idle_timeout = 300ms;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        const auto start = std::chrono::steady_clock::now();
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->opcode == Opcode::close);
        CHECK(f->code == swirl::close_code::going_away);
        CHECK(std::chrono::steady_clock::now() - start >= 250ms);
    });
}

TEST_CASE("the idle timeout counts from the peer's last bytes and is never early") {
    // The silence the server measures must never exceed the true silence, timed here from before the last message
    // left: a clock that lags (CLOCK_MONOTONIC_COARSE, by up to 8 ms here, more under load) fails this.
    // The short close timeout makes the deadlines' tick 1 ms, so that they fire within 1 ms of being due.
    auto settings = test::local_settings();
    settings.idle_timeout = 300ms;
    settings.close_timeout = 16ms;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        for (int round = 0; round < 5; ++round) {
            CAPTURE(round);
            auto client = co_await Client::connect("127.0.0.1", running.port());
            for (int i = 0; round == 0 && i < 20; ++i) {  // 600 ms of messages keep it open
                const auto sent = std::chrono::steady_clock::now();
                co_await client.send("still here");
                CHECK(co_await test::next_payload(client) == "still here");
                asio::steady_timer pause(co_await asio::this_coro::executor,
                                         30ms - (std::chrono::steady_clock::now() - sent));
                co_await pause.async_wait(asio::use_awaitable);
            }
            const auto sent = std::chrono::steady_clock::now();
            co_await client.send("last");
            CHECK(co_await test::next_payload(client) == "last");
            const auto f = co_await client.receive();
            const auto silence = std::chrono::steady_clock::now() - sent;
            REQUIRE(f);
            CHECK(f->opcode == Opcode::close);
            CHECK(f->code == swirl::close_code::going_away);
            CHECK(silence >= 300ms);
            CHECK(silence < 2s);
        }
    });
}

TEST_CASE("protocol violations close with the RFC code") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    test::RunningServer running(server);
    struct Case {
        std::string name;
        std::string bytes;
        std::uint16_t code;
    };
    const std::vector<Case> cases = {
        {"unmasked", swirl::pack("hi"), 1002},
        {"rsv1", [] { auto f = test::client_frame("hi"); f[0] |= 0x40; return f; }(), 1002},
        {"reserved opcode", test::client_frame("", static_cast<Opcode>(3)), 1002},
        {"long ping", test::client_frame(std::string(126, 'p'), Opcode::ping), 1002},
        {"fragmented ping", test::client_frame("p", Opcode::ping, false), 1002},
        {"lone continuation", test::client_frame("x", Opcode::continuation), 1002},
        {"new message inside fragmented", test::client_frame("a", Opcode::text, false) + test::client_frame("b"), 1002},
        {"invalid utf-8", test::client_frame("\xce\xba\xe1\xbd\xb9\xed\xa0\x80"), 1007},
        {"invalid utf-8 in 2nd fragment", test::client_frame("ok", Opcode::text, false) + test::client_frame("\xff", Opcode::continuation), 1007},
        {"close code 1005", test::client_frame(std::string("\x03\xed", 2), Opcode::close), 1002},
        {"close code 999", test::client_frame(std::string("\x03\xe7", 2), Opcode::close), 1002},
        {"1-byte close", test::client_frame("x", Opcode::close), 1002},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", running.port());
            co_await client.send_raw(c.bytes);
            const auto f = co_await client.receive();
            REQUIRE(f);
            CHECK(f->opcode == Opcode::close);
            CHECK(f->code == c.code);
            CHECK_FALSE(f->reason.empty());
            const auto end_of_stream = co_await client.receive();
        CHECK_FALSE(end_of_stream);
        });
    }
}

TEST_CASE("an oversized message is refused with 1009 and the server keeps serving") {
    auto settings = test::local_settings();
    settings.max_message_size = 1024;
    settings.max_frame_size = 1024;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send(std::string(1024, 'a'));
        {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload.size() == 1024);
        }
        co_await client.send(std::string(600, 'a'), Opcode::text, false);
        co_await client.send(std::string(600, 'a'), Opcode::continuation, true);
        const auto f = co_await client.receive();
        CHECK(f->code == swirl::close_code::message_too_big);
        co_await test::check_still_serving(running.port());
    });
}

TEST_CASE("a throwing handler closes its connection with 1011 and the server keeps running") {
    Server server(test::local_settings());
    server.on_message([](Conn& c, Frame& f) -> asio::awaitable<void> {
        if (f.payload == "boom") throw std::runtime_error("handler failure");
        c.send(f.payload);
        co_return;
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("boom");
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->code == swirl::close_code::internal_error);
        co_await test::check_still_serving(running.port());
    });
}

TEST_CASE("a plain (non-coroutine) message handler echoes, and closes with 1011 when it throws") {
    Server server(test::local_settings());
    server.on_message([](Conn& c, Frame& f) {
        if (f.payload == "boom") throw std::runtime_error("handler failure");
        ++c.data().messages;
        c.send(f.payload, f.opcode);
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        const std::string big(70000, 'b');  // named: GCC 12 mishandles temporaries in a co_await that throws
        co_await client.send("one");
        co_await client.send(big, Opcode::binary);
        {
            const auto f = co_await client.receive();
            REQUIRE(f);
            CHECK(f->payload == "one");
        }
        {
            const auto f = co_await client.receive();
            REQUIRE(f);
            CHECK(f->opcode == Opcode::binary);
            CHECK(f->payload == big);
        }
        co_await client.send("boom");
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->opcode == Opcode::close);
        CHECK(f->code == swirl::close_code::internal_error);
        co_await test::check_still_serving(running.port());
    });
}

TEST_CASE("with a plain handler, pushes from other threads while it replies all arrive, in order") {
    // Replies of a plain handler are flushed when its read is done, not by a posted flush; a push from another
    // thread in that window must ride along with them rather than wait for the peer's next message.
    EchoServer echo(two_threads());
    Server& server = echo.server;
    const std::atomic<swirl::ConnectionId>& id = echo.id;
    server.on_message([](Conn& c, Frame& f) { c.send(f.payload, f.opcode); });
    test::RunningServer running(server);
    constexpr int pushers = 4, per_pusher = 500, echoes = 500;
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        std::vector<std::thread> threads;
        for (int t = 0; t < pushers; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < per_pusher; ++i) CHECK(static_cast<bool>(server.push(id, fmt::format("{}:{}", t, i))));
            });
        for (int i = 0; i < echoes; ++i) {
            const std::string message = fmt::format("e:{}", i);
            co_await client.send(message);
        }
        for (auto& t : threads) t.join();
        std::vector<int> next(pushers, 0);
        int next_echo = 0;
        for (int n = 0; n < pushers * per_pusher + echoes; ++n) {
            const auto f = co_await client.receive();
            REQUIRE(f);
            if (f->payload[0] == 'e') {
                CHECK(f->payload == fmt::format("e:{}", next_echo++));
            } else {
                const int t = f->payload[0] - '0';
                CHECK(f->payload == fmt::format("{}:{}", t, next[t]++));
            }
        }
        co_await client.close();
    }, 20s);
}

TEST_CASE("a push from another thread made while a plain handler runs leaves without further input") {
    auto settings = test::local_settings();
    settings.threads = 2;
    Server server(settings);
    server.on_message([&](Conn& c, Frame&) {
        std::thread([&, id = c.id()] { CHECK(static_cast<bool>(server.push(id, "pushed"))); }).join();
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("go");
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->payload == "pushed");
        co_await client.close();
    }, 5s);
}

TEST_CASE("large replies written straight from the handler keep their order with queued ones") {
    Server server(test::local_settings());
    // Large frames sent on the connection's thread with nothing queued skip the output queue; the others queue
    // behind whatever is being written. Many rounds at once make the socket take only part of some writes.
    server.on_message([](Conn& c, Frame& f) {
        const char tag = f.payload.empty() ? '?' : f.payload[0];
        c.send(std::string(100 * 1024, tag), Opcode::binary);
        c.send(f.payload);
        c.send(std::string(300 * 1024, static_cast<char>(tag + 1)), Opcode::binary);
        c.send("tail");
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        constexpr int rounds = 20;
        std::string burst;
        for (int i = 0; i < rounds; ++i) burst += test::client_frame(std::string(1, static_cast<char>('a' + i)) + "-request");
        co_await client.send_raw(burst);
        bool in_order = true;
        for (int i = 0; i < rounds && in_order; ++i) {
            const char tag = static_cast<char>('a' + i);
            const std::string expected[] = {std::string(100 * 1024, tag), std::string(1, tag) + "-request",
                                            std::string(300 * 1024, static_cast<char>(tag + 1)), "tail"};
            for (const auto& want : expected) {
                const auto f = co_await client.receive();
                if (!f || f->payload != want) {
                    in_order = false;
                    break;
                }
            }
        }
        CHECK(in_order);
        co_await client.close();
    }, 30s);
}

TEST_CASE("payloads moved into send arrive intact and in order, pipelined and from other threads") {
    // A moved payload of 8 KiB or more is queued without a copy and its buffer later receives another message of
    // the connection; sizes around both thresholds and the 64 KiB read buffer, many per read, several rounds.
    EchoServer echo(two_threads());
    Server& server = echo.server;
    const std::atomic<swirl::ConnectionId>& id = echo.id;
    server.on_message([](Conn& c, Frame& f) { c.send(std::move(f.payload), f.opcode); });
    test::RunningServer running(server);
    const std::size_t sizes[] = {0, 1, 125, 8191, 8192, 8193, 20000, 65535, 65536, 70000, 200000, 16384, 16384, 16384};
    const auto payload = [](int round, std::size_t i, std::size_t size) {
        std::string p(size, '\0');
        for (std::size_t k = 0; k < size; ++k) p[k] = static_cast<char>('a' + (round * 7 + i * 3 + k) % 26);
        return p;
    };
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        // Meanwhile another thread sends large moved payloads of its own: each arrives whole, in its order.
        std::thread pusher([&] {
            const auto c = server.find(id);
            REQUIRE(c);
            for (int i = 0; i < 50; ++i) CHECK(static_cast<bool>(c->send(std::string(9000 + i, 'P'), Opcode::binary)));
        });
        bool intact = true;
        int pushed = 0;
        for (int round = 0; round < 3; ++round) {
            std::string burst;
            for (std::size_t i = 0; i < std::size(sizes); ++i) burst += test::client_frame(payload(round, i, sizes[i]), Opcode::binary);
            co_await client.send_raw(burst);
            for (std::size_t i = 0; i < std::size(sizes);) {
                const auto f = co_await client.receive();
                REQUIRE(f);
                if (!f->payload.empty() && f->payload[0] == 'P') {
                    intact = intact && f->payload == std::string(9000 + pushed++, 'P');
                    continue;
                }
                intact = intact && f->payload == payload(round, i, sizes[i]);
                ++i;
            }
        }
        pusher.join();
        while (pushed < 50) {
            const auto f = co_await client.receive();
            REQUIRE(f);
            intact = intact && f->payload == std::string(9000 + pushed++, 'P');
        }
        CHECK(intact);
        co_await client.close();
    }, 30s);
}

TEST_CASE("pings are answered automatically; control frames reach the handler only when asked") {
    test::Events events;
    auto settings = test::local_settings();
    settings.deliver_ping = true;
    settings.deliver_pong = true;
    settings.deliver_close = true;
    std::atomic<swirl::ConnectionId> id{0};
    Server server(settings);
    server.on_open([&](Conn& c, const swirl::Request&) -> asio::awaitable<void> { id = c.id(); co_return; });
    server.on_message([&](Conn&, Frame& f) -> asio::awaitable<void> {
        events.add(fmt::format("{} {}", static_cast<int>(f.opcode), f.opcode == Opcode::close ? std::to_string(f.code) : f.payload));
        co_return;
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("are you there", Opcode::ping);
        const auto pong = co_await client.receive();
        CHECK(pong->opcode == Opcode::pong);
        CHECK(pong->payload == "are you there");
        REQUIRE(test::eventually([&] { return id != 0; }));
        CHECK(server.ping(id, "server ping"));
        const auto ping = co_await client.receive();  // our client answers it with a pong
        CHECK(ping->opcode == Opcode::ping);
        CHECK(ping->payload == "server ping");
        CHECK(events.wait_for("10 server ping"));
        co_await client.close(4000, "");
    });
    CHECK(events.wait_for("8 4000"));
    CHECK(events.contains("9 are you there"));
}

TEST_CASE("pings and pongs stay invisible to the handler by default") {
    test::Events events;
    Server server(test::local_settings());
    server.on_message([&](Conn&, Frame& f) -> asio::awaitable<void> { events.add(f.payload); co_return; });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("p", Opcode::ping);
        {
            const auto next = co_await client.receive();
            REQUIRE(next);
            CHECK(next->opcode == Opcode::pong);
        }
        co_await client.send("unsolicited", Opcode::pong);
        co_await client.send("data");
        CHECK(events.wait_for("data"));
        co_await client.close();
    });
    CHECK(events.all() == std::vector<std::string>{"data"});
}

TEST_CASE("the connection limit answers 503 beyond max_connections") {
    auto settings = test::local_settings();
    settings.max_connections = 1;
    Server server(settings);
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto first = co_await Client::connect("127.0.0.1", running.port());
        try {
            co_await Client::connect("127.0.0.1", running.port());
            FAIL("second connection accepted");
        } catch (const swirl::HandshakeRejected& e) {
            CHECK(e.response().status == 503);
        }
        co_await first.close();
    });
}

TEST_CASE("a slow reader hits the output high-water mark and push reports buffer_full") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 256 * 1024;
    EchoServer echo(settings);
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        const std::string chunk(64 * 1024, 'z');
        int queued = 0;
        swirl::PushResult last{PushStatus::queued};
        // The kernel's socket buffers absorb a few MiB first. A refusal counts once it persists after the writer
        // had time to drain into them; the bound stops the loop regardless.
        for (int i = 0; i < 4000; ++i) {
            last = server.push(id, chunk);
            if (!last) {
                std::this_thread::sleep_for(50ms);
                last = server.push(id, chunk);
            }
            if (!last) break;
            ++queued;
        }
        CHECK(last == PushStatus::buffer_full);
        const auto info = server.client_info(id);
        REQUIRE(info);
        CHECK(info->buffered >= settings.max_output_buffer);
        CHECK(info->buffered <= settings.max_output_buffer + chunk.size() + 16);
        CHECK(server.is_established(id));  // reject_message keeps the connection
        // Reading everything drains the queue, and pushes succeed again.
        for (int i = 0; i < queued; ++i) {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload.size() == chunk.size());
        }
        CHECK(static_cast<bool>(server.push(id, "after")));
        {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload == "after");
        }
        co_await client.close();
    }, 30s);
}

TEST_CASE("with close_connection backpressure a slow reader is closed with 1008") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 256 * 1024;
    settings.backpressure = swirl::BackpressurePolicy::close_connection;
    EchoServer echo(settings);
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        const std::string chunk(64 * 1024, 'z');
        swirl::PushResult last{PushStatus::queued};
        for (int i = 0; i < 4000 && last; ++i) last = server.push(id, chunk);
        CHECK(last == PushStatus::buffer_full);
        CHECK(server.push(id, "more") == PushStatus::not_open);
        std::optional<Frame> f;
        while ((f = co_await client.receive()) && f->opcode != Opcode::close) {}
        REQUIRE(f);
        CHECK(f->code == swirl::close_code::policy_violation);
    }, 30s);
}

TEST_CASE("with pause_reading_above a peer that floods without reading waits in TCP and loses no reply") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 256 * 1024;  // without the pause, this flood gets replies refused (test above)
    settings.pause_reading_above = 64 * 1024;
    EchoServer echo(settings);
    auto& server = echo.server;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        const std::string payload(64 * 1024, 'p');
        const std::string frame = test::client_frame(payload, Opcode::binary);
        constexpr int count = 256;  // 16 MiB: far more than the socket buffers and the output limit hold
        bool flood_done = false;
        asio::co_spawn(co_await asio::this_coro::executor, [&]() -> asio::awaitable<void> {
            for (int i = 0; i < count; ++i) co_await client.send_raw(frame);
            flood_done = true;
        }, asio::detached);
        asio::steady_timer pause(co_await asio::this_coro::executor, 500ms);
        co_await pause.async_wait(asio::use_awaitable);
        CHECK_FALSE(flood_done);  // the server stopped reading, so the flood is stuck in TCP
        const auto info = server.client_info(echo.id);
        REQUIRE(info);
        CHECK(info->buffered <= settings.pause_reading_above + frame.size());
        CHECK(info->bytes_in < count * frame.size());
        int received = 0;
        for (; received < count; ++received) {
            const auto f = co_await client.receive();
            if (!f || f->payload != payload) break;
        }
        CHECK(received == count);  // every reply arrived: none was refused
        CHECK(flood_done);
        co_await client.close();
    }, 30s);
}

TEST_CASE("timers: after fires once, tick repeats until cleared, defer runs soon") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    test::RunningServer running(server);
    std::atomic<int> once{0}, ticks{0}, deferred{0}, self_cleared{0};
    server.after(20ms, [&] { ++once; });
    const auto tick = server.tick(10ms, [&]() -> asio::awaitable<void> { ++ticks; co_return; });
    server.tick(5ms, [&](swirl::TimerId me) {
        if (++self_cleared == 3) server.clear(me);
    });
    server.defer([&] { ++deferred; });
    CHECK(test::eventually([&] { return once == 1 && ticks >= 3 && deferred == 1; }));
    CHECK(server.clear(tick));
    CHECK_FALSE(server.clear(tick));
    const int seen = ticks;
    std::this_thread::sleep_for(60ms);
    CHECK(ticks <= seen + 1);
    CHECK(once == 1);
    CHECK(self_cleared == 3);
}

TEST_CASE("stop closes open connections with 1001 and run returns") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    server.listen();
    std::thread runner([&] { server.run(); });
    const auto port = server.local_endpoint().port();
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", port);
        co_await client.send("x");
        {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload == "x");
        }
        server.stop();
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->code == swirl::close_code::going_away);
    });
    runner.join();
    CHECK(server.connection_count() == 0);
}

TEST_CASE("the handler-class style registers every event the class defines") {
    struct App {
        test::Events events;
        asio::awaitable<void> on_open(Conn& c, const swirl::Request&) { events.add("open"); c.send("hi"); co_return; }
        asio::awaitable<void> on_message(Conn& c, Frame& f) { events.add("message"); c.send(f.payload); co_return; }
        asio::awaitable<void> on_close(Conn&, const swirl::CloseInfo& i) { events.add(fmt::format("close {}", i.code)); co_return; }
    } app;
    Server server(test::local_settings());
    server.use(app);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload == "hi");
        }
        co_await client.send("yo");
        {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload == "yo");
        }
        co_await client.close();
    });
    CHECK(app.events.wait_for("close 1000"));
    CHECK(app.events.all() == std::vector<std::string>{"open", "message", "close 1000"});
}

TEST_CASE("replies to pipelined messages are coalesced into few writes") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        std::string burst;
        for (int i = 0; i < 100; ++i) burst += test::client_frame(fmt::format("m{}", i));
        co_await client.send_raw(burst);  // one TCP write carrying 100 frames
        for (int i = 0; i < 100; ++i) {
            const auto payload = co_await test::next_payload(client);
            CHECK(payload == fmt::format("m{}", i));
        }
        co_await client.close();
    });
}

TEST_CASE("a peer that closes or errs and then stops reading is dropped after close_timeout") {
    auto settings = test::local_settings();
    settings.close_timeout = 300ms;
    settings.max_output_buffer = 64u << 20;
    Server server(settings);
    server.on_message([](Conn& c, Frame& f) -> asio::awaitable<void> {
        const std::string chunk(1 << 20, 'f');
        if (f.payload == "flood")
            for (int i = 0; i < 32; ++i) c.send(chunk);  // far more than the kernel buffers hold
        co_return;
    });
    test::RunningServer running(server);
    for (const std::string& last : {test::client_frame(swirl::close_payload(1000, ""), Opcode::close), swirl::pack("unmasked")}) {
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", running.port());
            co_await client.send("flood");
            co_await client.send_raw(last);  // ...and never read again
            const auto start = std::chrono::steady_clock::now();
            CHECK(test::eventually([&] { return server.connection_count() == 0; }, 3s));
            CHECK(std::chrono::steady_clock::now() - start < 2s);
        });
    }
}

TEST_CASE("stop lets a connection that is already closing deliver its queued frames and close frame") {
    EchoServer echo(test::local_settings());
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        const std::string chunk(64 * 1024, 'q');
        for (int i = 0; i < 64; ++i) REQUIRE(static_cast<bool>(server.push(id, chunk)));
        REQUIRE(server.disconnect(id, 4000, "bye"));
        server.stop();
        int received = 0;
        std::optional<Frame> f;
        while ((f = co_await client.receive()) && f->opcode != Opcode::close) received += f->payload == chunk;
        CHECK(received == 64);
        REQUIRE(f);
        CHECK(f->code == 4000);
    });
}

TEST_CASE("Server::pack and Server::unpack are Swoole's static helpers") {
    const std::string bytes = Server::pack("hello", Opcode::binary, false);
    CHECK(bytes == swirl::pack("hello", Opcode::binary, false));
    const auto frame = Server::unpack(bytes);
    REQUIRE(frame);
    CHECK(frame->payload == "hello");
    CHECK(frame->opcode == Opcode::binary);
    CHECK_FALSE(frame->fin);
    CHECK_FALSE(Server::unpack(bytes.substr(1)));
}

TEST_CASE("broadcast refuses close, pong and oversized ping frames") {
    Server server(test::local_settings());
    server.on_message(echo_message);
    CHECK(server.broadcast(swirl::close_payload(1000, ""), Opcode::close) == 0);
    CHECK(server.broadcast("x", Opcode::pong) == 0);
    CHECK(server.broadcast(std::string(126, 'p'), Opcode::ping) == 0);
}

TEST_CASE("stop finishes even when a close handler adds timers, and wait is safe from a server thread") {
    Server server(test::local_settings());
    server.on_message([&](Conn&, Frame& f) -> asio::awaitable<void> {
        if (f.payload == "stop") {
            server.stop();
            server.wait();  // on the server's own thread: must not terminate
        }
        co_return;
    });
    server.on_close([&](Conn&, const swirl::CloseInfo&) -> asio::awaitable<void> {
        CHECK(server.tick(10ms, [] {}) == 0);  // refused during shutdown
        co_return;
    });
    server.listen();
    auto runner = std::async(std::launch::async, [&] { server.run(); });
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", server.local_endpoint().port());
        co_await client.send("stop");
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->code == swirl::close_code::going_away);
    });
    CHECK(runner.wait_for(5s) == std::future_status::ready);
}

TEST_CASE("a close reason longer than a control frame allows is cut on a character boundary") {
    EchoServer echo(test::local_settings());
    auto& server = echo.server;
    auto& id = echo.id;
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        echo.wait_open();
        std::string reason;
        for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";  // 'é' × 100 = 200 bytes
        REQUIRE(server.disconnect(id, 4000, reason));
        const auto f = co_await client.receive();  // the client's reader would throw on invalid UTF-8
        REQUIRE(f);
        CHECK(f->reason.size() == 122);
        CHECK(swirl::is_valid_utf8(f->reason));
    });
}

namespace {

/// Upgrades a raw socket and reads the 101 response, so a test can then misbehave byte by byte.
asio::awaitable<void> raw_upgrade(asio::ip::tcp::socket& socket) {
    const std::string request = test::upgrade_request();
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string response;
    while (response.find("\r\n\r\n") == std::string::npos) {  // the server sends nothing more before we do
        char c;
        co_await asio::async_read(socket, asio::buffer(&c, 1), asio::use_awaitable);
        response += c;
    }
    REQUIRE(response.starts_with("HTTP/1.1 101"));
}

} // namespace

TEST_CASE("a peer that pings without reading makes the server hold one pong, not a queue of them") {
    // Once, the server queued every pong: one such peer grew it by 2 GiB in 30 s and stalled the event loop.
    auto settings = test::local_settings();
    settings.max_output_buffer = 64 * 1024;
    EchoServer echo(settings);
    test::RunningServer running(echo.server);
    constexpr int pings = 40000;  // 5.2 MB of pongs, were each one answered
    test::run([&]() -> asio::awaitable<void> {
        asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
        socket.open(asio::ip::tcp::v4());
        socket.set_option(asio::socket_base::receive_buffer_size(4096));  // the pongs back up in the server
        co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), running.port()}, asio::use_awaitable);
        co_await raw_upgrade(socket);
        echo.wait_open();
        std::string burst;
        for (int i = 0; i < pings; ++i) {
            std::string payload = fmt::format("{:0>125}", i);
            if (i == pings - 1) payload = "the last ping";
            burst += test::client_frame(payload, Opcode::ping);
            if (burst.size() > 64 * 1024 || i == pings - 1) {
                co_await asio::async_write(socket, asio::buffer(burst), asio::use_awaitable);
                burst.clear();
            }
        }
        // Every ping was read (the server never stops reading), yet what it holds for us stays tiny.
        REQUIRE(test::eventually([&] { return echo.server.client_info(echo.id)->bytes_in >= 131ull * (pings - 1); }));
        const auto held = echo.server.client_info(echo.id)->buffered;
        CHECK(held <= 3 * (125 + 2));  // at most one pong being written, one queued and one owed
        co_await test::check_still_serving(running.port());
        // Reading now, the pongs arrive intact, and the most recent ping is answered.
        swirl::MessageReader reader(swirl::Role::client);
        std::uint8_t buf[16384];
        std::string last;
        int pongs = 0;
        while (last != "the last ping") {
            const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
            std::span<const std::uint8_t> input(buf, n);
            while (!input.empty()) {
                const auto r = reader.read(input);
                input = input.subspan(r.consumed);
                if (r.event == swirl::ReadEvent::need_more) break;
                REQUIRE(r.event == swirl::ReadEvent::pong);
                last = reader.frame().payload;
                ++pongs;
            }
        }
        CHECK(pongs >= 1);
        CHECK(pongs < pings);  // some pings went unanswered: only the most recent one is owed a pong
    }, 30s);
}

TEST_CASE("heartbeat: a peer that stops answering is dropped with 1006 after ping_interval + pong_timeout") {
    auto settings = test::local_settings();
    settings.ping_interval = 200ms;
    settings.pong_timeout = 200ms;
    test::Events events;
    Server server(settings);
    server.on_message(echo_message);
    server.on_close([&](Conn&, const swirl::CloseInfo& info) -> asio::awaitable<void> {
        events.add(fmt::format("close {} {} {}", info.code, info.reason, info.by_server));
        co_return;
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto socket = co_await test::connect_raw(running.port());
        co_await raw_upgrade(socket);
        const auto start = std::chrono::steady_clock::now();
        const std::string rest = co_await test::read_to_eof(socket);  // never answering
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(took >= 380ms);
        CHECK(took < 1500ms);
        REQUIRE(rest.size() >= 2);
        CHECK(static_cast<unsigned char>(rest[0]) == 0x89);  // the ping
        CHECK(rest.size() == 2);                              // and no close frame: the peer is presumed gone
    });
    CHECK(events.wait_for("close 1006 pong timeout true"));
}

TEST_CASE("heartbeat: a peer that answers pings stays open for many intervals, pinged every ping_interval") {
    // A pong_timeout longer than ping_interval too: the deadline filed with each ping is then the pong's, and the
    // pong must bring the next ping forward (otherwise pings came pong_timeout apart: one in this test's 1.2 s).
    for (const auto pong_timeout : {100ms, 2000ms}) {
        CAPTURE(pong_timeout.count());
        auto settings = test::local_settings();
        settings.ping_interval = 100ms;
        settings.pong_timeout = pong_timeout;
        EchoServer echo(settings);
        test::RunningServer running(echo.server);
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", running.port());
            echo.wait_open();
            echo.server.after(1200ms, [&] { echo.server.push(echo.id, "still here"); });
            // receive() answers each of the server's pings (and returns it): 12 intervals of silence from our side.
            int pings = 0;
            auto frame = co_await client.receive();
            for (; frame && frame->opcode == Opcode::ping; frame = co_await client.receive()) ++pings;
            REQUIRE(frame);
            CHECK(frame->payload == "still here");
            CHECK(pings >= 4);  // one per ping_interval + round trip, give or take a loaded machine
            CHECK(echo.server.client_info(echo.id)->bytes_in > 0);
            co_await client.send("echo me");
            CHECK(co_await test::next_payload(client) == "echo me");
            // After each ping, written to a silent peer, the connection gave back its write buffers: a reply that
            // leaves in many writes still arrives whole.
            const std::string large(3u << 20, 'l');
            co_await client.send(large, Opcode::binary);
            CHECK(co_await test::next_payload(client) == large);
            co_await client.close();
        });
    }
}

TEST_CASE("heartbeat: data from the peer counts as an answer, so a chatty peer is never pinged") {
    auto settings = test::local_settings();
    settings.ping_interval = 300ms;
    settings.pong_timeout = 100ms;
    EchoServer echo(settings);
    test::RunningServer running(echo.server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        for (int i = 0; i < 12; ++i) {  // 1.2 s of messages every 100 ms
            co_await client.send("tick");
            const auto frame = co_await client.receive();
            REQUIRE(frame);
            CHECK(frame->opcode == Opcode::text);  // never a ping first
            asio::steady_timer wait(co_await asio::this_coro::executor, 100ms);
            co_await wait.async_wait(asio::use_awaitable);
        }
        co_await client.close();
    });
}

TEST_CASE("hibernation: a coroutine handler's connection, silent for a heartbeat interval, gives up its coroutine until its next message") {
    auto settings = test::local_settings();
    settings.ping_interval = 100ms;
    settings.pong_timeout = 1s;  // slack: the client answers pings only while it reads
    settings.deliver_close = true;
    test::Events events;
    Server server(settings);
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {
        if (f.opcode == Opcode::close) {
            events.add(fmt::format("message close {}", f.code));
            co_return;
        }
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);  // a handler that suspends
        c.send(f.payload, f.opcode);
    });
    server.on_close([&](Conn&, const swirl::CloseInfo& info) -> asio::awaitable<void> {
        events.add(fmt::format("close {} {}", info.code, info.by_server));
        co_return;
    });
    test::RunningServer running(server);
    const auto hibernations = [&] { return server.stats().total.hibernations; };
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await test::echo_and_hibernate(client, hibernations);
        // Parked, the peer's close frame still reaches the coroutine handler (deliver_close), then on_close runs.
        const auto reply = co_await client.close();
        REQUIRE(reply);
        CHECK(reply->code == swirl::close_code::normal);
    }, 30s);
    CHECK(events.wait_for("message close 1000"));
    CHECK(events.wait_for("close 1000 false"));
    CHECK(hibernations() >= 3);
    const std::string metric = fmt::format("swirl_hibernations_total{{loop=\"0\"}} {}\n", hibernations());
    CHECK(swirl::to_prometheus(server.stats()).find(metric) != std::string::npos);
}

TEST_CASE("hibernation: counted once, not again for a coroutine that only waited while reading was paused") {
    auto settings = test::local_settings();
    settings.ping_interval = 100ms;
    settings.pong_timeout = 2s;  // slack: the client answers pings only while it reads
    Server server(settings);
    std::atomic<Conn*> conn{nullptr};
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {
        conn = &c;
        c.send(f.payload, f.opcode);
        co_return;
    });
    test::RunningServer running(server);
    const auto hibernations = [&] { return server.stats().total.hibernations; };
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("hello");
        const auto echoed = co_await test::receive_skipping_pings(client);
        REQUIRE(echoed);
        CHECK(echoed->payload == "hello");
        // Silent: the next heartbeat ends the session coroutine.
        co_await test::receive_pings_until(client, [&] { return hibernations() != 0; });
        // Reading paused, the parked connection's next input (a ping) starts a coroutine that waits for the resume,
        // then answers the ping, finds nothing more to read and parks again: the connection hibernated all along.
        REQUIRE(conn.load() != nullptr);
        conn.load()->pause_reading();
        co_await client.send("are you there", Opcode::ping);
        asio::steady_timer wait(co_await asio::this_coro::executor, 200ms);
        co_await wait.async_wait(asio::use_awaitable);
        conn.load()->resume_reading();
        const auto pong = co_await test::receive_skipping_pings(client);
        REQUIRE(pong);
        CHECK(pong->opcode == Opcode::pong);
        CHECK(pong->payload == "are you there");
        wait.expires_after(200ms);  // the resumed coroutine has parked by now
        co_await wait.async_wait(asio::use_awaitable);
        CHECK(hibernations() == 1);
        // A message starts its coroutine again, and the next silence is the second hibernation.
        co_await client.send("again");
        const auto again = co_await test::receive_skipping_pings(client);
        REQUIRE(again);
        CHECK(again->payload == "again");
        co_await test::receive_pings_until(client, [&] { return hibernations() != 1; });
        CHECK(hibernations() == 2);
        co_await client.close();
    }, 30s);
}

TEST_CASE("hibernation: not while the handler is suspended, nor while a write waits for the peer") {
    auto settings = test::local_settings();
    settings.ping_interval = 100ms;
    settings.pong_timeout = 5s;
    Server server(settings);
    std::atomic<std::uint64_t> during_slow{~0ull};  // hibernations while the slow handler was suspended
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {
        if (f.payload == "slow") {
            const auto before = server.stats().total.hibernations;
            asio::steady_timer wait(co_await asio::this_coro::executor, 500ms);  // several heartbeats
            co_await wait.async_wait(asio::use_awaitable);
            during_slow = server.stats().total.hibernations - before;  // (the server's only connection)
            c.send("slow done");
        } else if (f.payload == "big") {
            c.send(std::string(4u << 20, 'b'), Opcode::binary);  // far more than the socket takes at once
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        {
            auto client = co_await Client::connect("127.0.0.1", running.port());
            co_await client.send("slow");
            const auto done = co_await test::receive_skipping_pings(client);  // pings came meanwhile: the peer was silent
            REQUIRE(done);
            CHECK(done->payload == "slow done");
            CHECK(during_slow == 0);  // the coroutine was in the handler, not waiting for input
            co_await client.close();
        }
        // A peer that does not read: the 4 MiB reply waits for its window through heartbeats. Cancelling the
        // coroutine's wait then would end the write's wait too, and the connection with it.
        asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
        socket.open(asio::ip::tcp::v4());
        socket.set_option(asio::socket_base::receive_buffer_size(4096));
        co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), running.port()}, asio::use_awaitable);
        co_await raw_upgrade(socket);
        const std::string request = test::client_frame("big");
        co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
        asio::steady_timer wait(co_await asio::this_coro::executor, 600ms);
        co_await wait.async_wait(asio::use_awaitable);
        swirl::MessageReader reader(swirl::Role::client, {64u << 20, 64u << 20});
        std::vector<std::uint8_t> buf(1 << 16);
        std::size_t pings = 0;
        bool whole = false;
        while (!whole) {
            const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
            std::span<const std::uint8_t> input(buf.data(), n);
            while (!input.empty() && !whole) {
                const auto r = reader.read(input);
                input = input.subspan(r.consumed);
                if (r.event == swirl::ReadEvent::need_more) break;
                if (r.event == swirl::ReadEvent::ping) ++pings;
                else {
                    REQUIRE(r.event == swirl::ReadEvent::message);
                    CHECK(reader.frame().payload == std::string(4u << 20, 'b'));
                    whole = true;
                }
            }
        }
        CHECK(pings == 0);  // queued behind the reply
        const std::string close = test::client_frame(swirl::close_payload(1000, ""), Opcode::close);
        co_await asio::async_write(socket, asio::buffer(close), asio::use_awaitable);
        const std::string rest = co_await test::read_to_eof(socket);  // the pings, then the server's close frame
        CHECK(rest.size() >= 4);
    }, 20s);
}

TEST_CASE("several listeners serve the same handlers, and pushes cross between them") {
    std::mutex mutex;
    std::vector<swirl::ConnectionId> open;
    Server server(two_threads());
    server.on_open([&](Conn& c, const swirl::Request&) -> asio::awaitable<void> {
        std::lock_guard lock(mutex);
        open.push_back(c.id());
        co_return;
    });
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {  // relays to every other connection
        for (const auto id : server.connections())
            if (id != c.id()) server.push(id, f.payload);
        co_return;
    });
    const auto second = server.add_listener({"127.0.0.1", 0});  // before listen(): accepts from start() on
    test::RunningServer running(server);
    const auto third = server.add_listener({"127.0.0.1", 0});   // after: accepts at once
    const auto endpoints = server.local_endpoints();
    REQUIRE(endpoints.size() == 3);
    CHECK(endpoints[0].port() == running.port());
    CHECK(endpoints[1] == second);
    CHECK(endpoints[2] == third);
    CHECK(second.port() != running.port());
    CHECK(third.port() != second.port());
    test::run([&]() -> asio::awaitable<void> {
        auto a = co_await Client::connect("127.0.0.1", running.port());
        auto b = co_await Client::connect("127.0.0.1", second.port());
        auto c = co_await Client::connect("127.0.0.1", third.port());
        REQUIRE(test::eventually([&] { std::lock_guard lock(mutex); return open.size() == 3; }));
        co_await a.send("from the first");
        CHECK(co_await test::next_payload(b) == "from the first");
        CHECK(co_await test::next_payload(c) == "from the first");
        co_await c.send("from the third");
        CHECK(co_await test::next_payload(a) == "from the third");
        CHECK(co_await test::next_payload(b) == "from the third");
        co_await a.close();
        co_await b.close();
        co_await c.close();
    });
}

TEST_CASE("a listener that cannot bind throws; SO_REUSEPORT lets two servers share a port") {
    auto settings = test::local_settings();
    settings.reuse_port = true;
    EchoServer first(settings);
    test::RunningServer running_first(first.server);
    const auto port = running_first.port();

    CHECK_THROWS_AS(first.server.add_listener({"127.0.0.1", port}), std::system_error);  // no SO_REUSEPORT on this one

    settings.port = port;
    EchoServer second(settings);
    test::RunningServer running_second(second.server);  // would throw "address in use" without reuse_port
    CHECK(running_second.port() == port);
    test::run([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 8; ++i) {  // whichever server the kernel picks, the echo comes back
            auto client = co_await Client::connect("127.0.0.1", port);
            co_await client.send("shared");
            CHECK(co_await test::next_payload(client) == "shared");
            co_await client.close();
        }
    });
}
