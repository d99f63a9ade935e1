// Server statistics (server/stats.hpp): the counters of a scripted run, exactly, and their Prometheus rendering.
#include "test_support.hpp"

#include <atomic>

using namespace std::chrono_literals;
using swirl::Client;
using swirl::Frame;
using swirl::Opcode;

namespace {

using Server = swirl::Server<>;
using Conn = Server::Connection;

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

} // namespace

TEST_CASE("stats: the counters of a scripted run, exactly") {
    auto settings = test::local_settings();
    settings.max_connections = 3;
    std::atomic<int> closed{0};
    std::atomic<swirl::ConnectionId> last{0};
    Server server(settings);
    server.on_open([&](Conn& c, const swirl::Request&) {
        last = c.id();
        c.subscribe("all");
        c.subscribe(fmt::format("user:{}", c.id()));
    });
    server.on_message([](Conn& c, Frame& f) { c.send(f.payload, f.opcode); });
    server.on_close([&](Conn&, const swirl::CloseInfo&) { ++closed; });
    test::RunningServer running(server);
    const auto port = running.port();

    // A rejected handshake (unsupported version: 426) and a plain HTTP request without a handler (400, not a
    // handshake).
    CHECK(test::http_exchange(port, test::upgrade_request({}, "/", "12")).starts_with("HTTP/1.1 426"));
    CHECK(test::http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400"));

    test::run([&]() -> asio::awaitable<void> {
        auto a = co_await Client::connect("127.0.0.1", port);
        auto b = co_await Client::connect("127.0.0.1", port);
        for (int i = 0; i < 3; ++i) {
            co_await a.send("abc");  // 3 bytes each way, a 2-byte header
            CHECK(co_await test::next_payload(a) == "abc");
        }
        co_await b.send("hello", Opcode::binary);
        CHECK(co_await test::next_payload(b) == "hello");
        REQUIRE(test::eventually([&] { return server.connection_count() == 2; }));
        const swirl::ConnectionId b_id = last;

        auto s = server.stats();
        CHECK(s.loops.size() == 1);
        CHECK(s.total.open == 2);
        CHECK(s.total.connections() == 2);
        CHECK(s.total.accepted == 4);
        CHECK(s.total.upgraded == 2);
        CHECK(s.total.handshakes_rejected == std::map<int, std::uint64_t>{{426, 1}});
        CHECK(s.total.messages_in == 4);
        CHECK(s.total.messages_out == 4);
        CHECK(s.total.topics == 3);  // "all", "user:<a>", "user:<b>"
        CHECK(s.topics == 3);
        CHECK(s.total.subscriptions == 4);
        CHECK(s.total.pushes_refused == 0);

        // A third connection fills max_connections; a fourth gets 503.
        auto c = co_await test::connect_raw(port);
        co_await asio::async_write(c, asio::buffer(test::upgrade_request()), asio::use_awaitable);
        REQUIRE(test::eventually([&] { return server.connection_count() == 3; }));
        CHECK(test::http_exchange(port, test::upgrade_request()).starts_with("HTTP/1.1 503"));
        // The raw one breaks the protocol (an unmasked frame): 1002.
        const std::string unmasked = swirl::pack("x", Opcode::text);
        co_await asio::async_write(c, asio::buffer(unmasked), asio::use_awaitable);
        co_await test::read_to_eof(c);
        REQUIRE(test::eventually([&] { return server.subscribers("all") == 2; }));  // c has left its topics

        CHECK(server.publish("all", "to everyone").forwarded == 2);
        CHECK(co_await test::next_payload(a) == "to everyone");
        CHECK(co_await test::next_payload(b) == "to everyone");
        co_await a.close();                   // closed by the peer
        CHECK(server.disconnect(b_id));       // closed by the server
        while (co_await b.receive()) {}
        REQUIRE(test::eventually([&] { return closed == 3 && server.connection_count() == 0; }));

        s = server.stats();
        CHECK(s.total.connections() == 0);
        CHECK(s.total.accepted == 5);
        CHECK(s.total.refused_at_limit == 1);
        CHECK(s.total.upgraded == 3);
        CHECK(s.total.closed_by_peer == 1);
        CHECK(s.total.closed_by_server == 2);  // the protocol error and the disconnect
        CHECK(s.total.protocol_errors == std::map<std::uint16_t, std::uint64_t>{{1002, 1}});
        CHECK(s.total.messages_in == 4);
        CHECK(s.total.messages_out == 6);
        CHECK(s.total.topics == 0);
        CHECK(s.total.subscriptions == 0);
        CHECK(s.total.bytes_in > 0);
        CHECK(s.total.bytes_out > 0);

        const std::string text = swirl::to_prometheus(s);
        CHECK(has_line(text, "# TYPE swirl_accepted_total counter"));
        CHECK(has_line(text, "swirl_accepted_total{loop=\"0\"} 5"));
        CHECK(has_line(text, "swirl_connections{loop=\"0\",status=\"open\"} 0"));
        CHECK(has_line(text, "swirl_handshakes_rejected_total{loop=\"0\",status=\"426\"} 1"));
        CHECK(has_line(text, "swirl_protocol_errors_total{loop=\"0\",code=\"1002\"} 1"));
        CHECK(has_line(text, "swirl_closed_total{loop=\"0\",by=\"server\"} 2"));
        CHECK(has_line(text, "swirl_messages_out_total{loop=\"0\"} 6"));
        CHECK(has_line(text, "swirl_tasks_total{outcome=\"completed\"} 0"));
        CHECK(swirl::to_prometheus(s, "chat").find("chat_messages_in_total{loop=\"0\"} 4") != std::string::npos);
    });
}

TEST_CASE("stats: per event loop and in total with two loops") {
    auto settings = test::local_settings();
    settings.threads = 2;
    Server server(settings);
    server.on_message([](Conn& c, Frame& f) { c.send(f.payload, f.opcode); });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        std::vector<Client> clients;
        for (int i = 0; i < 4; ++i) clients.push_back(co_await Client::connect("127.0.0.1", running.port()));
        for (auto& c : clients) {
            co_await c.send("x");
            CHECK(co_await test::next_payload(c) == "x");
        }
        const auto s = server.stats();
        REQUIRE(s.loops.size() == 2);
        CHECK(s.loops[0].open == 2);
        CHECK(s.loops[1].open == 2);
        CHECK(s.loops[0].messages_in == 2);
        CHECK(s.loops[1].messages_in == 2);
        CHECK(s.total.messages_in == 4);
        CHECK(s.total.open == 4);
        for (auto& c : clients) co_await c.close();
    });
}
