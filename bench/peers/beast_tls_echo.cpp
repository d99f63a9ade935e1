// beast_tls_echo: beast_echo over TLS. Boost.Beast (Debian's Boost 1.74) websocket::stream over
// boost::asio::ssl::stream<tcp::socket> (OpenSSL), otherwise exactly beast_echo: Beast's own awaitable style, one
// coroutine per connection, TCP_NODELAY set, a 64 MiB message limit, everything else at Beast's and Asio's
// defaults. The SSL context is set up like swirl's (TLS 1.2 minimum, default cipher suites, no compression or
// renegotiation, server cipher preference, no client verification).
//   beast_tls_echo --tls-cert FILE --tls-key FILE [--host 127.0.0.1] [--port 0] [--threads 1]
//   (prints listening on wss://HOST:PORT)
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
#include <boost/asio/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

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

namespace ssl = boost::asio::ssl;

net::awaitable<void> session(tcp::socket socket, ssl::context& tls) {
    try {
        socket.set_option(tcp::no_delay(true));
        websocket::stream<ssl::stream<tcp::socket>> ws(std::move(socket), tls);
        ws.read_message_max(64u << 20);
        co_await ws.next_layer().async_handshake(ssl::stream_base::server, net::use_awaitable);
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

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::vector<std::unique_ptr<net::io_context>>& loops,
                                 ssl::context& tls) {
    std::size_t next = 0;
    while (true) {
        net::io_context& loop = *loops[next++ % loops.size()];
        try {
            tcp::socket socket = co_await acceptor.async_accept(loop, net::use_awaitable);
            net::co_spawn(loop, session(std::move(socket), tls), net::detached);
        } catch (const std::exception&) {
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    std::size_t threads = 1;
    std::string cert, key;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--host") host = argv[i + 1];
        else if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--threads") threads = static_cast<std::size_t>(std::max(1, std::atoi(argv[i + 1])));
        else if (flag == "--tls-cert") cert = argv[i + 1];
        else if (flag == "--tls-key") key = argv[i + 1];
    }
    ssl::context tls(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    SSL_CTX_set_options(tls.native_handle(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    tls.use_certificate_chain_file(cert);
    tls.use_private_key_file(key, ssl::context::pem);
    std::vector<std::unique_ptr<net::io_context>> loops;
    for (std::size_t i = 0; i < threads; ++i) loops.push_back(std::make_unique<net::io_context>(1));
    tcp::acceptor acceptor(*loops[0], tcp::endpoint(net::ip::make_address(host), port));
    acceptor.listen(4096);
    std::printf("listening on wss://%s:%u\n", host.c_str(), static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    net::co_spawn(*loops[0], accept_loop(acceptor, loops, tls), net::detached);
    std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
    for (auto& loop : loops) guards.push_back(net::make_work_guard(*loop));
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < threads; ++i) workers.emplace_back([&loop = *loops[i]] { loop.run(); });
    loops[0]->run();
    for (auto& w : workers) w.join();
}
