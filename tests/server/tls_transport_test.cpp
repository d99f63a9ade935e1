// The TLS transport on 127.0.0.1 against OpenSSL clients (asio::ssl::stream), driven through read_some, write_some
// and async_wait as the session and the connection drive a transport. Certificates are made at test time (see
// tests/tls_support.hpp) by the openssl program in a temporary directory removed at exit.

// Asio takes its recycled blocks from aligned_alloc unless told not to; the allocation test counts them through
// the replaced operator new (counting_new.hpp).
#define ASIO_DISABLE_STD_ALIGNED_ALLOC 1

#include <swirl/server/tls_context.hpp>
#include <swirl/server/tls_transport.hpp>

#include "counting_new.hpp"
#include "doctest.hpp"
#include "tls_support.hpp"

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ssl.hpp>

#include <openssl/crypto.h>

#include <execinfo.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using swirl::TlsContext;
using swirl::TlsSettings;
using swirl::TlsTransport;
using tcp = asio::ip::tcp;
using SslStream = asio::ssl::stream<tcp::socket>;
namespace fs = std::filesystem;

namespace {

using test::certs;

TlsSettings server_settings(const std::string& cert = "server") {
    TlsSettings s;
    s.cert_file = certs().path(cert + ".crt");
    s.key_file = certs().path(cert + ".key");
    return s;
}

struct ClientOptions {
    std::string sni = "localhost";
    bool alpn = true;
    std::string cert;  // "client", "intruder" or none
    int max_version = 0;
    int min_version = 0;
    bool legacy = false;  // security level 0, so a TLS 1.1 hello can be sent at all
};

std::shared_ptr<asio::ssl::context> client_context(const ClientOptions& o) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->load_verify_file(certs().path("ca.crt"));
    ctx->set_verify_mode(asio::ssl::verify_peer);
    if (o.alpn) {
        static constexpr unsigned char protos[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        SSL_CTX_set_alpn_protos(ctx->native_handle(), protos, sizeof protos);
    }
    if (!o.cert.empty()) {
        ctx->use_certificate_chain_file(certs().path(o.cert + ".crt"));
        ctx->use_private_key_file(certs().path(o.cert + ".key"), asio::ssl::context::pem);
    }
    if (o.legacy) SSL_CTX_set_cipher_list(ctx->native_handle(), "DEFAULT:@SECLEVEL=0");
    if (o.min_version) SSL_CTX_set_min_proto_version(ctx->native_handle(), o.min_version);
    if (o.max_version) SSL_CTX_set_max_proto_version(ctx->native_handle(), o.max_version);
    return ctx;
}

/// A client stream, connected over TCP (not yet TLS) to 127.0.0.1:port.
struct TlsClient {
    std::shared_ptr<asio::ssl::context> ctx;
    SslStream stream;
    TlsClient(asio::any_io_executor ex, const ClientOptions& o) : ctx(client_context(o)), stream(ex, *ctx) {
        if (!o.sni.empty()) SSL_set_tlsext_host_name(stream.native_handle(), o.sni.c_str());
    }
    asio::awaitable<void> connect(std::uint16_t port, std::function<void(tcp::socket&)> before = {}) {
        stream.next_layer().open(tcp::v4());
        if (before) before(stream.next_layer());
        co_await stream.next_layer().async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    }
    asio::awaitable<std::error_code> handshake() {
        std::error_code ec;
        co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
        co_return ec;
    }
    /// The subject CN of the server's certificate.
    std::string server_cn() {
        X509* cert = SSL_get0_peer_certificate(stream.native_handle());
        if (!cert) return {};
        char cn[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
        return cn;
    }
};

/// Accepts on 127.0.0.1 (ephemeral port).
struct Listener {
    tcp::acceptor acceptor;
    explicit Listener(asio::io_context& ctx) : acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0}) {}
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    asio::awaitable<TlsTransport> accept(const TlsContext& tls, std::function<void(tcp::socket&)> before = {}) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        if (before) before(socket);
        co_return TlsTransport(std::move(socket), tls);
    }
};

/// Runs server and client coroutines on one io_context until both finish, failing the test after `limit`.
void run_pair(asio::io_context& ctx, asio::awaitable<void> server, asio::awaitable<void> client,
              std::chrono::milliseconds limit = 20s) {
    auto s = asio::co_spawn(ctx, std::move(server), asio::use_future);
    auto c = asio::co_spawn(ctx, std::move(client), asio::use_future);
    ctx.run_for(limit);
    const bool server_done = s.wait_for(0s) == std::future_status::ready;
    const bool client_done = c.wait_for(0s) == std::future_status::ready;
    REQUIRE_MESSAGE(server_done, "server side timed out");
    REQUIRE_MESSAGE(client_done, "client side timed out");
    s.get();
    c.get();
}

std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        x = x * 1664525u + 1013904223u;
        s[i] = static_cast<char>(x >> 24);
    }
    return s;
}

/// Echoes `total` bytes as the session reads (read_some, async_wait(wait_read)) and writes (write_some,
/// async_wait(wait_write)); a small read buffer exercises plaintext left buffered in SSL.
asio::awaitable<void> echo(TlsTransport& t, std::size_t total, std::size_t read_size = 64 * 1024) {
    std::vector<unsigned char> buffer(read_size);
    std::size_t done = 0;
    while (done < total) {
        std::error_code ec;
        const std::size_t n = co_await swirl::detail::read_some_waiting(t, asio::buffer(buffer), ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        const std::size_t written = co_await swirl::detail::write_all(t, asio::buffer(buffer.data(), n), ec);
        REQUIRE_MESSAGE(!ec, ec.message());
        REQUIRE(written == n);
        done += n;
    }
}

/// The client sends each message and reads it back whole, writing and reading at once (a message may be larger
/// than all the buffers between the two).
asio::awaitable<void> send_and_check(SslStream& stream, const std::string& message) {
    using namespace asio::experimental::awaitable_operators;
    std::string back(message.size(), '\0');
    co_await (asio::async_write(stream, asio::buffer(message), asio::use_awaitable) &&
              asio::async_read(stream, asio::buffer(back), asio::use_awaitable));
    CHECK(back == message);
}

std::string message_of(const std::error_code& ec) { return ec.message(); }

/// Completes once `flag` is set by the other side of the test (a coroutine on the same io_context), looking every
/// `step`.
asio::awaitable<void> until_set(const bool& flag, std::chrono::milliseconds step = 5ms) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!flag) {
        timer.expires_after(step);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

} // namespace

TEST_CASE("tls: handshake, then echo 1 byte to 16 MiB both ways; ALPN, SNI, version; close_notify is eof") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    const std::vector<std::size_t> sizes = {1, 2, 100, 16383, 16384, 16385, 65535, 65536, 65537, 1u << 20, 16u << 20};
    std::size_t total = 0;
    for (const std::size_t s : sizes) total += s;

    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        const std::error_code ec = co_await t.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(t.alpn() == "http/1.1");
        CHECK(t.sni() == "localhost");
        CHECK(t.version() == "TLSv1.3");
        CHECK(t.peer_subject().empty());
        co_await echo(t, total);
        // the client's close_notify
        std::error_code read_ec;
        std::array<unsigned char, 16> rest;
        const std::size_t n = co_await swirl::detail::read_some_waiting(t, asio::buffer(rest), read_ec);
        CHECK(n == 0);
        CHECK(read_ec == asio::error::eof);
        CHECK(t.closed_cleanly());
        std::error_code sec;
        t.shutdown_send(sec);  // answers with ours
        CHECK(!sec);
        CHECK(t.pending_ciphertext() == 0);
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port());
        const std::error_code ec = co_await c.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        const unsigned char* proto = nullptr;
        unsigned int len = 0;
        SSL_get0_alpn_selected(c.stream.native_handle(), &proto, &len);
        CHECK(std::string(reinterpret_cast<const char*>(proto), len) == "http/1.1");
        for (std::size_t i = 0; i < sizes.size(); ++i)
            co_await send_and_check(c.stream, pattern(sizes[i], static_cast<unsigned>(i)));
        std::error_code sec;
        co_await c.stream.async_shutdown(asio::redirect_error(asio::use_awaitable, sec));  // close_notify both ways
        CHECK_MESSAGE(!sec, sec.message());
    };
    run_pair(ctx, server(), client(), 60s);
}

TEST_CASE("tls: TLS 1.2 client, no SNI, no ALPN; a 1-byte read buffer leaves plaintext in SSL") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    const std::string message = pattern(40000, 7);
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        const std::error_code ec = co_await t.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        CHECK(t.version() == "TLSv1.2");
        CHECK(t.sni().empty());
        CHECK(t.alpn().empty());
        co_await echo(t, message.size(), 1);
        std::error_code rec;
        std::array<unsigned char, 16> rest;
        co_await swirl::detail::read_some_waiting(t, asio::buffer(rest), rec);
        CHECK(rec == asio::error::eof);
        CHECK(!t.closed_cleanly());  // TCP closed without close_notify
    };
    auto client = [&]() -> asio::awaitable<void> {
        ClientOptions o;
        o.sni.clear();
        o.alpn = false;
        o.max_version = TLS1_2_VERSION;
        TlsClient c(ctx.get_executor(), o);
        co_await c.connect(listener.port());
        const std::error_code ec = co_await c.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        co_await send_and_check(c.stream, message);
        c.stream.next_layer().close();
    };
    run_pair(ctx, server(), client());
}

TEST_CASE("tls: one read takes the records waiting while its buffer has room; a small buffer's leftovers come next") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    const std::string first = pattern(60000, 11);  // within any initial receive window: all of it waits in the socket
    const std::string second = pattern(60000, 12);
    bool sent = false;
    bool taken = false;
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        const std::error_code ec = co_await t.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        co_await until_set(sent);
        asio::steady_timer timer(ctx, 50ms);  // the last bytes cross the loopback
        co_await timer.async_wait(asio::use_awaitable);
        std::vector<unsigned char> buffer(512 * 1024);
        std::string got;
        std::error_code rec;
        std::size_t n = co_await swirl::detail::read_some_waiting(t, asio::buffer(buffer), rec);
        REQUIRE_MESSAGE(!rec, rec.message());
        // Several records in one call, read from the socket in one or more reads (before: one 17 KiB read, one
        // record, per call).
        CHECK(n > 2 * swirl::detail::TlsState::record_size);
        got.append(reinterpret_cast<const char*>(buffer.data()), n);
        while (got.size() < first.size()) {
            n = co_await swirl::detail::read_some_waiting(t, asio::buffer(buffer), rec);
            REQUIRE_MESSAGE(!rec, rec.message());
            got.append(reinterpret_cast<const char*>(buffer.data()), n);
        }
        CHECK(got == first);
        taken = true;
        // A buffer with room for less than the socket read brings: what SSL has not taken stays with the
        // connection, and comes next, in order.
        co_await echo(t, second.size(), 20000);
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port());
        const std::error_code ec = co_await c.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        co_await asio::async_write(c.stream, asio::buffer(first), asio::use_awaitable);
        sent = true;
        co_await until_set(taken);
        co_await send_and_check(c.stream, second);
    };
    run_pair(ctx, server(), client());
}

TEST_CASE("tls: async_wait(wait_read) completes at once, posted, while SSL holds decrypted bytes") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        REQUIRE(!(co_await t.handshake()));
        std::array<unsigned char, 1> one;
        std::error_code ec;
        REQUIRE(co_await swirl::detail::read_some_waiting(t, asio::buffer(one), ec) == 1);
        CHECK(one[0] == 'a');
        // 99 bytes wait in SSL; nothing more comes over TCP.
        bool called = false;
        std::error_code wait_ec = asio::error::timed_out;
        t.async_wait(asio::socket_base::wait_read, [&](std::error_code e) {
            called = true;
            wait_ec = e;
        });
        CHECK(!called);  // never inline
        asio::steady_timer timer(co_await asio::this_coro::executor, 200ms);
        co_await timer.async_wait(asio::use_awaitable);
        CHECK(called);
        CHECK(!wait_ec);
        std::array<unsigned char, 200> more;
        const std::size_t n = t.read_some(asio::buffer(more), ec);
        CHECK(!ec);
        CHECK(n == 99);
        CHECK(t.read_some(asio::buffer(more), ec) == 0);
        CHECK(ec == asio::error::would_block);

        // Nothing buffered: a read wait is pending; close() aborts it, for a callback and for a coroutine.
        bool aborted = false;
        t.async_wait(asio::socket_base::wait_read, [&](std::error_code e) { aborted = e == asio::error::operation_aborted; });
        asio::post(co_await asio::this_coro::executor, [&] {
            std::error_code ignored;
            t.close(ignored);
        });
        std::error_code co_ec;
        co_await t.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, co_ec));
        CHECK(co_ec == asio::error::operation_aborted);
        timer.expires_after(50ms);
        co_await timer.async_wait(asio::use_awaitable);
        CHECK(aborted);
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port());
        REQUIRE(!(co_await c.handshake()));
        const std::string hundred = "a" + std::string(99, 'b');
        co_await asio::async_write(c.stream, asio::buffer(hundred), asio::use_awaitable);
        std::array<char, 16> buf;
        std::error_code ec;
        co_await c.stream.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        CHECK(ec);  // the server closed
    };
    run_pair(ctx, server(), client());
}

TEST_CASE("tls: partial writes through a small send buffer, client not reading for a while, arrive whole and in order") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    constexpr std::size_t messages = 300;
    const auto size_of = [](std::size_t i) { return (i * 7919) % 40000 + 1; };
    std::size_t total = 0;
    for (std::size_t i = 0; i < messages; ++i) total += 4 + size_of(i);

    // The connection's write path: write_some of a header and a payload; on a partial write,
    // async_wait(wait_write) with a callback, then write_some of the rest, and so on.
    struct Writer {
        TlsTransport* t = nullptr;
        std::function<std::size_t(std::size_t)> size_of;
        std::size_t index = 0;
        std::size_t count = 0;
        std::array<unsigned char, 4> header{};
        std::string payload;
        std::size_t written = 0;
        std::size_t partial = 0;
        std::size_t max_pending = 0;
        bool done = false;
        std::error_code error;

        void start_message() {
            payload = pattern(size_of(index), static_cast<unsigned>(index));
            const auto n = static_cast<std::uint32_t>(payload.size());
            header = {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
                      static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
            written = 0;
        }
        void step() {
            while (true) {
                std::array<asio::const_buffer, 2> all{asio::buffer(header), asio::buffer(payload)};
                std::array<asio::const_buffer, 2> rest;
                std::size_t pieces = 0;
                std::size_t skip = written;
                for (auto b : all) {
                    if (skip >= b.size()) {
                        skip -= b.size();
                        continue;
                    }
                    rest[pieces++] = b + skip;
                    skip = 0;
                }
                const std::size_t want = 4 + payload.size() - written;
                std::error_code ec;
                const std::size_t n = t->write_some(std::span<const asio::const_buffer>(rest.data(), pieces), ec);
                max_pending = std::max(max_pending, t->pending_ciphertext());
                if (ec) {
                    error = ec;
                    return;
                }
                if (n < want) ++partial;
                written += n;
                if (written == 4 + payload.size()) {
                    if (++index == count) {
                        done = true;
                        return;
                    }
                    start_message();
                    continue;
                }
                t->async_wait(asio::socket_base::wait_write, [this](std::error_code e) {
                    if (e) error = e;
                    else step();
                });
                return;
            }
        }
    };

    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls, [](tcp::socket& s) {
            s.set_option(asio::socket_base::send_buffer_size(4096));
        });
        REQUIRE(!(co_await t.handshake()));
        Writer w;
        w.t = &t;
        w.size_of = size_of;
        w.count = messages;
        w.start_message();
        w.step();
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!w.done && !w.error) {
            timer.expires_after(5ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
        CHECK_MESSAGE(!w.error, w.error.message());
        CHECK(w.partial > 0);
        CHECK(w.max_pending <= TlsTransport::max_pending + 1024);
        MESSAGE("partial writes: " << w.partial << ", most ciphertext pending: " << w.max_pending);
        // Everything accepted; what is still pending leaves in the background. Then close_notify.
        std::error_code ec;
        t.shutdown_send(ec);
        CHECK(!ec);
        std::array<unsigned char, 64> rest;
        co_await swirl::detail::read_some_waiting(t, asio::buffer(rest), ec);
        CHECK((ec == asio::error::eof || ec == asio::error::connection_reset));
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port(), [](tcp::socket& s) { s.set_option(asio::socket_base::receive_buffer_size(4096)); });
        REQUIRE(!(co_await c.handshake()));
        asio::steady_timer timer(co_await asio::this_coro::executor, 300ms);
        co_await timer.async_wait(asio::use_awaitable);  // not reading: the server's writes back up
        std::size_t received = 0;
        for (std::size_t i = 0; i < messages; ++i) {
            std::array<unsigned char, 4> header;
            co_await asio::async_read(c.stream, asio::buffer(header), asio::use_awaitable);
            const std::size_t n = std::size_t{header[0]} << 24 | std::size_t{header[1]} << 16 |
                                  std::size_t{header[2]} << 8 | header[3];
            REQUIRE(n == size_of(i));
            std::string payload(n, '\0');
            co_await asio::async_read(c.stream, asio::buffer(payload), asio::use_awaitable);
            REQUIRE(payload == pattern(n, static_cast<unsigned>(i)));
            received += 4 + n;
        }
        CHECK(received == total);
        std::array<char, 16> buf;
        std::error_code ec;
        co_await c.stream.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        CHECK(ec == asio::error::eof);  // the server's close_notify, after all the data
        c.stream.next_layer().close();
    };
    run_pair(ctx, server(), client(), 30s);
}

namespace {

/// A handshake the server must refuse: returns the server's error (the client's outcome is only required to be
/// a failure, by its handshake or its first read).
std::error_code refused_handshake(TlsContext& tls, const ClientOptions& options) {
    asio::io_context ctx;
    Listener listener(ctx);
    std::error_code server_ec;
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        server_ec = co_await t.handshake();
        std::error_code ignored;
        t.close(ignored);
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), options);
        co_await c.connect(listener.port());
        std::error_code ec = co_await c.handshake();
        if (!ec) {
            std::array<char, 16> buf;
            co_await c.stream.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        }
        CHECK(ec);
    };
    run_pair(ctx, server(), client(), 10s);
    return server_ec;
}

TlsSettings client_auth(swirl::VerifyClient verify) {
    TlsSettings s = server_settings();
    s.ca_file = certs().path("ca.crt");
    s.verify_client = verify;
    return s;
}

} // namespace

TEST_CASE("tls: client certificates") {
    SUBCASE("required and present: the subject is seen") {
        TlsContext tls(client_auth(swirl::VerifyClient::required));
        asio::io_context ctx;
        Listener listener(ctx);
        auto server = [&]() -> asio::awaitable<void> {
            TlsTransport t = co_await listener.accept(tls);
            const std::error_code ec = co_await t.handshake();
            REQUIRE_MESSAGE(!ec, ec.message());
            const std::string subject = t.peer_subject();
            CHECK(subject == "CN=alice,O=Swirl Tests");
            co_await echo(t, 5);
        };
        auto client = [&]() -> asio::awaitable<void> {
            ClientOptions o;
            o.cert = "client";
            TlsClient c(ctx.get_executor(), o);
            co_await c.connect(listener.port());
            REQUIRE(!(co_await c.handshake()));
            co_await send_and_check(c.stream, "hello");
        };
        run_pair(ctx, server(), client());
    }
    SUBCASE("required and missing: the handshake fails") {
        TlsContext tls(client_auth(swirl::VerifyClient::required));
        const std::error_code ec = refused_handshake(tls, {});
        CHECK(ec);
        MESSAGE("server: " << ec.message());
    }
    SUBCASE("signed by another CA: the handshake fails") {
        TlsContext tls(client_auth(swirl::VerifyClient::required));
        ClientOptions o;
        o.cert = "intruder";
        const std::error_code ec = refused_handshake(tls, o);
        CHECK(ec);
        CHECK(message_of(ec).find("certificate verify failed") != std::string::npos);
        MESSAGE("server: " << ec.message());
    }
    SUBCASE("optional and missing: accepted, no subject") {
        TlsContext tls(client_auth(swirl::VerifyClient::optional));
        asio::io_context ctx;
        Listener listener(ctx);
        auto server = [&]() -> asio::awaitable<void> {
            TlsTransport t = co_await listener.accept(tls);
            REQUIRE(!(co_await t.handshake()));
            CHECK(t.peer_subject().empty());
            co_await echo(t, 2);
        };
        auto client = [&]() -> asio::awaitable<void> {
            TlsClient c(ctx.get_executor(), {});
            co_await c.connect(listener.port());
            REQUIRE(!(co_await c.handshake()));
            co_await send_and_check(c.stream, "ok");
        };
        run_pair(ctx, server(), client());
    }
}

TEST_CASE("tls: a TLS 1.1-only client is refused") {
    TlsContext tls(server_settings());
    ClientOptions o;
    o.legacy = true;
    o.min_version = TLS1_VERSION;
    o.max_version = TLS1_1_VERSION;
    const std::error_code ec = refused_handshake(tls, o);
    CHECK(ec);
    MESSAGE("server: " << ec.message());
}

TEST_CASE("tls: plain HTTP to the TLS port fails the handshake promptly") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    std::error_code server_ec;
    const auto start = std::chrono::steady_clock::now();
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        server_ec = co_await t.handshake();
        std::error_code ignored;
        t.close(ignored);
    };
    auto client = [&]() -> asio::awaitable<void> {
        tcp::socket s(ctx);
        co_await s.async_connect({asio::ip::make_address("127.0.0.1"), listener.port()}, asio::use_awaitable);
        const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n";
        co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
        std::array<char, 256> buf;
        std::error_code ec;
        while (!ec) co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    };
    run_pair(ctx, server(), client(), 5s);
    CHECK(server_ec);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    MESSAGE("server: " << server_ec.message());
}

TEST_CASE("tls: missing, unreadable or mismatched files throw, naming the file") {
    const auto throws_naming = [](const TlsSettings& s, const std::string& file) {
        try {
            TlsContext tls(s);
            FAIL("no exception");
        } catch (const std::exception& e) {
            const std::string what = e.what();
            CHECK_MESSAGE(what.find(file) != std::string::npos, what);
        }
    };
    {
        TlsSettings s = server_settings();
        s.cert_file = certs().path("missing.crt");
        throws_naming(s, "missing.crt");
    }
    {
        TlsSettings s = server_settings();
        s.key_file = certs().path("missing.key");
        throws_naming(s, "missing.key");
    }
    {
        TlsSettings s = server_settings();
        s.key_file = certs().path("client.key");  // not the certificate's key
        throws_naming(s, "client.key");
    }
    {
        TlsSettings s = server_settings();
        s.cert_file = certs().path("openssl.cnf");  // readable, not a certificate
        throws_naming(s, "openssl.cnf");
    }
    {
        TlsSettings s = client_auth(swirl::VerifyClient::required);
        s.ca_file = certs().path("missing-ca.crt");
        throws_naming(s, "missing-ca.crt");
    }
    if (::geteuid() != 0) {  // root reads anything
        const std::string locked = certs().path("locked.key");
        fs::copy_file(certs().path("server.key"), locked, fs::copy_options::overwrite_existing);
        fs::permissions(locked, fs::perms::none);
        TlsSettings s = server_settings();
        s.key_file = locked;
        throws_naming(s, "locked.key");
        fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_write);
    }
}

TEST_CASE("tls: reload() serves the new certificate to the next connection; an open one keeps working") {
    const std::string cert = certs().path("live.crt");
    const std::string key = certs().path("live.key");
    const auto install = [&](const std::string& name) {
        fs::copy_file(certs().path(name + ".crt"), cert, fs::copy_options::overwrite_existing);
        fs::copy_file(certs().path(name + ".key"), key, fs::copy_options::overwrite_existing);
    };
    install("server");
    TlsSettings settings;
    settings.cert_file = cert;
    settings.key_file = key;
    TlsContext tls(settings);

    asio::io_context ctx;
    Listener listener(ctx);
    bool first_open = false;
    bool reloaded = false;
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport first = co_await listener.accept(tls);
        REQUIRE(!(co_await first.handshake()));
        first_open = true;
        co_await echo(first, 3);  // "one"
        install("server2");
        std::thread([&] { tls.reload(); }).join();  // from another thread
        reloaded = true;
        TlsTransport second = co_await listener.accept(tls);
        REQUIRE(!(co_await second.handshake()));
        co_await echo(second, 3);  // "two"
        co_await echo(first, 5);   // "three": the old connection, on the old SSL_CTX
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient a(ctx.get_executor(), {});
        co_await a.connect(listener.port());
        REQUIRE(!(co_await a.handshake()));
        CHECK(a.server_cn() == "localhost");
        co_await send_and_check(a.stream, "one");
        co_await until_set(reloaded, 2ms);
        TlsClient b(ctx.get_executor(), {});
        co_await b.connect(listener.port());
        REQUIRE(!(co_await b.handshake()));
        CHECK(b.server_cn() == "reloaded.localhost");
        co_await send_and_check(b.stream, "two");
        co_await send_and_check(a.stream, "three");
    };
    run_pair(ctx, server(), client());
    CHECK(first_open);
    // A reload that fails keeps the SSL_CTX in use.
    fs::remove(key);
    CHECK_THROWS(tls.reload());
    CHECK(tls.native() != nullptr);
}

TEST_CASE("tls: a TLS 1.3 KeyUpdate from the client is answered (ciphertext produced while reading is sent)") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        REQUIRE(!(co_await t.handshake()));
        co_await echo(t, 3 * 1000);
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port());
        REQUIRE(!(co_await c.handshake()));
        for (int round = 0; round < 3; ++round) {
            // Asks the server to update its keys too: it must send a KeyUpdate of its own while reading, before
            // the echo, or this client cannot decrypt the echo.
            REQUIRE(SSL_key_update(c.stream.native_handle(), SSL_KEY_UPDATE_REQUESTED) == 1);
            co_await send_and_check(c.stream, pattern(1000, static_cast<unsigned>(round)));
        }
    };
    run_pair(ctx, server(), client());
}

TEST_CASE("tls: reload() on one thread while connections are created on another") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    std::atomic<bool> stop{false};
    std::atomic<int> reloads{0};
    std::thread reloader([&] {
        while (!stop) {
            tls.reload();
            ++reloads;
        }
    });
    int created = 0;
    int failed = 0;
    const auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until || reloads < 3) {
        TlsTransport t(tcp::socket(ctx), tls);
        if (!t.native_handle() || SSL_get_SSL_CTX(t.native_handle()) == nullptr) ++failed;
        ++created;
    }
    stop = true;
    reloader.join();
    MESSAGE(created << " transports created during " << reloads.load() << " reloads");
    CHECK(created > 0);
    CHECK(failed == 0);
}

// ---- No allocation per message: operator new is replaced for this executable (counting only on a thread that
// asks for it), and OpenSSL's allocator too when it can still be set (before OpenSSL's first allocation).
// SWIRL_TRACE_ALLOCATIONS=1 prints a backtrace of the first counted ones.

namespace {
std::atomic<std::size_t> new_calls{0};
std::atomic<std::size_t> crypto_calls{0};
std::atomic<std::size_t> crypto_frees{0};
thread_local bool counting = false;

void* crypto_malloc(std::size_t n, const char* file, int line) {
    if (counting && crypto_calls.fetch_add(1, std::memory_order_relaxed) < 8 && std::getenv("SWIRL_TRACE_ALLOCATIONS")) {
        counting = false;
        std::fprintf(stderr, "crypto malloc %zu at %s:%d\n", n, file ? file : "?", line);
        void* frames[20];
        backtrace_symbols_fd(frames, backtrace(frames, 20), 2);
        counting = true;
    }
    return std::malloc(n);
}
void* crypto_realloc(void* p, std::size_t n, const char*, int) {
    if (counting) crypto_calls.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}
void crypto_free(void* p, const char*, int) {
    if (counting && p != nullptr) crypto_frees.fetch_add(1, std::memory_order_relaxed);
    std::free(p);
}
const bool crypto_counted = CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free) == 1;
} // namespace

void* test::counted_allocate(std::size_t size, std::size_t alignment) {
    if (counting && new_calls.fetch_add(1, std::memory_order_relaxed) < 4 && std::getenv("SWIRL_TRACE_ALLOCATIONS")) {
        counting = false;
        std::fprintf(stderr, "operator new %zu\n", size);
        void* frames[20];
        backtrace_symbols_fd(frames, backtrace(frames, 20), 2);
        counting = true;
    }
    return plain_allocate(size, alignment);
}

TEST_CASE("tls: a steady-state echo allocates nothing on the server's thread") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    const std::uint16_t port = listener.port();
    constexpr std::size_t size = 100;
    constexpr int warmup = 300;
    constexpr int measured = 3000;
    std::atomic<bool> client_ok{false};
    std::string client_error;
    std::thread client([&] {  // its own thread: nothing it does is counted
        asio::io_context cctx;
        auto done = asio::co_spawn(cctx, [&]() -> asio::awaitable<void> {
            TlsClient c(cctx.get_executor(), {});
            co_await c.connect(port);
            if (const auto ec = co_await c.handshake()) throw std::system_error(ec);
            const std::string message = pattern(size, 1);
            std::string back(size, '\0');
            for (int i = 0; i < warmup + measured; ++i) {
                co_await asio::async_write(c.stream, asio::buffer(message), asio::use_awaitable);
                co_await asio::async_read(c.stream, asio::buffer(back), asio::use_awaitable);
                if (back != message) throw std::runtime_error("echo differs");
            }
            std::error_code ec;
            co_await c.stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
        }, asio::use_future);
        cctx.run_for(30s);
        try {
            if (done.wait_for(0s) != std::future_status::ready) throw std::runtime_error("client timed out");
            done.get();
            client_ok = true;
        } catch (const std::exception& e) {
            client_error = e.what();
        }
    });
    std::size_t news = 0;
    std::size_t cryptos = 0;
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        REQUIRE(!(co_await t.handshake()));
        std::vector<unsigned char> buffer(64 * 1024);
        const auto echo_bytes = [&](std::size_t total) -> asio::awaitable<void> {
            std::size_t done = 0;
            while (done < total) {
                std::error_code ec;
                const std::size_t n = co_await swirl::detail::read_some_waiting(t, asio::buffer(buffer), ec);
                if (ec) throw std::system_error(ec);
                co_await swirl::detail::write_all(t, asio::buffer(buffer.data(), n), ec);
                if (ec) throw std::system_error(ec);
                done += n;
            }
        };
        co_await echo_bytes(size * warmup);
        new_calls = 0;
        crypto_calls = 0;
        counting = true;
        co_await echo_bytes(size * measured);
        counting = false;
        news = new_calls;
        cryptos = crypto_calls;
        std::error_code ec;
        std::array<unsigned char, 16> rest;
        co_await swirl::detail::read_some_waiting(t, asio::buffer(rest), ec);
        t.shutdown_send(ec);
    };
    auto s = asio::co_spawn(ctx, server(), asio::use_future);
    ctx.run_for(40s);
    client.join();
    counting = false;
    REQUIRE_MESSAGE(client_ok, client_error);
    REQUIRE(s.wait_for(0s) == std::future_status::ready);
    s.get();
    const std::string note = crypto_counted ? "" : " (OpenSSL's allocator could not be replaced: not counted)";
    MESSAGE(measured << " echoed messages: " << news << " operator new, " << cryptos << " OpenSSL allocations" << note);
    // Ours: none per message (Asio's recycling cache may miss once or twice over the run).
    CHECK(news <= 2);
    // OpenSSL 3.0's record layer itself mallocs ~40 bytes for its WPACKET bookkeeping per record written (2) and
    // read (2): bounded per record, not ours to remove. Anything beyond that would be a regression here.
    CHECK(cryptos <= 4 * static_cast<std::size_t>(measured));
}

TEST_CASE("tls: release_buffers frees OpenSSL's record buffers only while they hold nothing; the next message makes them again") {
    TlsContext tls(server_settings());
    asio::io_context ctx;
    Listener listener(ctx);
    const std::string first = pattern(100, 21);
    const std::string second = pattern(40000, 22);
    bool ready = false;  // the server is done with `first`: the client may send `second`
    std::size_t frees_idle = 0;
    std::size_t frees_again = 0;
    std::size_t frees_holding = 0;
    const auto released = [](TlsTransport& t) {  // OpenSSL's frees during one release_buffers
        crypto_frees = 0;
        counting = true;
        t.release_buffers();
        counting = false;
        return crypto_frees.load();
    };
    auto server = [&]() -> asio::awaitable<void> {
        TlsTransport t = co_await listener.accept(tls);
        const std::error_code ec = co_await t.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        co_await echo(t, first.size());
        frees_idle = released(t);   // the read and write record buffers
        frees_again = released(t);  // none left
        ready = true;
        // One byte of `second` read: the rest of its record waits decrypted in SSL, which keeps its buffers.
        std::array<unsigned char, 1> one{};
        std::error_code rec;
        const std::size_t n = co_await swirl::detail::read_some_waiting(t, asio::buffer(one), rec);
        REQUIRE_MESSAGE(!rec, rec.message());
        REQUIRE(n == 1);
        frees_holding = released(t);
        co_await swirl::detail::write_all(t, asio::buffer(one), rec);
        REQUIRE_MESSAGE(!rec, rec.message());
        co_await echo(t, second.size() - 1);  // read and written through buffers made again
    };
    auto client = [&]() -> asio::awaitable<void> {
        TlsClient c(ctx.get_executor(), {});
        co_await c.connect(listener.port());
        const std::error_code ec = co_await c.handshake();
        REQUIRE_MESSAGE(!ec, ec.message());
        co_await send_and_check(c.stream, first);
        co_await until_set(ready);
        co_await send_and_check(c.stream, second);
    };
    run_pair(ctx, server(), client());
    if (!crypto_counted) {
        MESSAGE("OpenSSL's allocator could not be replaced: frees not counted");
        return;
    }
    CHECK(frees_idle >= 2);
    CHECK(frees_again == 0);
    CHECK(frees_holding == 0);
}
