// raw_echo: the ceiling of the benchmark. A plain TCP echo on the same event loop as swirl (standalone Asio, one
// coroutine per connection, TCP_NODELAY): the same bytes as a WebSocket echo, without the protocol.
//   raw_echo [--host 127.0.0.1] [--port 0] [--threads 1]
/// Asio 1.22 misses clang's C++20 coroutines (it looks for __cpp_coroutines); switch them on as swirl does.
#if defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif
#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using asio::ip::tcp;

namespace {

/// Reads what is there (up to 64 KiB, like swirl's largest read buffer) and writes it back, until EOF or error.
asio::awaitable<void> session(tcp::socket socket) {
    std::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    std::vector<char> buffer(65536);
    while (true) {
        const std::size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        co_await asio::async_write(socket, asio::buffer(buffer.data(), n), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
    }
}

/// One acceptor; accepted sockets are handed round-robin to the event loops (a connection stays on one).
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::vector<std::unique_ptr<asio::io_context>>& loops) {
    std::size_t next = 0;
    while (true) {
        asio::io_context& loop = *loops[next++ % loops.size()];
        std::error_code ec;
        tcp::socket socket = co_await acceptor.async_accept(loop, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) continue;
        asio::co_spawn(loop, session(std::move(socket)), asio::detached);
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    std::size_t threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--host") host = argv[i + 1];
        else if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--threads") threads = static_cast<std::size_t>(std::max(1, std::atoi(argv[i + 1])));
    }
    std::vector<std::unique_ptr<asio::io_context>> loops;
    for (std::size_t i = 0; i < threads; ++i) loops.push_back(std::make_unique<asio::io_context>(1));
    tcp::acceptor acceptor(*loops[0], tcp::endpoint(asio::ip::make_address(host), port));
    acceptor.listen(4096);
    std::printf("listening on tcp://%s:%u\n", host.c_str(), static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    asio::co_spawn(*loops[0], accept_loop(acceptor, loops), asio::detached);
    std::vector<std::thread> workers;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (auto& loop : loops) guards.push_back(asio::make_work_guard(*loop));
    for (std::size_t i = 1; i < threads; ++i) workers.emplace_back([&loop = *loops[i]] { loop.run(); });
    loops[0]->run();
    for (auto& w : workers) w.join();
}
