// Task offload (server/offload.hpp): results, exceptions, a full queue, shutdown with queued tasks, and other
// connections served while tasks block.
#include "test_support.hpp"

#include <atomic>
#include <future>
#include <thread>

using namespace std::chrono_literals;
using swirl::Client;
using swirl::Frame;
using swirl::Opcode;

namespace {

using Server = swirl::Server<>;
using Conn = Server::Connection;

/// Blocks offloaded tasks until opened.
struct Gate {
    std::promise<void> promise;
    std::shared_future<void> future = promise.get_future().share();
    void wait() const { future.wait_for(10s); }
    void open() { promise.set_value(); }
};

} // namespace

TEST_CASE("offload: a task's result, and its exception, reach the awaiting handler on its event loop") {
    Server server(test::local_settings());
    server.on_message([&server](Conn& c, Frame& f) -> asio::awaitable<void> {
        const std::string text = f.payload;
        const auto loop_thread = std::this_thread::get_id();
        if (text == "add") {
            const auto worker = co_await server.offload([] { return std::this_thread::get_id(); });
            const int sum = co_await server.offload([] { return 40 + 2; });
            c.send(fmt::format("{} {} {}", sum, worker != loop_thread, std::this_thread::get_id() == loop_thread));
        } else if (text == "throw") {
            try {
                co_await server.offload([]() -> int { throw std::runtime_error("boom"); });
                c.send("no exception");
            } catch (const std::runtime_error& e) {
                c.send(fmt::format("caught {}", e.what()));
            }
        } else if (text == "void") {
            std::atomic<bool> ran{false};
            co_await server.offload([&ran] { ran = true; });
            c.send(ran ? "ran" : "did not run");
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await Client::connect("127.0.0.1", running.port());
        co_await client.send("add");
        CHECK(co_await test::next_payload(client) == "42 true true");
        co_await client.send("throw");
        CHECK(co_await test::next_payload(client) == "caught boom");
        co_await client.send("void");
        CHECK(co_await test::next_payload(client) == "ran");
        co_await client.close();
    });
    const auto tasks = server.stats().tasks;
    CHECK(tasks.completed == 3);
    CHECK(tasks.failed == 1);
    CHECK(tasks.queued == 0);
    CHECK(tasks.running == 0);
}

TEST_CASE("offload: a full queue fails the call at once with a clear error") {
    auto settings = test::local_settings();
    settings.task_threads = 1;
    settings.task_queue_size = 1;
    Gate gate;
    std::atomic<int> started{0};
    Server server(settings);
    server.on_message([&](Conn& c, Frame& f) -> asio::awaitable<void> {
        const std::string id = f.payload;
        try {
            co_await server.offload([&] {
                ++started;
                gate.wait();
            });
            c.send("done " + id);
        } catch (const swirl::OffloadError& e) {
            c.send(fmt::format("refused {} {}", id, e.code() == std::errc::resource_unavailable_try_again));
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto a = co_await Client::connect("127.0.0.1", running.port());
        auto b = co_await Client::connect("127.0.0.1", running.port());
        auto c = co_await Client::connect("127.0.0.1", running.port());
        co_await a.send("a");
        REQUIRE(test::eventually([&] { return started == 1; }));  // running: the queue is empty again
        co_await b.send("b");
        REQUIRE(test::eventually([&] { return server.stats().tasks.queued == 1; }));
        co_await c.send("c");
        CHECK(co_await test::next_payload(c) == "refused c true");
        gate.open();
        CHECK(co_await test::next_payload(a) == "done a");
        CHECK(co_await test::next_payload(b) == "done b");
        CHECK(server.stats().tasks.refused == 1);
        for (auto* client : {&a, &b, &c}) co_await client->close();
    });
}

TEST_CASE("offload: stop() cancels queued tasks, waits for the running one, and returns") {
    auto settings = test::local_settings();
    settings.task_threads = 1;
    settings.close_timeout = 1s;
    Gate gate;
    test::Events events;
    std::atomic<int> started{0};
    Server server(settings);
    server.on_message([&](Conn&, Frame& f) -> asio::awaitable<void> {
        const std::string id = f.payload;
        try {
            co_await server.offload([&] {
                ++started;
                gate.wait();
            });
            events.add("done " + id);
        } catch (const swirl::OffloadError& e) {
            events.add(fmt::format("cancelled {} {}", id, e.code() == std::errc::operation_canceled));
        }
    });
    server.start();
    test::run([&]() -> asio::awaitable<void> {
        auto a = co_await Client::connect("127.0.0.1", server.local_endpoint().port());
        auto b = co_await Client::connect("127.0.0.1", server.local_endpoint().port());
        co_await a.send("a");
        REQUIRE(test::eventually([&] { return started == 1; }));
        co_await b.send("b");
        REQUIRE(test::eventually([&] { return server.stats().tasks.queued == 1; }));
        server.stop();
        CHECK(events.wait_for("cancelled b true"));
        CHECK_FALSE(events.contains("done a"));  // still running: the loop waits for it
        gate.open();
        CHECK(events.wait_for("done a"));
    });
    const auto start = std::chrono::steady_clock::now();
    server.wait();
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(server.stats().tasks.cancelled == 1);
}

TEST_CASE("offload: a task blocking 200 ms in one connection does not delay echoes on others") {
    Server server(test::local_settings());  // one event loop: a blocking handler would stall everyone
    server.on_message([&server](Conn& c, Frame& f) -> asio::awaitable<void> {
        if (f.payload == "block") {
            co_await server.offload([] { std::this_thread::sleep_for(200ms); });
            c.send("unblocked");
        } else {
            c.send(f.payload, f.opcode);
        }
    });
    test::RunningServer running(server);
    test::run([&]() -> asio::awaitable<void> {
        auto blocker = co_await Client::connect("127.0.0.1", running.port());
        auto other = co_await Client::connect("127.0.0.1", running.port());
        const auto start = std::chrono::steady_clock::now();
        co_await blocker.send("block");
        auto slowest = std::chrono::steady_clock::duration::zero();
        int echoes = 0;
        while (std::chrono::steady_clock::now() - start < 150ms) {  // all within the task's 200 ms
            const auto sent = std::chrono::steady_clock::now();
            co_await other.send("hi");
            CHECK(co_await test::next_payload(other) == "hi");
            slowest = std::max(slowest, std::chrono::steady_clock::now() - sent);
            ++echoes;
        }
        CHECK(echoes > 10);
        CHECK(slowest < 100ms);
        CHECK(co_await test::next_payload(blocker) == "unblocked");
        CHECK(std::chrono::steady_clock::now() - start >= 200ms);
        co_await blocker.close();
        co_await other.close();
    });
}

TEST_CASE("offload: a task that outlives stop()'s wait is joined by the destructor, its completion dropped safely") {
    auto settings = test::local_settings();
    settings.close_timeout = 100ms;
    std::atomic<bool> started{false}, finished{false};
    {
        Server server(settings);
        server.on_message([&](Conn& c, Frame&) -> asio::awaitable<void> {
            co_await server.offload([&] {
                started = true;
                std::this_thread::sleep_for(1500ms);
                finished = true;
            });
            c.send("done");  // never: the event loop is stopped by then
        });
        server.start();
        test::run([&]() -> asio::awaitable<void> {
            auto client = co_await Client::connect("127.0.0.1", server.local_endpoint().port());
            co_await client.send("go");
            REQUIRE(test::eventually([&] { return started.load(); }));
        });
        const auto start = std::chrono::steady_clock::now();
        server.stop();
        server.wait();  // bounded by close_timeout: the task still runs
        CHECK(std::chrono::steady_clock::now() - start < 1200ms);
        CHECK_FALSE(finished);
    }  // the destructor waits for the task
    CHECK(finished);
}
