#pragma once
/// A TCP socket read the way an edge-triggered epoll loop reads: no `epoll_ctl` to wait for more, and no second
/// `recv` to find out again that nothing arrived.
///
/// Asio registers every socket with its epoll once, edge-triggered. Two things still cost a system call per
/// message in a plain `read_some` / `async_wait(wait_read)` loop:
///   * the `recv` that comes back empty (EAGAIN) before every wait, and
///   * `async_wait` itself, which re-arms the descriptor with `epoll_ctl(EPOLL_CTL_MOD)` every time, so that it
///     cannot miss an edge that came before it was queued.
/// `EdgeSocket` removes the second. It remembers when a `recv` found the socket empty: with an edge-triggered
/// registration, anything that arrives after that read (data or the peer's FIN) raises a new edge, so until one is
/// seen, `read_some` answers `would_block` without a system call. (A short read proves nothing: a FIN that came
/// with the data raises no edge of its own.) Its read wait is an operation of our own on Asio's
/// reactor that completes on the next edge, or at once when one was seen since the socket was last drained
/// (Asio's per-descriptor "try speculative" flag records exactly that), and that marks the socket drained for the
/// reactor again when it completes: no `epoll_ctl`, ever.
///
/// The operation uses Asio's reactor interface (asio::detail), which is not public: it is compiled for the epoll
/// reactor of the Asio versions swirl is tested with, and everywhere else `async_wait_readable` is plain
/// `async_wait(wait_read)`, correct and one `epoll_ctl` per wait dearer.

#include <swirl/detail/asio.hpp>

#if defined(ASIO_HAS_EPOLL)
#include <asio/detail/handler_cont_helpers.hpp>
#include <asio/detail/reactor.hpp>
#include <asio/detail/reactor_op.hpp>
#endif

#include <cstddef>
#include <system_error>
#include <type_traits>
#include <utility>

#if defined(ASIO_HAS_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(ASIO_WINDOWS) && \
    ASIO_VERSION >= 102200 && ASIO_VERSION < 102700 && !defined(SWIRL_NO_EDGE_WAIT)
#define SWIRL_EDGE_WAIT 1
#else
#define SWIRL_EDGE_WAIT 0
#endif

namespace swirl::detail {

#if SWIRL_EDGE_WAIT
/// Completes when the descriptor it is queued on has seen an edge (data, end of input or an error) since the
/// reactor last tried it. Reports itself "exhausted", so the reactor stops trying the descriptor speculatively
/// until the next edge; the reader then reads until a read finds nothing before it waits again.
template <class Handler, class IoExecutor>
class EdgeReadWaitOp : public asio::detail::reactor_op {
public:
    ASIO_DEFINE_HANDLER_PTR(EdgeReadWaitOp);

    EdgeReadWaitOp(const std::error_code& success, Handler& handler, const IoExecutor& io_ex)
        : reactor_op(success, &EdgeReadWaitOp::do_perform, &EdgeReadWaitOp::do_complete),
          handler_(std::move(handler)), work_(handler_, io_ex) {}

    static status do_perform(reactor_op*) { return done_and_exhausted; }

    static void do_complete(void* owner, asio::detail::operation* base, const std::error_code&, std::size_t) {
        auto* o = static_cast<EdgeReadWaitOp*>(base);
        ptr p = {asio::detail::addressof(o->handler_), o, o};
        asio::detail::handler_work<Handler, IoExecutor> work(std::move(o->work_));
        // The memory goes back before the upcall, which may start the next wait.
        asio::detail::binder1<Handler, std::error_code> bound(o->handler_, o->ec_);
        p.h = asio::detail::addressof(bound.handler_);
        p.reset();
        if (owner) {
            asio::detail::fenced_block b(asio::detail::fenced_block::half);
            work.complete(bound, bound.handler_);
        }
    }

private:
    Handler handler_;
    asio::detail::handler_work<Handler, IoExecutor> work_;
};
#endif

/// A TCP socket on `Executor`, non-blocking, whose reads and read waits follow the edges of Asio's epoll
/// registration. Use `read_some` and `async_wait_readable` for input; everything else is the Asio socket's.
template <class Executor>
class BasicEdgeSocket : public asio::basic_stream_socket<asio::ip::tcp, Executor> {
    using Socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;

public:
    /// Takes a connected socket on an executor convertible to `Executor`.
    template <class OtherExecutor>
    explicit BasicEdgeSocket(asio::basic_stream_socket<asio::ip::tcp, OtherExecutor>&& socket) : Socket(std::move(socket)) {
        std::error_code ec;
        this->non_blocking(true, ec);
    }

    /// The bytes the socket holds now, at most `buffer.size()`; `would_block` when it has none, without a system
    /// call when the last read drained it and no edge was seen since.
    std::size_t read_some(asio::mutable_buffer buffer, std::error_code& ec) {
        if (drained_) {
            ec = asio::error::would_block;
            return 0;
        }
        const std::size_t n = Socket::read_some(buffer, ec);
        // Only an empty read proves the socket drained. A short one does not: the peer's FIN may have come with
        // the data, and it raises no edge of its own (the next read would return end of input).
        if (ec == asio::error::would_block || ec == asio::error::try_again) drained_ = true;
        return n;
    }

    /// False when `read_some` would return `would_block` without trying.
    bool may_have_input() const noexcept { return !drained_; }

    /// Completes (with no error) when input may have arrived since the socket was drained: at once when an edge
    /// came meanwhile, otherwise on the next one; `operation_aborted` when the socket is closed meanwhile. A
    /// socket's first wait may complete at once without input (Asio tries a socket it has seen no edge for).
    template <class Token>
    auto async_wait_readable(Token&& token) {
        return asio::async_initiate<Token, void(std::error_code)>(
            [this](auto handler) {
                drained_ = false;  // whatever ends the wait, the next read tries the socket
                start_wait(std::move(handler));
            },
            token);
    }

private:
    template <class Handler>
    void start_wait(Handler handler) {
#if SWIRL_EDGE_WAIT
        auto& impl = this->impl_.get_implementation();
        if (!this->is_open()) {
            this->async_wait(Socket::wait_read, std::move(handler));
            return;
        }
        using IoExecutor = std::decay_t<decltype(this->impl_.get_executor())>;
        using Op = EdgeReadWaitOp<Handler, IoExecutor>;
        const bool is_continuation = asio_handler_cont_helpers::is_continuation(handler);
        typename Op::ptr p = {asio::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
        p.p = new (p.v) Op(std::error_code(), handler, this->impl_.get_executor());
        reactor_->start_op(asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation, true);
        p.v = p.p = nullptr;
#else
        this->async_wait(Socket::wait_read, std::move(handler));
#endif
    }

#if SWIRL_EDGE_WAIT
    asio::detail::reactor* reactor_ =
        &asio::use_service<asio::detail::reactor>(asio::query(this->get_executor(), asio::execution::context));
#endif
    bool drained_ = false;
};

/// On Asio's type-erased executor, as `asio::ip::tcp::socket`.
using EdgeSocket = BasicEdgeSocket<asio::any_io_executor>;

} // namespace swirl::detail
