#pragma once
// Shared by the Asio-level tests: a server on an ephemeral port, running client coroutines to completion with a
// deadline, raw-socket HTTP exchanges, and polling for conditions set by server threads.

#include "doctest.hpp"

#include <swirl.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace test {

using namespace std::chrono_literals;

inline swirl::Settings local_settings() {
    swirl::Settings s;
    s.host = "127.0.0.1";
    s.port = 0;
    s.log_level = swirl::LogLevel::off;
    s.close_timeout = 2s;
    return s;
}

/// Runs the coroutine returned by `f()` on a private io_context, failing the test if it takes over `limit`.
template <class F>
auto run(F&& f, std::chrono::milliseconds limit = 10s) {
    asio::io_context ctx;
    auto future = asio::co_spawn(ctx, f(), asio::use_future);
    ctx.run_for(limit);
    REQUIRE_MESSAGE(future.wait_for(0s) == std::future_status::ready, "client coroutine timed out");
    return future.get();
}

/// Polls `condition` until true or `limit` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

/// Thread-safe log of what server handlers saw.
class Events {
public:
    void add(std::string e) {
        std::lock_guard lock(mutex_);
        events_.push_back(std::move(e));
    }
    std::vector<std::string> all() const {
        std::lock_guard lock(mutex_);
        return events_;
    }
    bool contains(const std::string& e) const {
        std::lock_guard lock(mutex_);
        return std::find(events_.begin(), events_.end(), e) != events_.end();
    }
    bool wait_for(const std::string& e, std::chrono::milliseconds limit = 5s) const {
        return eventually([&] { return contains(e); }, limit);
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> events_;
};

/// A started server that is stopped and joined at scope exit.
template <class UserData = std::monostate>
struct RunningServer {
    swirl::Server<UserData>& server;
    explicit RunningServer(swirl::Server<UserData>& s) : server(s) { server.start(); }
    ~RunningServer() {
        server.stop();
        server.wait();
    }
    std::uint16_t port() const { return server.local_endpoint().port(); }
};

inline asio::awaitable<asio::ip::tcp::socket> connect_raw(std::uint16_t port) {
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    co_return socket;
}

/// Reads until the peer closes; returns everything read.
inline asio::awaitable<std::string> read_to_eof(asio::ip::tcp::socket& socket) {
    std::string all;
    char buf[4096];
    while (true) {
        std::error_code ec;
        const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        all.append(buf, n);
        if (ec) co_return all;
    }
}

/// Sends `request` on a fresh connection and returns the whole response (until the server closes).
inline std::string http_exchange(std::uint16_t port, std::string request) {
    return run([&]() -> asio::awaitable<std::string> {
        auto socket = co_await connect_raw(port);
        co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
        co_return co_await read_to_eof(socket);
    });
}

inline std::string upgrade_request(std::string extra_headers = {}, std::string target = "/",
                                   std::string version = "13", std::string key = "dGhlIHNhbXBsZSBub25jZQ==") {
    return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: " + version + "\r\n" + extra_headers + "\r\n";
}

/// A masked client frame.
inline std::string client_frame(std::string_view payload, swirl::Opcode opcode = swirl::Opcode::text, bool fin = true) {
    return swirl::pack(payload, opcode, fin, swirl::MaskKey{0x11, 0x22, 0x33, 0x44});
}

/// The payload of the next frame; fails the test when the connection ends instead.
inline asio::awaitable<std::string> next_payload(swirl::Client& client) {
    auto frame = co_await client.receive();
    REQUIRE(frame);
    co_return std::move(frame->payload);
}

/// The next frame that is not a ping (`receive()` answers each ping and returns it).
inline asio::awaitable<std::optional<swirl::Frame>> receive_skipping_pings(swirl::Client& client) {
    auto frame = co_await client.receive();
    while (frame && frame->opcode == swirl::Opcode::ping) frame = co_await client.receive();
    co_return frame;
}

/// Receives (and answers) the server's heartbeat pings until `done()`; anything else fails the test.
template <class Done>
asio::awaitable<void> receive_pings_until(swirl::Client& client, Done done) {
    while (!done()) {
        const auto frame = co_await client.receive();
        REQUIRE(frame);
        REQUIRE(frame->opcode == swirl::Opcode::ping);
    }
}

/// Three rounds of a message echoed (round 2 binary), then silence but for the pongs until the server has counted
/// one more hibernation (`hibernations()`): a coroutine handler's connection hibernates after each message and a
/// message wakes it. Rounds 2 and 3 reach a hibernated connection.
template <class Count>
asio::awaitable<void> echo_and_hibernate(swirl::Client& client, Count hibernations) {
    for (int round = 1; round <= 3; ++round) {
        const std::string text = "round " + std::to_string(round);
        co_await client.send(text, round == 2 ? swirl::Opcode::binary : swirl::Opcode::text);
        const auto echoed = co_await receive_skipping_pings(client);
        REQUIRE(echoed);
        CHECK(echoed->payload == text);
        // Silent from here: the next heartbeat ends the session coroutine (and goes out just after that). The pongs
        // that receive() sends back are answered in place: the connection stays parked.
        const auto before = hibernations();
        co_await receive_pings_until(client, [&] { return hibernations() != before; });
    }
}

/// A fresh connection still gets its message echoed: the server survived whatever the test did before.
inline asio::awaitable<void> check_still_serving(std::uint16_t port) {
    auto client = co_await swirl::Client::connect("127.0.0.1", port);
    co_await client.send("still here");
    const auto echoed = co_await next_payload(client);
    CHECK(echoed == "still here");
    co_await client.close();
}

/// Echo handler used by most tests.
template <class C>
asio::awaitable<void> echo(C& connection, swirl::Frame& frame) {
    connection.send(frame.payload, frame.opcode);
    co_return;
}

} // namespace test
