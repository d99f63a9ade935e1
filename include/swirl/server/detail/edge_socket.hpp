#pragma once
/// A TCP socket read the way an edge-triggered epoll loop reads: no `epoll_ctl` to wait for more, and no `recv` that
/// comes back empty to find out that the socket is drained.
///
/// Asio registers every socket with its epoll once, edge-triggered. Two things still cost a system call per
/// message in a plain `read_some` / `async_wait(wait_read)` loop:
///   * the `recv` that comes back empty (EAGAIN) before every wait, and
///   * `async_wait` itself, which re-arms the descriptor with `epoll_ctl(EPOLL_CTL_MOD)` every time, so that it
///     cannot miss an edge that came before it was queued.
/// `EdgeSocket` removes both. Its read wait is an operation of our own on Asio's reactor that completes on the next
/// edge, or at once when one was seen since the socket was last drained (Asio's per-descriptor "try speculative"
/// flag records exactly that), and that marks the socket drained for the reactor again when it completes: no
/// `epoll_ctl`, ever. And it knows when a read drained the socket without reading again:
///   * a read that finds nothing (EAGAIN) drained it, and
///   * so did a read that came back short of its buffer, once the socket's registration reports the peer's FIN
///     (`EPOLLRDHUP`, added with one `epoll_ctl` at the socket's first read): the kernel copies all it holds, and
///     whatever arrives after the read raises a new edge. A FIN that came with the data raises no edge of its own,
///     but the edge the data raised then carries `EPOLLRDHUP`; once one has, reads go on until one finds the end.
/// Until an edge is seen, `read_some` then answers `would_block` without a system call.
///
/// The operation and the registration use Asio's reactor internals (asio::detail, and members of its reactor and
/// acceptor that are not public): it is compiled for the epoll reactor of the Asio versions swirl is tested with, and
/// everywhere else `async_wait_readable` is plain `async_wait(wait_read)` and only an empty read drains: correct, and
/// one `epoll_ctl` and one `recv` per wait dearer. The server's accept loop waits on its listening sockets the same
/// way (`async_wait_acceptable`).

#include <swirl/detail/asio.hpp>

#if defined(ASIO_HAS_EPOLL)
#include <asio/detail/call_stack.hpp>
#include <asio/detail/handler_cont_helpers.hpp>
#include <asio/detail/reactor.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/detail/scheduler.hpp>
#include <asio/detail/scheduler_thread_info.hpp>
#include <asio/detail/thread_context.hpp>

#include <sys/epoll.h>
#endif

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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

/// `would_block` for an error: out of line, as each comparison with an enumerator makes an `error_code` through
/// `asio::system_category()`, an out-of-line call.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline bool would_block_error(const std::error_code& ec) noexcept {
    return ec == asio::error::would_block || ec == asio::error::try_again;
}

/// Whether a non-blocking read or write found the socket not ready (rather than failing). Inline for the test of
/// success, which is what most reads and writes find (it was a call of ~10 instructions, twice per read).
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline bool would_block(const std::error_code& ec) noexcept {
    return ec && would_block_error(ec);
}

/// A reader parked on its socket: what runs when the socket may have input, kept by the socket rather than queued on
/// Asio's reactor as a wait operation. The descriptor's registration then completes through `complete_descriptor`
/// instead of Asio's own function: when epoll reports input (or the end of it, or an error) and no operation of
/// Asio's waits on the descriptor, it calls the reader straight away. That skips, per wake-up, making a wait
/// operation and queuing it (`start_op`), Asio's walk over the descriptor's three operation queues and the
/// operation's completion: ~190 instructions of the ~1,480 of a 20-byte echo (callgrind, depth 1).
///
/// Parking holds the reader's owner (a `shared_ptr`), as the wait's handler did, until the reader is called: with
/// no error on input, or with `operation_aborted` (posted) when the socket is closed or cancelled first. A parked
/// reader counts as outstanding work of its `io_context`, as a pending wait does. Only on the reactor's thread.
class ParkedReader {
public:
    using Callback = void (*)(void* host, std::shared_ptr<void>&& owner, std::error_code ec);

    /// True while parked.
    bool parked() const noexcept { return callback_ != nullptr; }

    /// The reactor reported `events` for the descriptor (and took it out of `ParkedReaders`): the reader goes on.
    void ready(std::uint32_t events) {
#if SWIRL_EDGE_WAIT
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peer_shut_ = true;
#else
        (void)events;
#endif
        const Callback callback = std::exchange(callback_, nullptr);
        callback(host_, std::move(owner_), std::error_code());  // may end the owner, and this with it: nothing after
    }

    /// The scheduler that counts the parked reader as outstanding work.
    asio::detail::scheduler& scheduler() const noexcept { return *scheduler_; }

protected:
    ParkedReader() = default;
    /// Moves what is known of the socket's input; `other` must not be parked.
    ParkedReader(ParkedReader&& other) noexcept
        : scheduler_(other.scheduler_), drained_(other.drained_), short_reads_drain_(other.short_reads_drain_),
          peer_shut_(other.peer_shut_)
#if SWIRL_EDGE_WAIT
          ,
          rdhup_tried_(other.rdhup_tried_)
#endif
    {
    }
    ParkedReader& operator=(ParkedReader&&) = delete;
    ~ParkedReader() = default;

    Callback callback_ = nullptr;
    void* host_ = nullptr;
    std::shared_ptr<void> owner_;
    asio::detail::scheduler* scheduler_ = nullptr;  // set at the first park
    bool drained_ = false;
    bool short_reads_drain_ = false;  // the registration reports the peer's FIN
    bool peer_shut_ = false;          // an edge reported the peer's FIN, a hang-up or an error: read to the end
#if SWIRL_EDGE_WAIT
    bool rdhup_tried_ = false;
#endif
};

/// The parked reader of each descriptor, if any, where `complete_descriptor` looks it up. Process-wide, as descriptors
/// are: pages of 4,096 entries (32 KiB), each made when a descriptor in its range first parks and kept for the
/// life of the process; descriptors from 2^22 on do not park. An entry is written and read on the thread of the loop
/// its descriptor belongs to. A descriptor closed on one loop and reused on another is ordered by the kernel; the
/// entries are atomics so that the sanitizers see that too.
class ParkedReaders {
public:
    static constexpr std::size_t page_size = 4096;
    static constexpr std::size_t page_count = 1024;

    /// The entry of `descriptor`, its page made when missing; null when out of range or out of memory. Small enough
    /// to be inlined into every park (the page is made out of line).
    static std::atomic<ParkedReader*>* entry(int descriptor) noexcept {
        std::atomic<Page*>* slot = page_slot(descriptor);
        if (slot == nullptr) return nullptr;
        Page* page = slot->load(std::memory_order_acquire);
        if (page == nullptr) [[unlikely]] page = make_page(*slot);
        return page ? in(*page, descriptor) : nullptr;
    }

    /// The entry of `descriptor` when its page is made, otherwise null.
    static std::atomic<ParkedReader*>* existing_entry(int descriptor) noexcept {
        std::atomic<Page*>* slot = page_slot(descriptor);
        Page* page = slot ? slot->load(std::memory_order_acquire) : nullptr;
        return page ? in(*page, descriptor) : nullptr;
    }

    /// Takes the parked reader of `descriptor` off.
    static void remove(int descriptor) noexcept {
        if (std::atomic<ParkedReader*>* e = existing_entry(descriptor)) e->store(nullptr, std::memory_order_relaxed);
    }

private:
    using Page = std::array<std::atomic<ParkedReader*>, page_size>;

    /// The page `slot` holds, made when it holds none yet; null when out of memory.
#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    static Page* make_page(std::atomic<Page*>& slot) noexcept {
        Page* page = slot.load(std::memory_order_acquire);
        if (page != nullptr) return page;
        Page* made = new (std::nothrow) Page{};
        if (made == nullptr) return nullptr;
        if (slot.compare_exchange_strong(page, made, std::memory_order_acq_rel, std::memory_order_acquire)) return made;
        delete made;  // another loop made it first
        return page;
    }

    /// Where the page of `descriptor` is kept; null out of range.
    static std::atomic<Page*>* page_slot(int descriptor) noexcept {
        if (descriptor < 0 || static_cast<std::size_t>(descriptor) >= page_size * page_count) return nullptr;
        return &pages_[static_cast<std::size_t>(descriptor) / page_size];
    }
    static std::atomic<ParkedReader*>* in(Page& page, int descriptor) noexcept {
        return &page[static_cast<std::size_t>(descriptor) % page_size];
    }

    static inline constinit std::array<std::atomic<Page*>, page_count> pages_{};
};

#if SWIRL_EDGE_WAIT
namespace epoll_access {

// Members of Asio's epoll reactor (and of its TCP acceptor) that it does not make public, reached the standard way:
// the names in an explicit instantiation are not access-checked, and the instantiation defines a friend function
// that returns them.
template <class Tag, typename Tag::type Member>
struct Grant {
    friend constexpr typename Tag::type member(Tag) noexcept { return Member; }
};
/// The reactor's epoll descriptor.
struct EpollFd {
    using type = int asio::detail::epoll_reactor::*;
    friend constexpr type member(EpollFd) noexcept;
};
/// The events a descriptor is registered for; Asio ORs `EPOLLOUT` into it when it re-registers for writing.
struct RegisteredEvents {
    using type = std::uint32_t asio::detail::epoll_reactor::descriptor_state::*;
    friend constexpr type member(RegisteredEvents) noexcept;
};
/// The events `epoll_wait` last reported for a descriptor (Asio keeps them in the operation's `task_result_`
/// until it has run the descriptor's operations).
struct ReadyEvents {
    using type = unsigned int asio::detail::scheduler_operation::*;
    friend constexpr type member(ReadyEvents) noexcept;
};
/// The reactor a descriptor is registered with.
struct Reactor {
    using type = asio::detail::epoll_reactor* asio::detail::epoll_reactor::descriptor_state::*;
    friend constexpr type member(Reactor) noexcept;
};
/// Per operation type, whether the reactor tries a new operation at once rather than waiting for an edge.
struct TrySpeculative {
    using type = bool (asio::detail::epoll_reactor::descriptor_state::*)[asio::detail::epoll_reactor::max_ops];
    friend constexpr type member(TrySpeculative) noexcept;
};
/// The lock over a descriptor's operations and flags.
struct DescriptorMutex {
    using type = asio::detail::conditionally_enabled_mutex asio::detail::epoll_reactor::descriptor_state::*;
    friend constexpr type member(DescriptorMutex) noexcept;
};
template struct Grant<EpollFd, &asio::detail::epoll_reactor::epoll_fd_>;
template struct Grant<Reactor, &asio::detail::epoll_reactor::descriptor_state::reactor_>;
template struct Grant<RegisteredEvents, &asio::detail::epoll_reactor::descriptor_state::registered_events_>;
template struct Grant<ReadyEvents, &asio::detail::scheduler_operation::task_result_>;
template struct Grant<TrySpeculative, &asio::detail::epoll_reactor::descriptor_state::try_speculative_>;
/// The descriptor a registration is for (-1 once it is deregistered).
struct Descriptor {
    using type = int asio::detail::epoll_reactor::descriptor_state::*;
    friend constexpr type member(Descriptor) noexcept;
};
/// Per operation type, the operations waiting on a descriptor.
struct OpQueues {
    using type = asio::detail::op_queue<asio::detail::reactor_op> (
        asio::detail::epoll_reactor::descriptor_state::*)[asio::detail::epoll_reactor::max_ops];
    friend constexpr type member(OpQueues) noexcept;
};
/// Set once the reactor shuts down: no operation may be queued any more.
struct Shutdown {
    using type = bool asio::detail::epoll_reactor::descriptor_state::*;
    friend constexpr type member(Shutdown) noexcept;
};
/// What the scheduler calls to run an operation: for a descriptor's registration, the function that runs its
/// operations once `epoll_wait` reported it.
using CompleteFunction = void (*)(void*, asio::detail::scheduler_operation*, const std::error_code&, std::size_t);
struct OperationFunction {
    using type = CompleteFunction asio::detail::scheduler_operation::*;
    friend constexpr type member(OperationFunction) noexcept;
};
/// Asio's own such function for descriptors.
struct DescriptorComplete {
    using type = CompleteFunction;
    friend constexpr type member(DescriptorComplete) noexcept;
};
template struct Grant<DescriptorMutex, &asio::detail::epoll_reactor::descriptor_state::mutex_>;
template struct Grant<Descriptor, &asio::detail::epoll_reactor::descriptor_state::descriptor_>;
template struct Grant<OpQueues, &asio::detail::epoll_reactor::descriptor_state::op_queue_>;
template struct Grant<Shutdown, &asio::detail::epoll_reactor::descriptor_state::shutdown_>;
template struct Grant<OperationFunction, &asio::detail::scheduler_operation::func_>;
template struct Grant<DescriptorComplete, &asio::detail::epoll_reactor::descriptor_state::do_complete>;
/// A TCP acceptor's implementation (descriptor, state flags, reactor registration) and I/O executor.
struct AcceptorImpl {
    using type = asio::detail::io_object_impl<asio::detail::reactive_socket_service<asio::ip::tcp>, asio::any_io_executor>
        asio::ip::tcp::acceptor::*;
    friend constexpr type member(AcceptorImpl) noexcept;
};
template struct Grant<AcceptorImpl, &asio::ip::tcp::acceptor::impl_>;
/// The scheduler's queue of ready operations, the lock over it, and whether it runs on one thread only.
struct SchedulerQueue {
    using type = asio::detail::op_queue<asio::detail::scheduler_operation> asio::detail::scheduler::*;
    friend constexpr type member(SchedulerQueue) noexcept;
};
struct SchedulerMutex {
    using type = asio::detail::conditionally_enabled_mutex asio::detail::scheduler::*;
    friend constexpr type member(SchedulerMutex) noexcept;
};
struct SchedulerOneThread {
    using type = const bool asio::detail::scheduler::*;
    friend constexpr type member(SchedulerOneThread) noexcept;
};
template struct Grant<SchedulerQueue, &asio::detail::scheduler::op_queue_>;
template struct Grant<SchedulerMutex, &asio::detail::scheduler::mutex_>;
template struct Grant<SchedulerOneThread, &asio::detail::scheduler::one_thread_>;

/// The events `epoll_wait` last reported for `state` (0 before the first).
inline std::uint32_t ready_events(asio::detail::epoll_reactor::descriptor_state* state) noexcept {
    // descriptor_state derives from its operation privately; an explicit cast may name an inaccessible base.
    auto* op = (asio::detail::scheduler_operation*)state;  // NOLINT(cppcoreguidelines-pro-type-cstyle-cast)
    return op->*member(ReadyEvents{});
}

/// The implementation behind `acceptor` (its `io_object_impl`).
inline auto& acceptor_impl(asio::ip::tcp::acceptor& acceptor) noexcept { return acceptor.*member(AcceptorImpl{}); }

/// The reactor `state` is registered with (a socket's, without a service lookup).
inline asio::detail::epoll_reactor& reactor_of(asio::detail::epoll_reactor::descriptor_state* state) noexcept {
    return *(state->*member(Reactor{}));
}

/// A read found `state`'s descriptor empty: until its next edge the reactor need not try a read wait at once, as
/// after a wait that reported itself exhausted. Asio tries every newly registered descriptor at once; without this,
/// a new connection's first wait would complete at once and the read after it find nothing again.
inline void mark_read_exhausted(asio::detail::epoll_reactor::descriptor_state* state) noexcept {
    asio::detail::conditionally_enabled_mutex::scoped_lock lock(state->*member(DescriptorMutex{}));
    if (state->*member(RegisteredEvents{}) != 0)  // unregistered descriptors are only ever tried at once
        (state->*member(TrySpeculative{}))[asio::detail::epoll_reactor::read_op] = false;
}

/// Adds `events` to `state`'s registration with its reactor (one `epoll_ctl`), where Asio's later re-registrations
/// keep them. The reactor's thread, before any operation of `state` is pending on another. False on failure.
inline bool add_events(asio::detail::epoll_reactor::descriptor_state* state, int descriptor,
                       std::uint32_t events) noexcept {
    asio::detail::epoll_reactor& reactor = reactor_of(state);
    std::uint32_t& registered = state->*member(RegisteredEvents{});
    if (registered == 0) return false;  // not registered with epoll (Asio's "operation not supported" descriptors)
    epoll_event ev{};
    ev.events = registered | events;
    ev.data.ptr = state;
    if (::epoll_ctl(reactor.*member(EpollFd{}), EPOLL_CTL_MOD, descriptor, &ev) != 0) return false;
    registered = ev.events;
    return true;
}

/// Whether a reader may park on `state` (see `ParkedReader`): the descriptor is registered with epoll, the reactor
/// runs without per-descriptor locks (`ASIO_CONCURRENCY_HINT_UNSAFE_IO`: each socket used on its loop's thread only)
/// and is not shutting down, no operation waits for input, and no edge came since the socket was last drained
/// (Asio then completes a wait at once; the caller waits the usual way).
inline bool may_park(asio::detail::epoll_reactor::descriptor_state* state) noexcept {
    using Reactor = asio::detail::epoll_reactor;
    auto& queues = state->*member(OpQueues{});
    return !(state->*member(Shutdown{})) && state->*member(RegisteredEvents{}) != 0 &&
           !(state->*member(DescriptorMutex{})).enabled() && queues[Reactor::read_op].empty() &&
           queues[Reactor::except_op].empty() && !(state->*member(TrySpeculative{}))[Reactor::read_op];
}

/// The function the scheduler calls for `state` once `epoll_wait` reported it.
inline CompleteFunction& completion_of(asio::detail::epoll_reactor::descriptor_state* state) noexcept {
    auto* op = (asio::detail::scheduler_operation*)state;  // NOLINT(cppcoreguidelines-pro-type-cstyle-cast)
    return op->*member(OperationFunction{});
}

} // namespace epoll_access

inline void complete_descriptor(void* owner, asio::detail::scheduler_operation* base, const std::error_code& ec,
                                std::size_t bytes);

/// What `complete_descriptor` does for one descriptor: with a parked reader and input reported, when no operation of
/// Asio's waits on the descriptor, it records what Asio would for its write and exception sides and calls the
/// reader; otherwise Asio runs its operations first, and the reader goes on unless they closed the socket. The
/// reader takes the edge, as a wait that reports itself exhausted would. Without a parked reader: Asio's function.
inline void complete_parked(void* owner, asio::detail::scheduler_operation* base, const std::error_code& ec,
                            std::size_t bytes) {
    using Reactor = asio::detail::epoll_reactor;
    constexpr epoll_access::CompleteFunction asio_complete = member(epoll_access::DescriptorComplete{});
    auto* state = (Reactor::descriptor_state*)base;  // NOLINT(cppcoreguidelines-pro-type-cstyle-cast)
    const auto events = static_cast<std::uint32_t>(bytes);
    const int descriptor = state->*member(epoll_access::Descriptor{});
    std::atomic<ParkedReader*>* entry =
        owner != nullptr && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? ParkedReaders::existing_entry(descriptor) : nullptr;
    ParkedReader* reader = entry ? entry->load(std::memory_order_relaxed) : nullptr;
    if (reader == nullptr) return asio_complete(owner, base, ec, bytes);
    auto& queues = state->*member(epoll_access::OpQueues{});
    bool* speculative = state->*member(epoll_access::TrySpeculative{});
    if (queues[Reactor::write_op].empty() && queues[Reactor::except_op].empty()) {
        // What Asio records for the sides nothing waits on. The scheduler counts the reader's work finished when
        // this returns, as it would a wait's that completed here.
        if (events & (EPOLLPRI | EPOLLERR | EPOLLHUP)) speculative[Reactor::except_op] = true;
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) speculative[Reactor::write_op] = true;
    } else {
        // Asio's own count: one for the operation it completes here, or none.
        asio_complete(owner, base, ec, bytes);
        if (state->*member(epoll_access::Descriptor{}) != descriptor || entry->load(std::memory_order_relaxed) != reader)
            return;                             // they closed the socket, or it was reused
        speculative[Reactor::read_op] = false;  // Asio marked it, as no operation waited for input
        reader->scheduler().work_finished();    // the reader's, which the scheduler will not count
    }
    entry->store(nullptr, std::memory_order_relaxed);
    reader->ready(events);
}

/// Runs the descriptors `epoll_wait` reported that wait in the scheduler's queue right behind the one just run, as
/// the scheduler would run them one by one, but taken off its queue under one lock rather than one each: the lock,
/// the queue's bookkeeping and the work count around each operation cost 55 of the 1,252 instructions per message
/// of a 20-byte echo at depth 1 (callgrind, 10 connections; one `epoll_wait` reported ~8 of them). Only those that
/// complete through `complete_descriptor`, and only on a scheduler that runs on one thread (no other may take them).
/// Operations posted meanwhile queue behind them, as they would. What the scheduler does after each operation is
/// done after each here: an exception a handler left for it to rethrow is rethrown (what was not run yet goes back
/// to the front of the queue, as it does when a handler throws), and the operation's unit of work is finished
/// (against work posted on this thread meanwhile, if any, which the scheduler settles once its own operation, the
/// first of the batch, returns).
/// Two differences, neither of which swirl's loops meet: `io_context::stop()` from another thread takes effect once
/// these have run (the scheduler reads its flag under its lock), and `run_one` or `poll_one` may run them all.
inline void run_ready_descriptors(asio::detail::scheduler& scheduler, const std::error_code& ec) {
    using Operation = asio::detail::scheduler_operation;
    using Queue = asio::detail::op_queue<Operation>;
    using Lock = asio::detail::conditionally_enabled_mutex::scoped_lock;
    if (!(scheduler.*member(epoll_access::SchedulerOneThread{}))) return;
    auto* this_thread = static_cast<asio::detail::scheduler_thread_info*>(
        asio::detail::call_stack<asio::detail::thread_context, asio::detail::thread_info_base>::contains(&scheduler));
    if (this_thread == nullptr) return;
    this_thread->rethrow_pending_exception();  // the first operation's, which the scheduler rethrows after it
    auto& mutex = scheduler.*member(epoll_access::SchedulerMutex{});
    Queue& queue = scheduler.*member(epoll_access::SchedulerQueue{});
    constexpr auto function = member(epoll_access::OperationFunction{});
    struct Batch {
        Queue ready;
        asio::detail::conditionally_enabled_mutex& mutex;
        Queue& queue;
        ~Batch() {
            if (ready.empty()) return;  // all run; otherwise a handler threw, and these wait for the next run
            Lock lock(mutex);
            Queue rest;
            rest.push(ready);
            rest.push(queue);
            queue.push(rest);
        }
    } batch{Queue(), mutex, queue};
    {
        Lock lock(mutex);
        while (Operation* o = queue.front()) {
            if (o->*function != &complete_descriptor) break;
            queue.pop();
            batch.ready.push(o);
        }
    }
    while (Operation* o = batch.ready.front()) {
        batch.ready.pop();
        struct Finished {  // the scheduler's work count, as after each operation it runs
            asio::detail::scheduler& scheduler;
            asio::detail::scheduler_thread_info& thread;
            ~Finished() {
                if (thread.private_outstanding_work > 0) --thread.private_outstanding_work;
                else scheduler.work_finished();
            }
        } finished{scheduler, *this_thread};
        const std::size_t events = o->*member(epoll_access::ReadyEvents{});
        if (o->*function == &complete_descriptor) complete_parked(&scheduler, o, ec, events);
        else (o->*function)(&scheduler, o, ec, events);  // its socket closed meanwhile: Asio's function again
        this_thread->rethrow_pending_exception();
    }
}

/// Runs in place of Asio's `descriptor_state::do_complete` for a descriptor whose reader has parked (and after that,
/// until the socket closes; for any descriptor without a parked reader it is Asio's function): the descriptor
/// (`complete_parked`), then the others of the same `epoll_wait` queued right behind it (`run_ready_descriptors`).
inline void complete_descriptor(void* owner, asio::detail::scheduler_operation* base, const std::error_code& ec,
                                std::size_t bytes) {
    complete_parked(owner, base, ec, bytes);
    if (owner != nullptr) run_ready_descriptors(*static_cast<asio::detail::scheduler*>(owner), ec);
}

/// Completes when the descriptor it is queued on has seen an edge (data, end of input or an error) since the
/// reactor last tried it. Reports itself "exhausted", so the reactor stops trying the descriptor speculatively
/// until the next edge. Sets `*peer_shut` (unless null) when the edge reports the peer's FIN, a hang-up or an error.
template <class Handler, class IoExecutor>
class EdgeReadWaitOp : public asio::detail::reactor_op {
public:
    ASIO_DEFINE_HANDLER_PTR(EdgeReadWaitOp);

    EdgeReadWaitOp(const std::error_code& success, Handler& handler, const IoExecutor& io_ex,
                   asio::detail::epoll_reactor::descriptor_state* state, bool* peer_shut)
        : reactor_op(success, &EdgeReadWaitOp::do_perform, &EdgeReadWaitOp::do_complete),
          state_(state), peer_shut_(peer_shut), handler_(std::move(handler)), work_(handler_, io_ex) {}

    // Runs under the descriptor's lock, while the socket is open (closing it takes the operation off unperformed).
    static status do_perform(reactor_op* base) {
        auto* o = static_cast<EdgeReadWaitOp*>(base);
        if (o->peer_shut_ && (epoll_access::ready_events(o->state_) & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            *o->peer_shut_ = true;
        return done_and_exhausted;
    }

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
    asio::detail::epoll_reactor::descriptor_state* state_;
    bool* peer_shut_;
    Handler handler_;
    asio::detail::handler_work<Handler, IoExecutor> work_;
};
#endif

#if SWIRL_EDGE_WAIT
/// The Asio implementation (descriptor, state flags, reactor registration) and I/O executor behind a socket: a
/// protected member, named through a derived class as a pointer to the base's member.
template <class Socket>
auto& socket_impl(Socket& socket) noexcept {
    struct Access : Socket {
        static auto& impl(Socket& s) noexcept { return s.*&Access::impl_; }
    };
    return Access::impl(socket);
}

/// Queues an `EdgeReadWaitOp` on the registration behind `io` (an open socket's or acceptor's `io_object_impl`):
/// `handler` runs at once when an edge came since the descriptor was last drained, otherwise on the next edge.
/// Always inlined: a busy coroutine connection waits once per message, and GCC 12 left it out of line, ~20
/// instructions more per message (callgrind, 20 B echo, depth 1).
template <class IoObjectImpl, class Handler>
__attribute__((always_inline)) inline void start_edge_wait(IoObjectImpl& io, Handler handler, bool* peer_shut) {
    auto& impl = io.get_implementation();
    using IoExecutor = std::decay_t<decltype(io.get_executor())>;
    using Op = EdgeReadWaitOp<Handler, IoExecutor>;
    const bool is_continuation = asio_handler_cont_helpers::is_continuation(handler);
    typename Op::ptr p = {asio::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) Op(std::error_code(), handler, io.get_executor(), impl.reactor_data_, peer_shut);
    epoll_access::reactor_of(impl.reactor_data_)
        .start_op(asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation, true);
    p.v = p.p = nullptr;
}
#endif

/// Calls `handler(std::error_code)` once the listening `acceptor` (non-blocking) may have a connection to accept: at
/// once when one arrived since it last had none, otherwise on the next; `operation_aborted` once it is closed. The
/// caller accepts until the socket has none (`EAGAIN`) before it waits again, or an arrival may go unnoticed.
template <class Handler>
void async_wait_acceptable(asio::ip::tcp::acceptor& acceptor, Handler handler) {
#if SWIRL_EDGE_WAIT
    if (acceptor.is_open()) {
        start_edge_wait(epoll_access::acceptor_impl(acceptor), std::move(handler), nullptr);
        return;
    }
#endif
    acceptor.async_wait(asio::ip::tcp::acceptor::wait_read, std::move(handler));
}

/// A TCP socket on `Executor`, non-blocking, whose reads and read waits follow the edges of Asio's epoll
/// registration. Use `read_some` and `async_wait_readable` (or `park`) for input; everything else is the Asio
/// socket's. Not to be moved once it has waited (a pending wait points at it).
template <class Executor>
class BasicEdgeSocket : public asio::basic_stream_socket<asio::ip::tcp, Executor>, public ParkedReader {
    using Socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;

public:
    /// Takes a connected socket on an executor convertible to `Executor`.
    template <class OtherExecutor>
    explicit BasicEdgeSocket(asio::basic_stream_socket<asio::ip::tcp, OtherExecutor>&& socket) : Socket(std::move(socket)) {
        std::error_code ec;
        if (!this->non_blocking()) this->non_blocking(true, ec);  // one accepted non-blocking needs no ioctl
    }

    /// Only before it waits or parks.
    BasicEdgeSocket(BasicEdgeSocket&&) noexcept = default;
    BasicEdgeSocket& operator=(BasicEdgeSocket&&) = delete;
    ~BasicEdgeSocket() {
        drop_parked();
        restore_completion();
    }

    /// Parks the reader (`ParkedReader`): `callback(host, owner, ec)` runs once input may have arrived, with no
    /// error, or with `operation_aborted` when the socket is closed or cancelled first; the socket holds `owner`
    /// (moved from) meanwhile. False, with `owner` left as it was, when the socket cannot park now (no edge wait,
    /// Asio's per-socket locks, an edge seen since the socket was drained, a wait pending): `async_wait_readable`
    /// then. At most one reader parks at a time, and none while a read wait is pending.
    template <class Owner>
    bool park(Callback callback, void* host, std::shared_ptr<Owner>& owner) {
#if SWIRL_EDGE_WAIT
        auto& impl = this->impl_.get_implementation();
        auto* state = impl.reactor_data_;
        if (state == nullptr) return false;
        if (!rdhup_tried_) {
            report_peer_shutdown();
            if (short_reads_drain_) epoll_access::mark_read_exhausted(state);  // as in `start_wait`
        }
        if (!epoll_access::may_park(state)) return false;
        std::atomic<ParkedReader*>* entry = ParkedReaders::entry(impl.socket_);
        if (entry == nullptr) return false;
        if (scheduler_ == nullptr)  // once per socket (a service lookup)
            scheduler_ = &asio::use_service<asio::detail::scheduler>(asio::query(this->get_executor(), asio::execution::context));
        scheduler_->work_started();
        epoll_access::completion_of(state) = &complete_descriptor;
        drained_ = false;  // whatever ends the wait, the next read tries the socket
        callback_ = callback;
        host_ = host;
        owner_ = std::move(owner);
        entry->store(this, std::memory_order_relaxed);
        return true;
#else
        (void)callback, (void)host, (void)owner;
        return false;
#endif
    }

    /// Unparks the reader without calling it, and lets go of its owner. For a loop torn down while readers are
    /// parked (their owners may hold the socket: see `ParkedReader`).
    void drop_parked() noexcept {
        if (!parked()) return;
        unlist();
        callback_ = nullptr;
        scheduler_->work_finished();
        const std::shared_ptr<void> owner = std::move(owner_);  // last: it may hold this socket
    }

    /// Closes the socket: a pending wait completes with `operation_aborted`, and so does a parked reader.
    void close(std::error_code& ec) {
        abort_parked();
        restore_completion();
        Socket::close(ec);
    }

    void close() {
        std::error_code ec;
        close(ec);
        asio::detail::throw_error(ec, "close");
    }

    /// Ends every pending wait, and a parked reader, with `operation_aborted`; the socket stays open.
    void cancel(std::error_code& ec) {
        abort_parked();
        Socket::cancel(ec);
    }
    void cancel() {
        std::error_code ec;
        cancel(ec);
        asio::detail::throw_error(ec, "cancel");
    }

    /// The bytes the socket holds now, at most `buffer.size()`; `would_block` when it has none, without a system
    /// call when the last read drained it and no edge was seen since.
    std::size_t read_some(asio::mutable_buffer buffer, std::error_code& ec) {
        if (drained_) {
            ec = asio::error::would_block;
            return 0;
        }
#if SWIRL_EDGE_WAIT
        if (!rdhup_tried_) report_peer_shutdown();
#endif
        const std::size_t n = Socket::read_some(buffer, ec);
        if (would_block(ec)) {
            drained_ = true;
#if SWIRL_EDGE_WAIT
            if (auto* state = this->impl_.get_implementation().reactor_data_) epoll_access::mark_read_exhausted(state);
#endif
        }
        // A short read drained the socket too, unless the peer's FIN may be behind it: it raises no edge of its own
        // when it comes with the data (the next read returns end of input).
        else if (!ec && n < buffer.size() && short_reads_drain_ && !peer_shut_) drained_ = true;
        return n;
    }

    /// False when `read_some` would return `would_block` without trying.
    bool may_have_input() const noexcept { return !drained_; }

    /// True once a short read counts as draining the socket (the registration reports the peer's FIN).
    bool short_reads_drain() const noexcept { return short_reads_drain_ && !peer_shut_; }

    /// Completes (with no error) when input may have arrived since the socket was drained: at once when an edge
    /// came meanwhile, otherwise on the next one; `operation_aborted` when the socket is closed meanwhile. Without
    /// the edge wait (other reactors, other Asio versions), a socket's first wait may complete at once without input.
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
        if (!rdhup_tried_) {
            report_peer_shutdown();
            // That re-armed the registration, so epoll reports the socket again if it holds input already: the first
            // wait need not try it at once (as Asio does with every newly registered descriptor).
            if (short_reads_drain_) epoll_access::mark_read_exhausted(impl.reactor_data_);
        }
        start_edge_wait(this->impl_, std::move(handler), &peer_shut_);
#else
        this->async_wait(Socket::wait_read, std::move(handler));
#endif
    }

    /// A parked reader is called (posted) with `operation_aborted`.
    void abort_parked() {
        if (!parked()) return;
        unlist();
        asio::post(this->get_executor(), [callback = std::exchange(callback_, nullptr), host = host_,
                                          owner = std::move(owner_)]() mutable {
            callback(host, std::move(owner), asio::error::operation_aborted);
        });
        scheduler_->work_finished();  // after the post, which counts itself
    }

    /// Takes the parked reader out of `ParkedReaders`.
    void unlist() noexcept {
#if SWIRL_EDGE_WAIT
        ParkedReaders::remove(this->impl_.get_implementation().socket_);
#endif
    }

    /// Gives the registration back Asio's own completion, before the reactor reuses it for another descriptor.
    void restore_completion() noexcept {
#if SWIRL_EDGE_WAIT
        if (scheduler_ == nullptr) return;  // never parked
        if (auto* state = this->impl_.get_implementation().reactor_data_) {
            epoll_access::CompleteFunction& completion = epoll_access::completion_of(state);
            if (completion == &complete_descriptor) completion = member(epoll_access::DescriptorComplete{});
        }
#endif
    }

#if SWIRL_EDGE_WAIT
    /// Once, at the first read or wait (one `epoll_ctl` per connection, made when it starts rather than in the middle
    /// of its traffic): has epoll report the peer's FIN, so that a short read can count as draining the socket.
    void report_peer_shutdown() {
        rdhup_tried_ = true;
        auto& impl = this->impl_.get_implementation();
        if (impl.reactor_data_)
            short_reads_drain_ = epoll_access::add_events(impl.reactor_data_, impl.socket_, EPOLLRDHUP);
    }
#endif
};

/// Tells Asio what `accept4(..., SOCK_NONBLOCK | SOCK_CLOEXEC)` made of the descriptor `socket` was just assigned:
///   * it is the socket's own: no duplicate shares its open file (close-on-exec: no child process inherits it), so
///     closing it takes it off epoll by itself. Asio marks every assigned descriptor as possibly duplicated and
///     makes an `epoll_ctl(EPOLL_CTL_DEL)` at each close for it;
///   * it is non-blocking already: Asio would make an `ioctl(FIONBIO)` at its first operation.
/// Elsewhere (other reactors, other Asio versions), sets it non-blocking the usual way.
template <class Socket>
void adopt_accepted(Socket& socket) noexcept {
#if SWIRL_EDGE_WAIT
    namespace ops = asio::detail::socket_ops;
    auto& state = socket_impl(socket).get_implementation().state_;
    state = static_cast<ops::state_type>((state & ~ops::possible_dup) | ops::user_set_non_blocking |
                                         ops::internal_non_blocking);
#else
    std::error_code ec;
    socket.non_blocking(true, ec);
#endif
}

/// On Asio's type-erased executor, as `asio::ip::tcp::socket`.
using EdgeSocket = BasicEdgeSocket<asio::any_io_executor>;

} // namespace swirl::detail
