#pragma once
/// wss: a `Transport` (server/transport.hpp) that speaks TLS through OpenSSL 3, driven inside our own non-blocking
/// loop. OpenSSL never touches the socket: it reads ciphertext from, and writes it to, two BIOs of ours that work
/// on memory the transport owns, and the transport moves that memory to and from the socket.
///
///     socket --recv--> the thread's read buffer --rbio--> SSL --> plaintext to the caller
///     caller plaintext --> SSL --wbio--> out (pending ciphertext) --send--> socket
///
/// The BIOs are custom BIO_METHODs over these buffers rather than BIO_s_mem, so the ciphertext is received straight
/// into the read buffer, sent straight from the pending buffer, and neither grows past its bound.
///
/// Bounds, per connection:
///   * input: the socket is read into a buffer of the thread's (`shared_read_size`, 64 KiB), shared by all the
///     connections the thread serves, and only once OpenSSL has taken everything read before (it asks for more).
///     A read asks for as much as the caller's buffer has room for, at least `read_chunk` (a whole record), so
///     OpenSSL takes it all unless the caller's buffer fills first; what it has not taken when the call returns
///     (`kept`: at most about one record, and only after a read into a nearly full buffer) is copied to the
///     connection's own buffer. OpenSSL buffers at most one record of its own. An idle connection holds no read
///     buffer of ours.
///   * `out`: `write_some` takes plaintext only while no ciphertext is pending, and at most `write_budget` bytes a
///     call, so pending ciphertext stays under `max_pending` (64 KiB of plaintext in at most five records, each
///     with at most 29 bytes of TLS 1.2 AES-GCM overhead), plus small control records produced while reading
///     (alerts, a TLS 1.3 KeyUpdate) and, once, the handshake flight.
///   Both buffers are reused; OpenSSL keeps its record buffers too: no allocation per message in steady state.
///
/// Ciphertext left pending (by `write_some`, by reading, by `shutdown_send`) is flushed by the next call that can,
/// and in the background on socket writability meanwhile, so it leaves even when the caller does not wait.
/// Single-threaded, like a socket: call a transport from one thread at a time (its connection's event loop).

#include <swirl/server/detail/edge_socket.hpp>
#include <swirl/server/tls_context.hpp>
#include <swirl/server/transport.hpp>

#include <swirl/detail/asio.hpp>

#include <asio/ssl/error.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace swirl {
namespace detail {

/// The state a connection's BIOs and pending operations point at: on the heap, so the transport can move and a
/// background flush can outlive it (it holds a reference and finds the socket closed).
struct TlsState : std::enable_shared_from_this<TlsState> {
    static constexpr std::size_t read_chunk = 17 * 1024;  ///< the least a read asks for: a record (16 KiB + 256 + 5)
    static constexpr std::size_t shared_read_size = 64 * 1024;  ///< the thread's read buffer: the most a read takes
    static constexpr std::size_t record_size = 16 * 1024;   ///< TLS's largest plaintext fragment
    static constexpr std::size_t write_budget = 64 * 1024;  ///< plaintext taken by one write_some
    static constexpr std::size_t max_pending = write_budget + 5 * 29;

    explicit TlsState(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    TlsState(const TlsState&) = delete;
    TlsState& operator=(const TlsState&) = delete;
    ~TlsState() {
        if (ssl) SSL_free(ssl);  // frees both BIOs
    }

    EdgeSocket socket;  // reads and read waits follow epoll's edges (server/detail/edge_socket.hpp)
    SSL* ssl = nullptr;
    const unsigned char* in = nullptr;  // received ciphertext not yet taken by SSL, [in_begin, in_end): in the
    std::size_t in_begin = 0;           // thread's read buffer during a call, in `kept` between calls
    std::size_t in_end = 0;
    std::vector<unsigned char> kept;  // what SSL left of a read when a call returned (`keep_input`)
    std::vector<unsigned char> out;  // ciphertext produced by SSL, not yet sent: [out_sent, out.size())
    std::size_t out_sent = 0;
    std::error_code error;  // sticky: the TLS session failed (or a background flush did)
    bool handshake_done = false;
    bool tcp_eof = false;          // the peer's FIN has been read
    bool close_notify = false;     // the peer's close_notify has been read: a clean end
    bool shutdown_sent = false;    // our close_notify is queued
    bool tcp_shutdown_due = false; // shut TCP down once `out` is flushed
    bool background_flush = false; // a wait for writability that flushes `out` is pending

    bool pending_out() const noexcept { return out_sent != out.size(); }

    /// Sends pending ciphertext without waiting. True when none is left; false with `ec` clear when the socket
    /// took only part, false with `ec` set on error.
    bool flush_out(std::error_code& ec) {
        ec.clear();
        while (pending_out()) {
            const std::size_t n = socket.write_some(asio::buffer(out.data() + out_sent, out.size() - out_sent), ec);
            if (ec) {
                if (detail::would_block(ec)) ec.clear();
                return false;
            }
            out_sent += n;
        }
        out.clear();  // keeps its capacity
        out_sent = 0;
        if (tcp_shutdown_due) {
            tcp_shutdown_due = false;
            std::error_code ignored;
            socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        }
        return true;
    }

    /// Flushes what it can now; what is left goes on socket writability, without anyone waiting for it.
    void flush_soon() {
        std::error_code ec;
        if (flush_out(ec)) return;
        if (ec) {
            if (!error) error = ec;
            return;
        }
        if (background_flush || !socket.is_open()) return;
        background_flush = true;
        socket.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](std::error_code ec) {
            self->background_flush = false;
            // Cancelled with the socket still open (`TlsTransport::cancel`): the flush goes on all the same.
            if (!ec || (ec == asio::error::operation_aborted && self->socket.is_open())) self->flush_soon();
        });
    }

    /// The calling thread's read buffer (`shared_read_size` bytes), made at its first TLS read.
    static unsigned char* thread_read_buffer() {
        static thread_local const std::unique_ptr<unsigned char[]> buffer(new unsigned char[shared_read_size]);
        return buffer.get();
    }

    /// Reads the socket once, without waiting, into the thread's read buffer: up to `room` bytes (the plaintext the
    /// caller can still take), at least `read_chunk` and at most `shared_read_size`. Only once SSL has taken all input
    /// before (it asks for more only then). False with `ec` set: would_block, eof or an error.
    bool fill_input(std::error_code& ec, std::size_t room = read_chunk) {
        if (in_begin != in_end) {  // SSL asked for more while input was left: cannot happen
            ec = asio::error::no_buffer_space;
            return false;
        }
        unsigned char* buffer = thread_read_buffer();
        in = buffer;
        in_begin = in_end = 0;
        const std::size_t size = std::clamp(room, read_chunk, shared_read_size);
        const std::size_t n = socket.read_some(asio::buffer(buffer, size), ec);
        if (ec == asio::error::eof) tcp_eof = true;
        if (ec) return false;
        in_end = n;
        return true;
    }

    /// Before a call returns (other connections of the thread read into its buffer next): the input SSL has not
    /// taken moves to `kept`, the connection's own.
    void keep_input() {
        if (in_begin == in_end) {
            in = nullptr;
            in_begin = in_end = 0;
            return;
        }
        if (in == kept.data()) return;
        kept.assign(in + in_begin, in + in_end);
        in = kept.data();
        in_end -= in_begin;
        in_begin = 0;
    }

    /// Records a TLS failure (`ssl_error` from SSL_get_error) and returns it; the session is unusable after.
    std::error_code fail(int ssl_error) {
        const unsigned long e = ERR_get_error();
        ERR_clear_error();
        if (e != 0) error = std::error_code(static_cast<int>(e), asio::error::get_ssl_category());
        else if (ssl_error == SSL_ERROR_SYSCALL) error = asio::error::connection_aborted;
        else error = asio::ssl::error::unexpected_result;
        return error;
    }

    /// True when a read would find something without the socket: decrypted bytes in SSL, or received ciphertext
    /// SSL has not taken yet, or an end or error to report. (Not SSL_has_pending: it is also true for the start of
    /// a record SSL holds, and waiting on that would spin.)
    bool read_ready() const {
        return error || close_notify || tcp_eof || in_begin != in_end || (ssl && SSL_pending(ssl) > 0);
    }

    // The BIOs: the read BIO hands SSL what is in `in`, the write BIO appends to `out`.
    static int bio_read(BIO* b, char* data, std::size_t size, std::size_t* done) {
        auto* s = static_cast<TlsState*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        const std::size_t n = std::min(size, s->in_end - s->in_begin);
        if (n == 0) {
            BIO_set_retry_read(b);  // the end of input is ours to report, not SSL's
            *done = 0;
            return 0;
        }
        std::memcpy(data, s->in + s->in_begin, n);
        s->in_begin += n;
        *done = n;
        return 1;
    }
    static int bio_write(BIO* b, const char* data, std::size_t size, std::size_t* done) {
        auto* s = static_cast<TlsState*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        try {
            if (s->out.capacity() < max_pending) s->out.reserve(max_pending);
            const auto* bytes = reinterpret_cast<const unsigned char*>(data);  // same type: one memmove, not a loop
            s->out.insert(s->out.end(), bytes, bytes + size);
        } catch (...) {
            *done = 0;
            return 0;
        }
        *done = size;
        return 1;
    }
    static long bio_ctrl(BIO* b, int cmd, long, void*) {
        auto* s = static_cast<TlsState*>(BIO_get_data(b));
        switch (cmd) {
        case BIO_CTRL_FLUSH: return 1;
        case BIO_CTRL_PENDING: return static_cast<long>(s->in_end - s->in_begin);
        case BIO_CTRL_WPENDING: return static_cast<long>(s->out.size() - s->out_sent);
        default: return 0;
        }
    }
    static BIO_METHOD* bio_method() {
        static BIO_METHOD* const method = [] {  // lives as long as the process
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "swirl-tls-memory");
            if (!m || !BIO_meth_set_read_ex(m, bio_read) || !BIO_meth_set_write_ex(m, bio_write) ||
                !BIO_meth_set_ctrl(m, bio_ctrl))
                throw std::runtime_error("swirl: BIO_meth_new failed");
            return m;
        }();
        return method;
    }
    BIO* new_bio() {
        BIO* b = BIO_new(bio_method());
        if (!b) throw std::runtime_error("swirl: BIO_new failed");
        BIO_set_data(b, this);
        BIO_set_init(b, 1);
        return b;
    }
};

} // namespace detail

/// TLS over a TCP socket, server side. Construct from an accepted socket, `co_await handshake()`, then use it as
/// any `Transport`.
class TlsTransport {
public:
    using executor_type = asio::any_io_executor;
    static constexpr std::size_t read_chunk = detail::TlsState::read_chunk;
    static constexpr std::size_t write_budget = detail::TlsState::write_budget;
    static constexpr std::size_t max_pending = detail::TlsState::max_pending;

    /// Takes an accepted socket (switched to non-blocking mode, Nagle off) and the SSL_CTX current in `context`.
    TlsTransport(asio::ip::tcp::socket socket, const TlsContext& context) : TlsTransport(std::move(socket), context.native()) {}

    TlsTransport(asio::ip::tcp::socket socket, const std::shared_ptr<SSL_CTX>& ctx)
        : s_(std::make_shared<detail::TlsState>(std::move(socket))) {
        std::error_code ec;
        s_->socket.set_option(asio::ip::tcp::no_delay(true), ec);
        s_->socket.non_blocking(true, ec);
        ERR_clear_error();
        s_->ssl = SSL_new(ctx.get());  // holds its own reference to the SSL_CTX: a reload() does not affect it
        if (!s_->ssl) throw std::runtime_error("swirl: SSL_new: " + detail::openssl_errors());
        BIO* rbio = s_->new_bio();
        BIO* wbio = nullptr;
        try {
            wbio = s_->new_bio();
        } catch (...) {
            BIO_free(rbio);
            throw;
        }
        SSL_set_bio(s_->ssl, rbio, wbio);
        SSL_set_accept_state(s_->ssl);
    }

    TlsTransport(TlsTransport&&) noexcept = default;
    TlsTransport& operator=(TlsTransport&& other) noexcept {
        if (this != &other) {
            close_state();
            s_ = std::move(other.s_);
        }
        return *this;
    }
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    /// Closes the socket (ciphertext still pending is dropped: keep the transport until `shutdown_send`'s
    /// close_notify is out, as a lingering session does); a background flush still pending lets go of the state
    /// when it completes (aborted).
    ~TlsTransport() { close_state(); }

    /// The server side of the TLS handshake: runs it to the end, sending each flight whole before waiting for the
    /// peer. An error code when it fails (the alert, if any, is sent best-effort) or the peer goes away; bound its
    /// time from outside (closing the transport aborts it with `operation_aborted`).
    asio::awaitable<std::error_code> handshake() {
        const std::shared_ptr<detail::TlsState> s = s_;
        std::error_code ec;
        while (true) {
            detail::clear_openssl_errors();
            const int r = SSL_do_handshake(s->ssl);
            const int status = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
            s->keep_input();  // what follows the client's last flight (its first request, say), before any wait
            if (status != SSL_ERROR_NONE && status != SSL_ERROR_WANT_READ) {
                ec = s->fail(status);
                s->flush_soon();  // the alert
                co_return ec;
            }
            while (!s->flush_out(ec)) {  // the whole flight before waiting for the answer
                if (ec) co_return s->error = ec;
                co_await s->socket.async_wait(asio::socket_base::wait_write, asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return ec;
            }
            if (status == SSL_ERROR_NONE) {
                s->handshake_done = true;
                co_return std::error_code{};
            }
            while (!s->fill_input(ec)) {
                if (!detail::would_block(ec)) co_return ec;
                co_await s->socket.async_wait_readable(asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return ec;
            }
        }
    }

    executor_type get_executor() noexcept { return s_->socket.get_executor(); }

    /// Decrypted bytes available now, as many as fit: the socket is read again while the buffer has room for a
    /// whole record and the socket may hold more, up to as much ciphertext as the buffer holds (so that a peer
    /// sending tiny records cannot keep one call reading far more than that). `would_block` when none are; `eof`
    /// at the peer's close_notify, or at TCP EOF without one (`closed_cleanly()` tells them apart); a TLS error
    /// otherwise (asio's ssl category, OpenSSL's reason).
    std::size_t read_some(asio::mutable_buffer buffer, std::error_code& ec) {
        detail::TlsState& s = *s_;
        ec.clear();
        if (const std::error_code refused = read_refused(); refused) {
            ec = refused;
            return 0;
        }
        auto* data = static_cast<unsigned char*>(buffer.data());
        std::size_t n = 0;
        std::size_t received = 0;  // ciphertext read from the socket in this call
        while (n < buffer.size()) {
            detail::clear_openssl_errors();
            std::size_t got = 0;
            const int r = SSL_read_ex(s.ssl, data + n, buffer.size() - n, &got);
            if (r == 1) {
                n += got;
                continue;
            }
            const int status = SSL_get_error(s.ssl, r);
            if (status == SSL_ERROR_WANT_READ) {
                if (s.tcp_eof) {
                    if (n == 0) ec = asio::error::eof;  // else reported by the next read
                    break;
                }
                const std::size_t room = buffer.size() - n;
                if (n != 0 && (room < read_chunk || received >= buffer.size() || !s.socket.may_have_input())) break;
                std::error_code read_ec;
                if (!s.fill_input(read_ec, room)) {  // would_block, eof (reported once `n` is taken) or an error
                    if (n == 0) ec = read_ec;
                    else if (!detail::would_block(read_ec) && read_ec != asio::error::eof) s.error = read_ec;
                    break;
                }
                received += s.in_end;
                continue;
            }
            if (status == SSL_ERROR_ZERO_RETURN) {
                ERR_clear_error();
                s.close_notify = true;
                if (n == 0) ec = asio::error::eof;
                break;
            }
            const std::error_code failed = s.fail(status);
            if (n == 0) ec = failed;  // else reported by the next read
            break;
        }
        s.keep_input();
        if (s.pending_out()) s.flush_soon();  // what SSL wrote while reading (alerts, KeyUpdate, tickets)
        return n;
    }

    /// False when `read_some` is known to find nothing: SSL holds no plaintext, no ciphertext waits, and the socket
    /// was drained with no input seen since.
    bool may_have_input() const noexcept { return s_->read_ready() || s_->socket.may_have_input(); }

    /// Parks the reader on the socket without a wait operation, as `TcpTransport::park` does: `callback(host,
    /// owner, ec)` runs once input may have arrived. False when it cannot park now, among other reasons (see
    /// `EdgeSocket::park`) while a read would find something without the socket (decrypted bytes, ciphertext not yet
    /// taken, an end or error to report): then `async_wait(wait_read, …)`, which completes at once.
    template <class Owner>
    bool park(detail::ParkedReader::Callback callback, void* host, std::shared_ptr<Owner>& owner) {
        return !s_->read_ready() && s_->socket.park(callback, host, owner);
    }
    /// Lets go of a parked reader without calling it (a loop torn down with connections parked).
    void drop_parked() noexcept { s_->socket.drop_parked(); }

    /// For an idle connection (its heartbeat found it silent, and all is written): gives back what a busy one keeps
    /// for its next message, when none of it holds anything: OpenSSL's record buffers (`SSL_free_buffers`, about
    /// 17 KiB each for reading and writing; the next read or write makes its own again) and the buffers of pending
    /// and kept ciphertext. Once per silent interval, not per message (each would then allocate).
    void release_buffers() noexcept {
        detail::TlsState& s = *s_;
        if (!s.handshake_done || s.error || s.pending_out() || s.in_begin != s.in_end || SSL_has_pending(s.ssl) != 0)
            return;
        SSL_free_buffers(s.ssl);  // refuses while a record is partly read or written
        std::vector<unsigned char>().swap(s.out);
        std::vector<unsigned char>().swap(s.kept);
        s.out_sent = 0;
    }

    /// Encrypts up to `write_budget` bytes of plaintext from `buffers` (small buffers gathered into whole records)
    /// and sends what the socket takes; returns the plaintext bytes taken. Takes none (0, no error) while
    /// ciphertext from before is still pending: wait with `async_wait(wait_write)`.
    std::size_t write_some(std::span<const asio::const_buffer> buffers, std::error_code& ec) {
        detail::TlsState& s = *s_;
        ec.clear();
        if (const std::error_code refused = write_refused(); refused) {
            ec = refused;
            return 0;
        }
        if (!s.flush_out(ec)) {
            if (ec) s.error = ec;
            return 0;
        }
        constexpr std::size_t record = detail::TlsState::record_size;
        static thread_local std::array<unsigned char, record> gather;
        std::size_t used = 0;  // bytes in `gather`
        std::size_t taken = 0;
        std::size_t budget = write_budget;
        const auto encrypt = [&](const unsigned char* p, std::size_t size) {
            detail::clear_openssl_errors();
            std::size_t written = 0;
            const int r = SSL_write_ex(s.ssl, p, size, &written);
            if (r == 1 && written == size) {
                taken += size;
                return true;
            }
            ec = s.fail(SSL_get_error(s.ssl, r));
            return false;
        };
        for (const asio::const_buffer& b : buffers) {
            if (budget == 0) break;
            const auto* p = static_cast<const unsigned char*>(b.data());
            std::size_t size = std::min(b.size(), budget);
            budget -= size;
            while (size != 0) {
                if (used + size <= record) {  // gathered: records stay whole
                    std::memcpy(gather.data() + used, p, size);
                    used += size;
                    break;
                }
                if (used != 0) {  // fill up the gathered record and send it
                    const std::size_t k = record - used;
                    std::memcpy(gather.data() + used, p, k);
                    p += k;
                    size -= k;
                    used = 0;
                    if (!encrypt(gather.data(), record)) return taken;
                    continue;
                }
                const std::size_t whole = size / record * record;  // straight from the caller's buffer
                if (!encrypt(p, whole)) return taken;
                p += whole;
                size -= whole;
            }
        }
        if (used != 0 && !encrypt(gather.data(), used)) return taken;
        s.flush_soon();
        if (s.error) ec = s.error;
        return taken;
    }

    /// `wait_write`: until the transport takes plaintext again (pending ciphertext flushed as the socket allows).
    /// `wait_read`: at once (posted) when decrypted data, unread ciphertext or an end is there; else until the
    /// socket is readable. `close()` aborts a pending wait with `operation_aborted`.
    template <class Token>
    auto async_wait(asio::socket_base::wait_type type, Token&& token) {
        return asio::async_compose<Token, void(std::error_code)>(WaitOp{s_, type}, token, s_->socket);
    }

    /// Queues close_notify and sends it, then shuts TCP down for sending. What the socket does not take now (with
    /// any earlier pending ciphertext) is sent in the background on writability, and TCP is shut down after it;
    /// a failed send shuts TCP down at once.
    void shutdown_send(std::error_code& ec) {
        detail::TlsState& s = *s_;
        ec.clear();
        if (!s.socket.is_open()) {
            ec = asio::error::bad_descriptor;
            return;
        }
        if (s.shutdown_sent) return;
        s.shutdown_sent = true;
        if (s.handshake_done && !s.error) {
            ERR_clear_error();
            SSL_shutdown(s.ssl);  // queues close_notify
            ERR_clear_error();
        }
        std::error_code flush_ec;
        if (s.flush_out(flush_ec) || flush_ec) {
            s.socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
            return;
        }
        s.tcp_shutdown_due = true;
        s.flush_soon();
    }

    void close(std::error_code& ec) { s_->socket.close(ec); }
    /// Ends every pending wait with `operation_aborted`, a parked reader too (the socket stays open); ciphertext
    /// being flushed in the background goes on being flushed.
    void cancel(std::error_code& ec) { s_->socket.cancel(ec); }
    asio::ip::tcp::endpoint remote_endpoint(std::error_code& ec) const { return s_->socket.remote_endpoint(ec); }

    /// After the handshake: the server name the client asked for (SNI), empty when none.
    std::string_view sni() const {
        const char* name = SSL_get_servername(s_->ssl, TLSEXT_NAMETYPE_host_name);
        return name ? std::string_view(name) : std::string_view();
    }
    /// After the handshake: the client certificate's subject in RFC 2253 form, empty when none.
    std::string peer_subject() const {
        X509* cert = SSL_get0_peer_certificate(s_->ssl);
        if (!cert) return {};
        BIO* bio = BIO_new(BIO_s_mem());
        if (!bio) return {};
        std::string subject;
        if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
            char* p = nullptr;
            const long n = BIO_get_mem_data(bio, &p);
            if (n > 0) subject.assign(p, static_cast<std::size_t>(n));
        }
        BIO_free(bio);
        return subject;
    }
    /// After the handshake: the ALPN protocol selected ("http/1.1"), empty when the client offered none we speak.
    std::string_view alpn() const {
        const unsigned char* p = nullptr;
        unsigned int n = 0;
        SSL_get0_alpn_selected(s_->ssl, &p, &n);
        return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view();
    }
    /// After the handshake: the protocol version, e.g. "TLSv1.3".
    std::string_view version() const { return SSL_get_version(s_->ssl); }
    /// After `read_some` reported `eof`: whether the peer sent close_notify (false: the TCP connection just ended).
    bool closed_cleanly() const noexcept { return s_->close_notify; }
    /// Ciphertext produced and not yet sent (at most about `max_pending`).
    std::size_t pending_ciphertext() const noexcept { return s_->out.size() - s_->out_sent; }
    SSL* native_handle() const noexcept { return s_->ssl; }

private:
    void close_state() noexcept {
        if (!s_) return;
        std::error_code ignored;
        s_->socket.close(ignored);
    }

    std::error_code read_refused() const {
        if (s_->error) return s_->error;
        if (!s_->handshake_done) return asio::error::not_connected;
        if (s_->close_notify) return asio::error::eof;
        return {};
    }
    std::error_code write_refused() const {
        if (s_->error) return s_->error;
        if (!s_->handshake_done) return asio::error::not_connected;
        if (s_->shutdown_sent) return asio::error::shut_down;
        return {};
    }

    struct WaitOp {
        std::shared_ptr<detail::TlsState> s;
        asio::socket_base::wait_type type;
        enum { start, waiting, posted } state = start;

        template <class Self>
        void operator()(Self& self, std::error_code ec = {}) {
            switch (state) {
            case start:
                if (type == asio::socket_base::wait_read ? s->read_ready() : (!s->pending_out() || s->error)) {
                    state = posted;
                    return asio::post(std::move(self));  // never complete inside the initiating call
                }
                state = waiting;
                if (type == asio::socket_base::wait_read) return s->socket.async_wait_readable(std::move(self));
                return s->socket.async_wait(type, std::move(self));
            case posted:
                return self.complete(s->socket.is_open() ? std::error_code() : asio::error::operation_aborted);
            case waiting:
                if (!ec && type == asio::socket_base::wait_write && !s->flush_out(ec) && !ec)
                    return s->socket.async_wait(type, std::move(self));
                if (ec && ec != asio::error::operation_aborted && !s->error) s->error = ec;
                return self.complete(ec);
            }
        }
    };

    std::shared_ptr<detail::TlsState> s_;
};

static_assert(Transport<TlsTransport>);

} // namespace swirl
