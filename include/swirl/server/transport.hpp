#pragma once
/// The seam under every byte a connection reads or writes. A session never waits inside a read or a write: it reads
/// what is there, writes what fits, and otherwise waits for readiness. That is what lets one read serve many
/// messages and one gather write carry many replies, and it is the shape a TLS engine driven through memory BIOs,
/// or an io_uring ring, can take too.
///
///     read_some(buffer, ec)     bytes available now; `would_block` when there are none (never waits)
///     write_some(buffers, ec)   a gather write of what the peer's window takes now (never waits; 0 and no error
///                               when nothing fits)
///     async_wait(type, token)   until readable (`wait_read`) or writable (`wait_write`)
///     may_have_input()          optional: false when `read_some` is known to return `would_block` (the last read
///                               drained the transport and nothing arrived since), so a reader waits at once
///     park(callback, host, c)   optional, with drop_parked(): waits for input without a wait operation
///                               (`ParkingTransport`); false when it cannot now, and then `async_wait(wait_read, …)`
///     shutdown_send(ec)         half-close: no more bytes from us
///     close(ec)                 ends the connection; a pending wait completes with `operation_aborted`
///     remote_endpoint(ec)       the peer's address
///     get_executor()            the event loop the transport belongs to

#include <swirl/server/detail/edge_socket.hpp>

#include <swirl/detail/asio.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <utility>

namespace swirl {

template <class T>
concept Transport = requires(T& t, const T& ct, asio::mutable_buffer in, std::span<const asio::const_buffer> out,
                             std::error_code& ec) {
    typename T::executor_type;
    { t.get_executor() } -> std::convertible_to<typename T::executor_type>;
    { t.read_some(in, ec) } -> std::same_as<std::size_t>;
    { t.write_some(out, ec) } -> std::same_as<std::size_t>;
    t.async_wait(asio::socket_base::wait_read, asio::use_awaitable);
    t.async_wait(asio::socket_base::wait_write, [](std::error_code) {});
    t.shutdown_send(ec);
    t.close(ec);
    { ct.remote_endpoint(ec) } -> std::same_as<asio::ip::tcp::endpoint>;
};

/// A `Transport` whose reader can park on its socket (`park`, `drop_parked`): a connection waiting for input then
/// holds neither a coroutine nor a wait operation (server/session.hpp).
template <class T>
concept ParkingTransport = Transport<T> && requires(T& t, std::shared_ptr<void>& owner) {
    { t.park(detail::ParkedReader::Callback{}, static_cast<void*>(nullptr), owner) } -> std::same_as<bool>;
    t.drop_parked();
};

/// A socket bound to its event loop's `io_context` executor: 48 bytes less per connection than `asio::ip::tcp::socket`
/// (whose `any_io_executor` is 56), and as much less in each pending wait's operation. It converts to
/// `asio::ip::tcp::socket` by move.
using LoopSocket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

/// Plain TCP: a non-blocking socket, read and written in place. Reads follow the socket's epoll edges
/// (server/detail/edge_socket.hpp): no `epoll_ctl` to wait for the next data, and no `recv` after one found nothing.
class TcpTransport {
public:
    using executor_type = asio::io_context::executor_type;

    /// Takes an accepted socket: switches it to non-blocking mode and turns Nagle's algorithm off (replies leave
    /// as whole gather writes already).
    explicit TcpTransport(LoopSocket socket) : socket_(std::move(socket)) {
        std::error_code ec;
        socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    }

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    std::size_t read_some(asio::mutable_buffer buffer, std::error_code& ec) { return socket_.read_some(buffer, ec); }
    bool may_have_input() const noexcept { return socket_.may_have_input(); }

    /// One contiguous buffer goes out by send(), which costs the kernel less than sendmsg()'s gather.
    std::size_t write_some(std::span<const asio::const_buffer> buffers, std::error_code& ec) {
        const std::size_t written = buffers.size() == 1 ? socket_.write_some(buffers.front(), ec)
                                                        : socket_.write_some(buffers, ec);
        if (detail::would_block(ec)) ec.clear();
        return written;
    }

    template <class Token>
    auto async_wait(asio::socket_base::wait_type type, Token&& token) {
        if (type == asio::socket_base::wait_read) return socket_.async_wait_readable(std::forward<Token>(token));
        return socket_.async_wait(type, std::forward<Token>(token));
    }

    /// Parks the reader on the socket without a wait operation (server/detail/edge_socket.hpp, `ParkedReader`):
    /// `callback(host, owner, ec)` runs once input may have arrived. False when it cannot park now: then
    /// `async_wait(wait_read, …)`.
    template <class Owner>
    bool park(detail::ParkedReader::Callback callback, void* host, std::shared_ptr<Owner>& owner) {
        return socket_.park(callback, host, owner);
    }
    /// Lets go of a parked reader without calling it (a loop torn down with connections parked).
    void drop_parked() noexcept { socket_.drop_parked(); }

    void shutdown_send(std::error_code& ec) { socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec); }
    void close(std::error_code& ec) { socket_.close(ec); }
    /// Ends every pending wait on the socket with `operation_aborted` (the socket stays open).
    void cancel(std::error_code& ec) { socket_.cancel(ec); }
    asio::ip::tcp::endpoint remote_endpoint(std::error_code& ec) const { return socket_.remote_endpoint(ec); }

private:
    detail::BasicEdgeSocket<asio::io_context::executor_type> socket_;
};

static_assert(Transport<TcpTransport>);

namespace detail {

/// Reads at least one byte, waiting for readiness when none is there. 0 with `ec` set at the end of input or on
/// error. `wait_first`: the caller's own read just found nothing (a hot path tries `t.read_some` itself before
/// calling this, since a coroutine call allocates its frame even when it never suspends), so wait before reading.
template <Transport T>
asio::awaitable<std::size_t> read_some_waiting(T& t, asio::mutable_buffer buffer, std::error_code& ec,
                                               bool wait_first = false) {
    for (bool wait = wait_first;; wait = true) {
        if (wait) {
            co_await t.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return 0;
        }
        const std::size_t n = t.read_some(buffer, ec);
        if (!would_block(ec)) co_return n;
    }
}

/// Writes all of `bytes`, waiting for the peer's window as needed; returns how many were written. `wait_first`:
/// the caller's own write just came back short, so wait before writing (as `read_some_waiting`).
template <Transport T>
asio::awaitable<std::size_t> write_all(T& t, asio::const_buffer bytes, std::error_code& ec, bool wait_first = false) {
    std::size_t done = 0;
    for (bool wait = wait_first; done < bytes.size(); wait = true) {
        if (wait) {
            co_await t.async_wait(asio::socket_base::wait_write, asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
        }
        const asio::const_buffer rest = bytes + done;
        done += t.write_some(std::span<const asio::const_buffer>(&rest, 1), ec);
        if (ec) break;
    }
    co_return done;
}

} // namespace detail
} // namespace swirl
