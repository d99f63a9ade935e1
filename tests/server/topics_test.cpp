// Topics (pub/sub) end to end: subscribe, publish, the sender-excluding publish, leaving on close, several event
// loops and threads racing (run under TSan in CI), a slow subscriber among fast ones.
#include "test_support.hpp"

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using swirl::Client;
using swirl::Frame;
using swirl::Opcode;

namespace {

using Server = swirl::Server<>;
using Conn = Server::Connection;

/// Commands: "sub T" / "unsub T" (reply "sub T 1|0"), "pub T payload" (server.publish, reply "pub <queued>"),
/// "cpub T payload" (connection.publish, reply "cpub <queued>"). Replies go before any published frame.
void topic_commands(Server& server) {
    server.on_message([&server](Conn& c, Frame& f) {
        const std::string_view text = f.payload;
        const auto space = text.find(' ');
        const std::string_view verb = text.substr(0, space);
        std::string_view rest = space == text.npos ? std::string_view() : text.substr(space + 1);
        const auto split = rest.find(' ');
        const std::string_view topic = rest.substr(0, split);
        const std::string_view payload = split == rest.npos ? std::string_view() : rest.substr(split + 1);
        if (verb == "sub") c.send(fmt::format("sub {} {}", topic, int(c.subscribe(topic))));
        else if (verb == "unsub") c.send(fmt::format("unsub {} {}", topic, int(c.unsubscribe(topic))));
        else if (verb == "pub") {
            c.send(fmt::format("pub-ack"));
            server.publish(topic, payload);
        } else if (verb == "cpub") {
            const auto r = c.publish(topic, payload);
            c.send(fmt::format("cpub {}", r.total()));
        }
    });
}

asio::awaitable<std::string> command(Client& client, std::string text) {
    co_await client.send(text);
    co_return co_await test::next_payload(client);
}

} // namespace

TEST_CASE("topics: subscribers receive publishes, others do not; connection.publish skips the sender") {
    Server server(test::local_settings());
    topic_commands(server);
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto a = co_await Client::connect("127.0.0.1", running.port());
        auto b = co_await Client::connect("127.0.0.1", running.port());
        auto outsider = co_await Client::connect("127.0.0.1", running.port());
        CHECK(co_await command(a, "sub room") == "sub room 1");
        CHECK(co_await command(a, "sub room") == "sub room 0");  // already
        CHECK(co_await command(b, "sub room") == "sub room 1");
        CHECK(co_await command(outsider, "sub other") == "sub other 1");
        CHECK(server.subscribers("room") == 2);
        CHECK(server.topics() == std::vector<std::string>{"other", "room"});

        const auto result = server.publish("room", "hello room");  // from this thread: handed to the loop
        CHECK(result.queued == 0);
        CHECK(result.forwarded == 2);
        CHECK(co_await test::next_payload(a) == "hello room");
        CHECK(co_await test::next_payload(b) == "hello room");

        CHECK(co_await command(a, "cpub room from a") == "cpub 1");  // b only
        CHECK(co_await test::next_payload(b) == "from a");

        CHECK(co_await command(b, "pub room to all") == "pub-ack");  // the sender is subscribed: it gets it too
        CHECK(co_await test::next_payload(b) == "to all");
        CHECK(co_await test::next_payload(a) == "to all");

        CHECK(co_await command(b, "unsub room") == "unsub room 1");
        CHECK(co_await command(b, "unsub room") == "unsub room 0");
        CHECK(server.publish("room", std::string(200, 'p'), Opcode::binary).forwarded == 1);
        const auto big = co_await a.receive();
        REQUIRE(big);
        CHECK(big->opcode == Opcode::binary);
        CHECK(big->payload == std::string(200, 'p'));

        // Nothing else was sent to b or the outsider: the next thing each sees is its own reply.
        CHECK(co_await command(b, "sub x") == "sub x 1");
        CHECK(co_await command(outsider, "sub y") == "sub y 1");

        co_await a.close();
        REQUIRE(test::eventually([&] { return server.subscribers("room") == 0; }));  // left on close
        CHECK(server.topics() == std::vector<std::string>{"other", "x", "y"});
        CHECK(server.topics("o") == std::vector<std::string>{"other"});
        CHECK(server.topics("z").empty());
        CHECK(server.publish("room", "nobody").total() == 0);
        CHECK(server.publish("room", "bad", Opcode::pong).total() == 0);  // not a publishable frame
        co_await b.close();
        co_await outsider.close();
    });
    CHECK(test::eventually([&] { return server.topics().empty(); }));
}

TEST_CASE("topics: subscriptions made from another thread take effect in order with that thread's publishes") {
    auto settings = test::local_settings();
    settings.threads = 2;
    std::atomic<int> opened{0};
    std::vector<swirl::ConnectionId> ids(4);
    Server server(settings);
    server.on_open([&](Conn& c, const swirl::Request&) { ids[static_cast<std::size_t>(opened++)] = c.id(); });
    server.on_message([](Conn&, Frame&) {});
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        std::vector<Client> clients;
        for (int i = 0; i < 4; ++i) clients.push_back(co_await Client::connect("127.0.0.1", running.port()));
        REQUIRE(test::eventually([&] { return opened == 4; }));
        std::set<std::size_t> loops;
        for (const auto id : ids) {
            REQUIRE(server.find(id));
            CHECK(server.find(id)->subscribe("t"));  // foreign thread: handed over, true
            loops.insert(id % 2);
        }
        CHECK(loops.size() == 2);  // connections on both event loops
        server.publish("t", "first");  // handed over behind the subscriptions, though none may be made yet
        for (auto& c : clients) CHECK(co_await test::next_payload(c) == "first");
        for (const auto id : ids) {
            CHECK(server.find(id)->is_subscribed("t"));
            CHECK(server.find(id)->topics() == std::vector<std::string>{"t"});
        }
        for (auto& c : clients) co_await c.close();
    });
}

// Several event loops, several publishing threads, subscriptions changing and connections closing meanwhile. Under
// TSan in CI. Every steady subscriber gets every message exactly once, in order per publisher; a connection
// unsubscribed mid-stream gets a prefix of each publisher's sequence.
TEST_CASE("topics: racing publishers, subscribers and closes on two event loops") {
    auto settings = test::local_settings();
    settings.threads = 2;
    constexpr int steady = 6, leavers = 4, churners = 4, publishers = 3, per_publisher = 300;
    std::atomic<int> opened{0};
    std::mutex ids_mutex;
    std::map<std::string, swirl::ConnectionId> ids;  // by the client's ?name=
    Server server(settings);
    server.on_open([&](Conn& c, const swirl::Request& req) {
        const std::string name(req.query_param("name").value_or("?"));
        if (name.starts_with("steady") || name.starts_with("leaver")) c.subscribe("room");
        {
            std::lock_guard lock(ids_mutex);
            ids[name] = c.id();
        }
        ++opened;
    });
    server.on_message([](Conn&, Frame&) {});
    test::RunningServer running(server);

    // Client side: one io_context thread holding every connection and reading what arrives.
    asio::io_context io;
    std::map<std::string, std::vector<std::string>> received;  // io thread only until joined
    std::map<std::string, Client> clients;
    std::atomic<int> connected{0};
    const auto all = steady + leavers + churners;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < all; ++i) {
            const std::string name = i < steady ? fmt::format("steady{}", i)
                                   : i < steady + leavers ? fmt::format("leaver{}", i) : fmt::format("churn{}", i);
            swirl::ClientOptions options;  // named: GCC 12 mishandles temporaries in a co_await expression
            options.target = "/?name=" + name;
            auto client = co_await Client::connect("127.0.0.1", running.port(), std::move(options));
            clients.emplace(name, std::move(client));
            ++connected;
        }
        for (auto& [name, client] : clients) {
            asio::co_spawn(io, [&, name = name]() -> asio::awaitable<void> {
                while (auto f = co_await client.receive())
                    if (f->opcode == Opcode::text) received[name].push_back(f->payload);  // not the close frame
            }, asio::detached);
        }
    }, asio::detached);
    std::thread io_thread([&] { io.run_for(60s); });
    REQUIRE(test::eventually([&] { return opened == all && connected == all; }, 10s));

    std::vector<std::thread> threads;
    for (int p = 0; p < publishers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_publisher; ++i) server.publish("room", fmt::format("{}:{}", p, i));
        });
    threads.emplace_back([&] {  // churn: subscribe and unsubscribe other connections to the same topic meanwhile
        for (int round = 0; round < 200; ++round)
            for (int i = steady + leavers; i < all; ++i) {
                std::shared_ptr<Conn> c;
                {
                    std::lock_guard lock(ids_mutex);
                    c = server.find(ids[fmt::format("churn{}", i)]);
                }
                if (!c) continue;
                if (round % 2 == 0) c->subscribe("room");
                else c->unsubscribe("room");
            }
    });
    threads.emplace_back([&] {  // leavers: unsubscribe two mid-stream, close two mid-stream
        std::this_thread::sleep_for(5ms);
        for (int i = steady; i < steady + leavers; ++i) {
            std::shared_ptr<Conn> c;
            {
                std::lock_guard lock(ids_mutex);
                c = server.find(ids[fmt::format("leaver{}", i)]);
            }
            if (!c) continue;
            if (i % 2 == 0) c->unsubscribe("room");
            else c->close();
        }
    });
    for (auto& t : threads) t.join();

    // Every steady subscriber ends with all publishers' messages.
    const auto steady_done = [&] {
        std::size_t total = 0;
        for (int i = 0; i < steady; ++i) {
            std::promise<std::size_t> n;
            asio::post(io, [&] { n.set_value(received[fmt::format("steady{}", i)].size()); });
            total += n.get_future().get();
        }
        return total == std::size_t(steady * publishers * per_publisher);
    };
    CHECK(test::eventually(steady_done, 20s));
    io.stop();  // the receiving coroutines are abandoned; the clients' sockets close with `clients` below
    io_thread.join();

    for (const auto& [name, messages] : received) {
        std::vector<int> next(publishers, 0);
        bool ordered = true;
        for (const auto& m : messages) {
            const int p = m.empty() ? -1 : m[0] - '0';
            if (p < 0 || p >= publishers || m.size() < 3 || m[1] != ':') {
                FAIL_CHECK("unexpected message to ", name, ": ", m);
                continue;
            }
            const int seq = std::stoi(m.substr(2));
            if (name.starts_with("churn")) {  // subscribed on and off: in order, no duplicates, gaps allowed
                ordered = ordered && seq >= next[p];
                next[p] = seq + 1;
            } else {  // steady, or a prefix then nothing
                ordered = ordered && seq == next[p];
                ++next[p];
            }
        }
        INFO(name);
        CHECK(ordered);
        if (name.starts_with("steady"))
            for (int p = 0; p < publishers; ++p) CHECK(next[p] == per_publisher);
    }
    clients.clear();
    CHECK(test::eventually([&] { return server.subscribers("room") == 0 && server.connection_count() == 0; }));
}

TEST_CASE("topics: a slow subscriber does not hold back the others; refusals are counted") {
    auto settings = test::local_settings();
    settings.max_output_buffer = 64 * 1024;
    std::atomic<int> opened{0};
    Server server(settings);
    server.on_open([&](Conn& c, const swirl::Request&) {
        c.subscribe("feed");
        ++opened;
    });
    server.on_message([](Conn&, Frame&) {});
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        // The slow one: upgrades over a raw socket with a tiny receive buffer and never reads.
        asio::ip::tcp::socket slow(co_await asio::this_coro::executor);
        slow.open(asio::ip::tcp::v4());
        slow.set_option(asio::socket_base::receive_buffer_size(4096));  // before connecting: a small window
        co_await slow.async_connect({asio::ip::make_address("127.0.0.1"), running.port()}, asio::use_awaitable);
        co_await asio::async_write(slow, asio::buffer(test::upgrade_request()), asio::use_awaitable);
        std::vector<Client> fast;
        for (int i = 0; i < 3; ++i) fast.push_back(co_await Client::connect("127.0.0.1", running.port()));
        REQUIRE(test::eventually([&] { return opened == 4; }));
        const std::string chunk(16 * 1024, 'x');
        constexpr int messages = 400;  // 6.4 MiB: far beyond what the slow one's socket and queue take
        std::size_t queued = 0;
        for (int i = 0; i < messages; ++i) {
            // Publish from the server's loop, as a handler would, so that `queued` counts every recipient.
            std::promise<std::size_t> n;
            asio::post(server.context(), [&] { n.set_value(server.publish("feed", chunk).queued); });
            queued += n.get_future().get();
            for (auto& c : fast) {
                const auto f = co_await c.receive();
                REQUIRE(f);
                CHECK(f->payload.size() == chunk.size());
            }
        }
        CHECK(queued < std::size_t(4 * messages));   // the slow one refused some
        CHECK(queued >= std::size_t(3 * messages));  // the fast ones took every one
        const auto stats = server.stats();
        CHECK(stats.total.pushes_refused == std::size_t(4 * messages) - queued);
        for (auto& c : fast) co_await c.close();
    }, 30s);
}
