// raw_tls_echo: the TLS ceiling of the benchmark. A plain TLS echo (no WebSocket) on the same OpenSSL as swirl,
// one thread, driven the way a fast server drives OpenSSL:
//   - two event loops (--loop): `asio` (the default, what bench/run calls raw-tls) is one coroutine per connection on
//     standalone Asio, exactly like raw_echo, the plain-TCP ceiling: async_read_some of up to 64 KiB, decrypt,
//     re-encrypt, async_write; so swirl/raw-tls measures what swirl's WebSocket layer and its TLS glue cost, on the
//     same event loop. `epoll` (raw-tls-epoll) is a bare level-triggered epoll loop with non-blocking sockets and no
//     Asio: OpenSSL + the kernel and nothing else, the strictest ceiling;
//   - its own BIO (as swirl does) instead of a socket BIO: one recv() of up to 64 KiB feeds every record it holds to
//     OpenSSL, all the plaintext decrypted from it is re-encrypted with SSL_write, and everything OpenSSL produced
//     leaves in one send(). A socket BIO would cost a read() per record header and body and a write() per record;
//     OpenSSL's memory BIO would add a copy each way and a memset of its buffer on every BIO_reset. This BIO hands
//     OpenSSL the bytes straight from the receive buffer and appends its output to the connection's send buffer;
//   - the server context is set up like swirl's (TlsContext): TLS 1.2 minimum, OpenSSL's default cipher suites,
//     no compression or renegotiation, server cipher preference, no client verification, default session tickets.
// Echoes whatever it decrypts; on the peer's close_notify it answers with its own and closes.
//   raw_tls_echo --tls-cert FILE --tls-key FILE [--host 127.0.0.1] [--port 0] [--loop asio|epoll]
//   (prints listening on tls://HOST:PORT)
/// Asio 1.22 misses clang's C++20 coroutines (it looks for __cpp_coroutines); switch them on as swirl does.
#if defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif
#include <asio.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    std::vector<unsigned char> out;  ///< ciphertext OpenSSL wrote: [out_off, out_len) not yet sent; only grows
    std::size_t out_off = 0, out_len = 0;
    bool want_out = false;
    bool closing = false;  ///< close after the output drained
};

int ep = -1;
std::vector<unsigned char> in_buf(65536), plain(65536);
// The ciphertext received and not yet read by OpenSSL: decrypt_and_echo feeds it all before it returns (SSL_read
// runs until WANT_READ, which only happens once the BIO is empty), so one buffer serves every connection.
const unsigned char* in_ptr = in_buf.data();
std::size_t in_off = 0, in_len = 0;

int bio_read(BIO* b, char* data, std::size_t len, std::size_t* read) {
    BIO_clear_retry_flags(b);
    if (in_off == in_len) {
        BIO_set_retry_read(b);
        return 0;
    }
    const std::size_t n = std::min(len, in_len - in_off);
    std::memcpy(data, in_ptr + in_off, n);
    in_off += n;
    *read = n;
    return 1;
}

int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
    Conn& c = *static_cast<Conn*>(BIO_get_data(b));
    if (c.out.size() < c.out_len + len) c.out.resize(std::max(c.out_len + len, 2 * c.out.size()));  // rare: grows once
    std::memcpy(c.out.data() + c.out_len, data, len);
    c.out_len += len;
    *written = len;
    return 1;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

BIO_METHOD* bio_method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "raw-tls-echo");
        BIO_meth_set_read_ex(method, bio_read);
        BIO_meth_set_write_ex(method, bio_write);
        BIO_meth_set_ctrl(method, bio_ctrl);
        return method;
    }();
    return m;
}

void set_events(Conn& c, bool out) {
    c.want_out = out;
    epoll_event ev{};
    ev.events = out ? EPOLLOUT : EPOLLIN;  // while output is stuck, stop reading (backpressure)
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
}

void destroy(Conn* c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    SSL_free(c->ssl);
    ERR_clear_error();
    delete c;
}

/// Sends what OpenSSL wrote (one send() for everything); EPOLLOUT instead of EPOLLIN while the socket is full.
void flush(Conn& c) {
    while (c.out_off < c.out_len) {
        const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out_len - c.out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c.want_out) set_events(c, true);
                return;
            }
            return destroy(&c);
        }
        c.out_off += static_cast<std::size_t>(n);
    }
    c.out_off = c.out_len = 0;
    if (c.closing) return destroy(&c);
    if (c.want_out) set_events(c, false);
}

/// OpenSSL reads the received bytes [in_ptr, in_ptr + in_len); every byte of plaintext it yields is written back
/// (into c.out). False on an error (the caller closes).
bool decrypt_and_echo(Conn& c) {
    std::size_t have = 0;
    int r = 1;
    while (true) {
        std::size_t got = 0;
        r = SSL_read_ex(c.ssl, plain.data() + have, plain.size() - have, &got);
        if (r <= 0) break;
        have += got;
        if (plain.size() - have < 16384 + 256) {  // no room for another record: echo what we have
            std::size_t written = 0;
            if (SSL_write_ex(c.ssl, plain.data(), have, &written) != 1) return false;
            have = 0;
        }
    }
    const int err = SSL_get_error(c.ssl, r);
    if (have > 0) {
        std::size_t written = 0;
        if (SSL_write_ex(c.ssl, plain.data(), have, &written) != 1) return false;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {  // the peer's close_notify: answer, send, close
        SSL_shutdown(c.ssl);
        c.closing = true;
    } else if (err != SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return false;
    }
    ERR_clear_error();
    return true;
}

/// Reads (up to 64 KiB at a time) until the socket is drained, decrypting and echoing each read, then flushes.
void on_readable(Conn& c) {
    while (true) {
        const ssize_t n = recv(c.fd, in_buf.data(), in_buf.size(), 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return destroy(&c);
        }
        if (n == 0) return destroy(&c);
        in_ptr = in_buf.data();
        in_off = 0;
        in_len = static_cast<std::size_t>(n);
        if (!decrypt_and_echo(c)) return destroy(&c);
        if (c.closing || in_len < in_buf.size()) break;
    }
    flush(c);
}

Conn* new_conn(SSL_CTX* ctx, int fd) {
    auto* c = new Conn;
    c->fd = fd;
    c->ssl = SSL_new(ctx);
    BIO* bio = BIO_new(bio_method());
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_accept_state(c->ssl);
    return c;
}

// --loop asio: one coroutine per connection, like raw_echo.
asio::awaitable<void> session(asio::ip::tcp::socket socket, SSL_CTX* ctx) {
    std::error_code ec;
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    Conn* c = new_conn(ctx, -1);
    std::vector<unsigned char> buffer(65536);
    while (true) {
        const std::size_t n =
            co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        in_ptr = buffer.data();
        in_off = 0;
        in_len = n;
        if (!decrypt_and_echo(*c)) break;
        if (c->out_len > 0) {
            co_await asio::async_write(socket, asio::buffer(c->out.data(), c->out_len),
                                       asio::redirect_error(asio::use_awaitable, ec));
            c->out_len = 0;
            if (ec) break;
        }
        if (c->closing) break;
    }
    SSL_free(c->ssl);
    delete c;
}

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, SSL_CTX* ctx) {
    while (true) {
        std::error_code ec;
        auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) continue;
        asio::co_spawn(acceptor.get_executor(), session(std::move(socket), ctx), asio::detached);
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", cert, key, loop = "asio";
    unsigned short port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--host") host = argv[i + 1];
        else if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
        else if (flag == "--tls-cert") cert = argv[i + 1];
        else if (flag == "--tls-key") key = argv[i + 1];
        else if (flag == "--loop") loop = argv[i + 1];
        // --threads: one thread only
    }
    std::signal(SIGPIPE, SIG_IGN);
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        std::fprintf(stderr, "raw_tls_echo: cannot load --tls-cert/--tls-key\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);

    if (loop == "asio") {
        asio::io_context io(1);
        asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address(host), port));
        acceptor.listen(4096);
        std::printf("listening on tls://%s:%u\n", host.c_str(), static_cast<unsigned>(acceptor.local_endpoint().port()));
        std::fflush(stdout);
        asio::co_spawn(io, accept_loop(acceptor, ctx), asio::detached);
        io.run();
        return 0;
    }

    const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 4096) != 0) {
        std::perror("raw_tls_echo: bind/listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("listening on tls://%s:%u\n", host.c_str(), static_cast<unsigned>(ntohs(addr.sin_port)));
    std::fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    std::vector<epoll_event> events(512);
    while (true) {
        const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            const epoll_event& e = events[static_cast<std::size_t>(i)];
            if (e.data.ptr == nullptr) {
                while (true) {
                    const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Conn* c = new_conn(ctx, fd);
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            Conn& c = *static_cast<Conn*>(e.data.ptr);
            if (c.want_out) {
                if (e.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush(c);
            } else if (e.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(c);
            }
        }
    }
}
