// beast_echo: Boost.Beast (Debian's Boost 1.74) as a peer. Beast's own awaitable style, one coroutine per
// connection, TCP_NODELAY set (its examples leave Nagle on, which stalls larger echoes), a 64 MiB message limit,
// everything else at Beast's defaults. --deflate 1: permessage-deflate (`websocket::permessage_deflate`, server_enable)
// with the window (server_max_window_bits and client_max_window_bits), compLevel and memLevel given by --deflate-window,
// --deflate-level and --deflate-mem-level (defaults 15, 6 and 8 rather than Beast's compLevel 8 / memLevel 4; bench/run
// passes all three); context takeover as the client offers it. Boost 1.74's Beast has no size threshold: it compresses
// every message (--deflate-threshold is accepted for the harness's common flags, and only as 0).
//   beast_echo [--host 127.0.0.1] [--port 0] [--threads 1]
//              [--deflate 1 [--deflate-window 15] [--deflate-level 6] [--deflate-mem-level 8] [--deflate-threshold 0]]
#include <utility>  // Boost 1.74's awaitable headers use std::exchange without including it (g++ 12)

/// Boost 1.74 misses clang's C++20 coroutines (it looks for __cpp_coroutines); switch them on.
#if defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#define BOOST_ASIO_HAS_STD_COROUTINE 1
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;

namespace {

bool deflate = false;
int deflate_window = 15, deflate_level = 6, deflate_mem_level = 8;

net::awaitable<void> session(tcp::socket socket) {
    try {
        socket.set_option(tcp::no_delay(true));
        websocket::stream<tcp::socket> ws(std::move(socket));
        ws.read_message_max(64u << 20);
        if (deflate) {
            websocket::permessage_deflate pmd;
            pmd.server_enable = true;
            pmd.server_max_window_bits = deflate_window;
            pmd.client_max_window_bits = deflate_window;
            pmd.compLevel = deflate_level;
            pmd.memLevel = deflate_mem_level;
            ws.set_option(pmd);
        }
        co_await ws.async_accept(net::use_awaitable);
        boost::beast::flat_buffer buffer;
        while (true) {
            co_await ws.async_read(buffer, net::use_awaitable);
            ws.text(ws.got_text());
            co_await ws.async_write(buffer.data(), net::use_awaitable);
            buffer.consume(buffer.size());
        }
    } catch (const std::exception&) {
        // closed by the peer, or an I/O error: the session ends
    }
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::vector<std::unique_ptr<net::io_context>>& loops) {
    std::size_t next = 0;
    while (true) {
        net::io_context& loop = *loops[next++ % loops.size()];
        try {
            tcp::socket socket = co_await acceptor.async_accept(loop, net::use_awaitable);
            net::co_spawn(loop, session(std::move(socket)), net::detached);
        } catch (const std::exception&) {
        }
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
        else if (flag == "--deflate") deflate = std::atoi(argv[i + 1]) != 0;
        else if (flag == "--deflate-window") deflate_window = std::atoi(argv[i + 1]);
        else if (flag == "--deflate-level") deflate_level = std::atoi(argv[i + 1]);
        else if (flag == "--deflate-mem-level") deflate_mem_level = std::atoi(argv[i + 1]);
        else if (flag == "--deflate-threshold" && std::atoi(argv[i + 1]) != 0) {
            std::fprintf(stderr, "beast_echo: --deflate-threshold: Boost 1.74's Beast compresses every message (0 only)\n");
            return 2;
        }
    }
    std::vector<std::unique_ptr<net::io_context>> loops;
    for (std::size_t i = 0; i < threads; ++i) loops.push_back(std::make_unique<net::io_context>(1));
    tcp::acceptor acceptor(*loops[0], tcp::endpoint(net::ip::make_address(host), port));
    acceptor.listen(4096);
    std::printf("listening on ws://%s:%u\n", host.c_str(), static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    net::co_spawn(*loops[0], accept_loop(acceptor, loops), net::detached);
    std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
    for (auto& loop : loops) guards.push_back(net::make_work_guard(*loop));
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < threads; ++i) workers.emplace_back([&loop = *loops[i]] { loop.run(); });
    loops[0]->run();
    for (auto& w : workers) w.join();
}
